"""The constructed model's answer probabilities on symbol prompts, against each task's share."""

from __future__ import annotations

import torch

from superpose.construction.model import ConstructedTransformer
from superpose.construction.prompts import SymbolPrompt, check_prompt
from superpose.construction.weights import ConstructionSpec
from superpose.errors import SuperposeError


def predict(model: ConstructedTransformer, spec: ConstructionSpec, prompts: list[SymbolPrompt]) -> torch.Tensor:
    """The model's next-token distribution after each prompt's query (prompts of one length)."""
    for prompt in prompts:
        if len(prompt.examples) > spec.max_examples:
            raise SuperposeError(f"examples: the model was built for at most m={spec.max_examples} "
                                 f"examples; a prompt has {len(prompt.examples)}")
        check_prompt(prompt, spec.tasks, spec.vocab)
    if len({len(p.examples) for p in prompts}) > 1:
        raise SuperposeError("prompts scored together must have the same number of examples")
    tokens = torch.tensor([p.tokens(spec.vocab) for p in prompts])  # [batch, seq]
    # Keep each chunk's attention matrices ([chunk, heads, seq, seq]) near 20M numbers.
    heads = max(b.attn.n_heads for b in model.blocks if b.attn is not None)
    chunk = max(1, 20_000_000 // (heads * tokens.shape[1] ** 2))
    with torch.no_grad():
        return torch.cat([model.next_token_probs(tokens[i:i + chunk])
                          for i in range(0, len(prompts), chunk)])  # [batch, vocab + 2]


def score_prompts(model: ConstructedTransformer, spec: ConstructionSpec, prompts: list[SymbolPrompt]) -> list[dict]:
    """One record per prompt: each task's share and the probability the model puts on its answer."""
    records = []
    for prompt, probs in zip(prompts, predict(model, spec, prompts)):
        answers = [t(prompt.query) for t in spec.tasks]
        shares = prompt.shares(spec.k)
        p_answers = [float(probs[a]) for a in answers]
        records.append({
            "prompt": prompt.text(),
            "query": prompt.query,
            "answers": answers,
            "counts": prompt.counts(spec.k),
            "noise": sum(1 for lab in prompt.labels if lab < 0),
            "shares": shares,
            "probs": p_answers,
            "other_mass": float(1 - sum(p_answers)),
            "max_abs_error": max(abs(p - s) for p, s in zip(p_answers, shares)),
        })
    return records
