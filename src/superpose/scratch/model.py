"""A small Hugging Face ``LlamaForCausalLM`` for the character tokenizer, initialised from a seed."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from superpose.scratch.tokenizer import SPECIAL_TOKENS, char_vocab


class ModelConfig(BaseModel):
    """Size of the transformer (the study's recipe: 6 layers, width 384, 6 heads, MLP 1536)."""

    model_config = ConfigDict(extra="forbid")

    n_layers: int = Field(6, ge=1)
    d_model: int = Field(384, ge=8)
    n_heads: int = Field(6, ge=1)
    d_mlp: int = Field(1536, ge=8)
    max_position_embeddings: int = Field(2048, ge=16)  # must cover the longest training sequence
    rope_theta: float = Field(10000.0, gt=0)
    init_std: float = Field(0.02, gt=0)
    # Dropout on attention weights while training. A model trained on one task per sequence can
    # read the task off the LAST example alone; dropping attention weights makes leaning on one
    # position costly. (Measured in docs/scratch.md: at 0.1 the model stops copying the last
    # example, but then picks one task for the whole prompt rather than splitting.)
    attention_dropout: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> "ModelConfig":
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be a multiple of n_heads={self.n_heads}")
        if (self.d_model // self.n_heads) % 2:
            raise ValueError(f"head width d_model/n_heads={self.d_model // self.n_heads} must be even (rotary)")
        return self


def llama_config(cfg: ModelConfig):
    """The ``transformers.LlamaConfig`` for a character-level model of this size."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(char_vocab()), hidden_size=cfg.d_model, intermediate_size=cfg.d_mlp,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads, max_position_embeddings=cfg.max_position_embeddings,
        rope_theta=cfg.rope_theta, initializer_range=cfg.init_std, tie_word_embeddings=False,
        pad_token_id=SPECIAL_TOKENS.index("<pad>"), bos_token_id=None, eos_token_id=None,
        attention_bias=False, mlp_bias=False, attention_dropout=cfg.attention_dropout,
    )


def build_model(cfg: ModelConfig, generator: torch.Generator):
    """A freshly initialised ``LlamaForCausalLM``; weights come only from ``generator``."""
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM(llama_config(cfg))
    # Re-draw every weight from the passed generator, so the init never touches torch's global RNG
    # and one seed always gives one model (in named_parameters order, which is fixed by the config).
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:  # RMSNorm gains
                p.fill_(1.0)
            else:
                p.normal_(0.0, cfg.init_std, generator=generator)
    return model
