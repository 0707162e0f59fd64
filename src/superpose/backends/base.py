"""The one model interface that experiments see.

A :class:`Backend` scores continuations: given a batch of :class:`ScoreRequest` (a prompt and
several continuations of it), it returns, for each continuation, its tokens and the exact
log-probability of each token given what precedes it (:class:`ContinuationScore`). That is all the
probe, the λ sweep and the real-prompt curves need, and every backend can do it.

Further abilities are optional and declared as class-level :attr:`Backend.capabilities`, so an
experiment can check them from the model string alone, before a run folder exists:

* ``"enumerate"`` -- next-token distributions over the whole vocabulary, on a forked KV cache
  (output enumeration, the scaling run);
* ``"residual"`` -- read and write the residual stream with hooks (task vectors);
* ``"heads"`` -- the logit lens, per-head mean ablation and attention patterns (``superpose mechanism``).

Code that needs them is typed against the :class:`typing.Protocol` of each (:class:`Enumerating`,
:class:`Residual`, :class:`Heads`, at the end of this module), never against a backend class;
:func:`capable` turns a loaded backend into one.

The token boundary. Scoring needs the continuation's tokens *after* the prompt's tokens. We tokenize
``prompt + continuation`` jointly and take the tail when the prompt's own tokens are an exact prefix
(the usual case: the study's separators ``=`` and ``->`` end a token). When a token straddles the
boundary (BPE merged the prompt's last characters with the continuation's first), we encode the
continuation on its own, append it to the prompt's tokens, and flag the score ``straddles=True``.
Every tokenized backend does this in :meth:`TokenizedBackend.encode`, so all backends score the same
token ids.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Protocol, Sequence, TypeVar, runtime_checkable

from superpose.errors import PromptTooLong, SuperposeError

if TYPE_CHECKING:  # annotations only: importing this module loads no torch
    import torch

    from superpose.backends.residual import Patch

_WHAT = {"enumerate": "next-token distributions (output enumeration)",
         "residual": "the residual stream (task vectors)",
         "heads": "the attention heads and the output layer (lens, head ablation)"}


class CapabilityError(SuperposeError):
    """A backend was asked for something it cannot do."""


@dataclass(frozen=True)
class ScoreRequest:
    """A prompt and the continuations to score after it."""

    prompt: str
    continuations: tuple[str, ...]

    def __init__(self, prompt: str, continuations: Sequence[str]):
        object.__setattr__(self, "prompt", prompt)
        object.__setattr__(self, "continuations", tuple(continuations))


@dataclass
class ContinuationScore:
    """A scored continuation: its tokens and the log-probability of each given what precedes it."""

    text: str
    token_ids: list[int]
    token_logprobs: list[float]
    straddles: bool = False  # the joint tokenization merged prompt and continuation; see module doc
    lower_bound: bool = False  # a search that could not see every path (API top-N): prob is a lower bound
    unexplored: float = 0.0  # lower bounds: probability mass the search could not see (prob + this >= truth)

    @property
    def logprob(self) -> float:
        """log P(continuation | prompt), natural log."""
        return math.fsum(self.token_logprobs)

    @property
    def prob(self) -> float:
        """P(continuation | prompt)."""
        return math.exp(self.logprob)

    @property
    def n_tokens(self) -> int:
        """Tokens the continuation was scored as (0 for a lower bound, which sums over token paths)."""
        return 0 if self.lower_bound else len(self.token_logprobs)


@dataclass(frozen=True, eq=False)
class Encoded(ScoreRequest):
    """A request encoded once (:meth:`Backend.prepare`): its token ids, the tokens the model reads, and
    whether they reach beyond the model's training length. Scoring it again does not tokenize again."""

    prompt_ids: list[int]
    tokens: list[tuple[list[int], bool]]  # per continuation: its token ids after the prompt's, straddle flag
    n_read: int = 0  # tokens the model reads: the prompt and all but the last token of the longest continuation
    beyond_training: bool = False  # n_read exceeds the model's training length (known for `superpose train` models)
    encoder: str = ""  # the backend that encoded it: another one encodes the texts afresh

    @property
    def longest(self) -> int:
        """Tokens in the longest continuation."""
        return max(len(ids) for ids, _ in self.tokens)


@dataclass
class Prefill:
    """The state after running a batch of prompts: their KV cache and where each prompt ends."""

    cache: Any  # a transformers Cache, rows = prompts (the KV-cache fork: HFBackend)
    mask: torch.Tensor | None  # [B, width] 1 for real tokens, 0 for left pads; None when no row is padded
    lengths: list[int]  # real tokens per row
    last_logprobs: torch.Tensor  # [B, vocab] float32: log P(next token | prompt)


class PrefixPlan:
    """Exact scoring as next-token questions that share the prompt: one question per distinct prefix.

    Answer token j of continuation k is scored after ``prompt + continuation_k[:j]``; continuations
    that begin alike share those prefixes, and every prefix is asked once, for all the tokens that
    follow it in some continuation. The prompt alone is the first question (the first tokens of all
    K continuations); the others extend it by a few tokens, so an engine with a prefix cache computes
    the prompt once. Engines answer with ``{token id: log P}`` per question (:meth:`scores`).
    """

    def __init__(self, encoded: Sequence[Encoded]):
        self.encoded = list(encoded)
        asks: dict[tuple[int, ...], set[int]] = {}
        for e in self.encoded:
            for ids, _ in e.tokens:
                for j, token in enumerate(ids):
                    asks.setdefault(tuple(e.prompt_ids + ids[:j]), set()).add(token)
        self.questions = [(list(prefix), sorted(tokens)) for prefix, tokens in asks.items()]

    def phases(self) -> tuple[list[int], list[int]]:
        """Indices of the questions on a prompt alone (ask these first: they fill the cache), and the rest."""
        prompts = {tuple(e.prompt_ids) for e in self.encoded}
        alone = [tuple(p) in prompts for p, _ in self.questions]
        return [i for i, a in enumerate(alone) if a], [i for i, a in enumerate(alone) if not a]

    def scores(self, texts: Sequence[Sequence[str]], answers: Sequence[dict[int, float]]) -> list[list[ContinuationScore]]:
        """Per request, the continuations' scores from ``answers[i]`` = {token: log P} of question i."""
        table = {tuple(p): a for (p, _), a in zip(self.questions, answers)}
        out = []
        for request_texts, e in zip(texts, self.encoded):
            scores = []
            for text, (ids, straddles) in zip(request_texts, e.tokens):
                lps = [table[tuple(e.prompt_ids + ids[:j])].get(token) for j, token in enumerate(ids)]
                if any(lp is None for lp in lps):
                    raise SuperposeError(f"the engine returned no log-prob for a token of {text!r}")
                scores.append(ContinuationScore(text, ids, [float(lp) for lp in lps], straddles))
            out.append(scores)
        return out


def encode_prompt(tokenizer: Any, prompt: str) -> list[int]:
    """Prompt token ids, with the special tokens the model expects in front (e.g. Gemma's <bos>)."""
    return list(tokenizer(prompt).input_ids)


def encode_continuation(tokenizer: Any, prompt: str, prompt_ids: list[int], continuation: str) -> tuple[list[int], bool]:
    """(continuation token ids after ``prompt_ids``, whether a token straddled the boundary)."""
    if not continuation:
        raise SuperposeError("cannot score an empty continuation")
    tail = continuation_tail(prompt_ids, list(tokenizer(prompt + continuation).input_ids))
    if tail is not None:
        return tail, False
    return list(tokenizer(continuation, add_special_tokens=False).input_ids), True


def continuation_tail(prompt_ids: list[int], joint_ids: list[int]) -> list[int] | None:
    """The continuation's ids within the joint tokenization when the prompt's ids are an exact prefix
    of it (None: a token straddles the boundary, see the module doc)."""
    n = len(prompt_ids)
    if joint_ids[:n] == prompt_ids and len(joint_ids) > n:
        return joint_ids[n:]
    return None


def beyond_training_message(model: str, n_tokens: int, limit: int) -> str:
    """The one-line warning for a prompt longer than the model's training sequences."""
    return (f"model '{model}' was trained on sequences of at most {limit} tokens; a prompt of "
            f"{n_tokens} tokens reaches positions it never saw, so its scores are extrapolation "
            "(use n_examples within its training length)")


def beyond_training_warning(backend: Backend, requests: Sequence[ScoreRequest]) -> str | None:
    """The one warning an experiment prints when some of its prepared requests read beyond the model's
    training length (None when none does; backends themselves never print)."""
    over = [r.n_read for r in requests if isinstance(r, Encoded) and r.beyond_training]
    limit = backend.trained_length
    return beyond_training_message(backend.name, max(over), limit) if over and limit is not None else None


class Backend(ABC):
    """A model that scores continuations. Subclasses set :attr:`capabilities` and implement :meth:`score`."""

    kind: ClassVar[str]  # "hf", "vllm", ...: the prefix of the model string
    capabilities: ClassVar[frozenset[str]] = frozenset({"score"})
    remote: ClassVar[bool] = False  # True: loading is cheap (no weights) and requests may cost money
    name: str
    batch_size: int  # prompts an experiment should hand to one score() call

    @classmethod
    @abstractmethod
    def load(cls, name: str, dtype: str = "float32", device: str | None = None, **options: Any) -> Backend:
        """Load model ``name`` (the model string without its prefix) with options its
        :mod:`~superpose.backends.options` model accepts; :func:`~superpose.backends.load_backend` calls this."""

    @property
    @abstractmethod
    def provenance(self) -> dict:
        """Where the weights came from: source, dtype, parameter count when known, weight hashes, versions."""

    @property
    @abstractmethod
    def max_context(self) -> int:
        """The longest token sequence the model accepts."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as a prompt (special tokens the model adds in front included)."""

    @abstractmethod
    def score(self, requests: Sequence[ScoreRequest]) -> list[list[ContinuationScore]]:
        """Per request, one :class:`ContinuationScore` per continuation, in order."""

    @abstractmethod
    def prepare(self, request: ScoreRequest) -> ScoreRequest:
        """``request`` checked and ready to score: encoded once (an :class:`Encoded`) where the backend
        tokenizes locally. Raises :class:`~superpose.errors.PromptTooLong` if the prompt plus a
        continuation exceeds the context."""

    @property
    def trained_length(self) -> int | None:
        """Tokens of the longest sequence the model was trained on, when known (``superpose train``)."""
        return None

    def score_one(self, prompt: str, continuations: Sequence[str]) -> list[ContinuationScore]:
        """:meth:`score` for a single prompt."""
        return self.score([ScoreRequest(prompt, continuations)])[0]

    def stream(self, requests: Sequence[ScoreRequest], done: Sequence[bool] | None = None
               ) -> Iterator[tuple[int, list[ContinuationScore]]]:
        """``(index, scores)`` of every request not ``done``, computed in chunks of :attr:`batch_size`.

        Experiments write a record per request as it arrives, so an interrupted run keeps every
        finished chunk. Chunks are cut from the *whole* list, finished requests included: padding and
        batch shape change a score in its last float bits, so a resumed run scores each request in the
        same company as an uninterrupted run and writes the same numbers.
        """
        requests = list(requests)
        done = list(done) if done is not None else [False] * len(requests)
        for start in range(0, len(requests), self.batch_size):
            todo = [i for i in range(start, min(start + self.batch_size, len(requests))) if not done[i]]
            if todo:
                scores = self.score(requests[start: start + self.batch_size])
                for i in todo:
                    yield i, scores[i - start]

    @classmethod
    def require(cls, capability: str, purpose: str) -> None:
        """Raise :class:`CapabilityError` (one line: backend, missing ability, what to use) unless capable."""
        if capability not in cls.capabilities:
            raise CapabilityError(
                f"{purpose} needs {_WHAT.get(capability, capability)}, which the '{cls.kind}' backend "
                f"cannot give; use a transformers model (an embedded name, a folder or a hub id, "
                f"without the '{cls.kind}:' prefix)")

    def bind_run(self, folder: Path) -> None:
        """Keep per-run state (an API backend's request cache) in the run folder ``folder``."""

    def check_access(self) -> None:
        """Remote backends: one cheap request proving the key and the model name (local ones: nothing)."""

    def plan(self, requests: Sequence[ScoreRequest]) -> int | None:
        """Most remote requests scoring ``requests`` may send, refusing more than the backend's cap
        (None: a local model, nothing to count)."""
        return None

    def usage(self) -> dict | None:
        """Requests, tokens and cost spent so far (None for local models)."""
        return None

    def close(self) -> None:
        """Free the model's memory (engines that hold processes stop them)."""


class TokenizedBackend(Backend):
    """A backend with a local Hugging Face tokenizer: shared encoding and the one prompt-fit check."""

    tokenizer: Any
    info: dict  # the provenance, with "max_context"

    @property
    def provenance(self) -> dict:
        return self.info

    @property
    def max_context(self) -> int:
        return int(self.info["max_context"])

    def count_tokens(self, text: str) -> int:
        return len(encode_prompt(self.tokenizer, text))

    def prepare(self, request: ScoreRequest) -> Encoded:
        return self.encode(request)

    def encode(self, request: ScoreRequest) -> Encoded:
        """Token ids of a request (see the module doc for the boundary check); checks that it fits. A
        request this backend encoded already is returned as it is."""
        if isinstance(request, Encoded) and request.encoder == self.name:
            return request
        if not request.continuations:
            raise SuperposeError("no continuations to score")
        prompt_ids = encode_prompt(self.tokenizer, request.prompt)
        tokens = [encode_continuation(self.tokenizer, request.prompt, prompt_ids, c) for c in request.continuations]
        longest = max(len(ids) for ids, _ in tokens)
        self.check_fit(len(prompt_ids), longest)
        n_read = len(prompt_ids) + longest - 1  # the last token is not read
        return Encoded(request.prompt, request.continuations, prompt_ids, tokens, n_read,
                       self.beyond_training(n_read), self.name)

    @property
    def trained_length(self) -> int | None:
        value = self.info.get("trained_length")
        return int(value) if value is not None else None

    def beyond_training(self, n_tokens: int) -> bool:
        """Whether a sequence of ``n_tokens`` is longer than any the model was trained on."""
        limit = self.trained_length
        return limit is not None and n_tokens > limit

    def check_fit(self, n_prompt: int, n_after: int, hint: str = "use fewer examples (n_examples)") -> None:
        """Fail when ``n_prompt`` prompt tokens plus ``n_after`` more exceed the context."""
        if n_prompt + n_after > self.max_context:
            raise PromptTooLong(
                f"prompt of {n_prompt} tokens plus {n_after} more does not fit in the context of "
                f"model '{self.name}' ({self.max_context} tokens); {hint}")


# --- capabilities as protocols ----------------------------------------------------------------------
# What enumeration, the naive oracle, task vectors, the mechanism and the explorer need of a model,
# named by ability, not by class: code is typed against these (``HFBackend`` satisfies all of them), and
# :func:`capable` turns a :class:`Backend` into one after the class-level check of :meth:`Backend.require`.


@runtime_checkable
class Tokenized(Protocol):
    """Scoring with a local tokenizer: requests as token ids, and the one prompt-fit check."""

    name: str
    tokenizer: Any
    capabilities: ClassVar[frozenset[str]]

    @classmethod
    def require(cls, capability: str, purpose: str) -> None: ...

    @property
    def provenance(self) -> dict: ...

    @property
    def max_context(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[ContinuationScore]]: ...

    def stream(self, requests: Sequence[ScoreRequest], done: Sequence[bool] | None = None
               ) -> Iterator[tuple[int, list[ContinuationScore]]]: ...

    def encode(self, request: ScoreRequest) -> Encoded: ...

    def check_fit(self, n_prompt: int, n_after: int, hint: str = ...) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class Prefilling(Tokenized, Protocol):
    """A batch of prompts run once, then continued on forks of its KV cache."""

    def prefill(self, prompts: Sequence[list[int]]) -> Prefill: ...

    def extend(self, pre: Prefill, rows: Sequence[int], tails: Sequence[Sequence[int]],
               keep: Sequence[int] | None = None) -> torch.Tensor: ...


@runtime_checkable
class Enumerating(Prefilling, Protocol):
    """Capability ``enumerate``: next-token distributions over the whole vocabulary."""

    def next_token_logits(self, ids: Sequence[int], last_only: bool = False) -> torch.Tensor: ...

    def end_token_ids(self) -> set[int]: ...


@runtime_checkable
class Residual(Prefilling, Protocol):
    """Capability ``residual``: read (capture) and write (patch) the residual stream."""

    @property
    def n_layers(self) -> int: ...

    def capture_residuals(self, ids: Sequence[Sequence[int]], positions: Sequence[int], layers: Sequence[int],
                          pad: int | None = None) -> dict[int, torch.Tensor]: ...

    def patching(self, patches: Sequence[Patch]) -> AbstractContextManager[list[int]]: ...


@runtime_checkable
class Heads(Residual, Protocol):
    """Capability ``heads``: the logit lens, per-head mean ablation and attention patterns."""

    @property
    def head_shape(self) -> tuple[int, int, int]: ...

    def lens_logprobs(self, hidden: torch.Tensor) -> torch.Tensor: ...

    def score_with_residuals(self, requests: Sequence[ScoreRequest], layers: Sequence[int]
                             ) -> tuple[list[list[ContinuationScore]], dict[int, torch.Tensor]]: ...

    def head_means(self, prompts: Sequence[str]) -> torch.Tensor: ...

    def score_ablated(self, request: ScoreRequest, rows: Sequence[Sequence[tuple[int, int]]],
                      means: torch.Tensor, rows_per_pass: int = 8) -> list[list[ContinuationScore]]: ...

    def attention_weights(self, ids: Sequence[Sequence[int]]) -> torch.Tensor: ...


P = TypeVar("P", Enumerating, Residual, Heads)
_CAPABILITY = {Enumerating: "enumerate", Residual: "residual", Heads: "heads"}


def capable(backend: Backend | Tokenized, protocol: type[P], purpose: str) -> P:
    """``backend`` as ``protocol`` (:class:`Enumerating`, :class:`Residual` or :class:`Heads`), or one line
    (:class:`CapabilityError`) saying what ``purpose`` needs and what to use instead."""
    type(backend).require(_CAPABILITY[protocol], purpose)
    if not isinstance(backend, protocol):
        raise CapabilityError(f"{purpose}: the backend of '{backend.name}' declares '{_CAPABILITY[protocol]}' "
                              f"but lacks the methods of {protocol.__name__}")
    return backend
