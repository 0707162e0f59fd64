"""Training batches as tensors: the string generator's sequences, built over the whole batch at once.

:func:`.data.make_batch` draws each sequence from its own ``random.Random`` and writes it one
character at a time in Python (0.6 s for a batch of the study's ret_k recipe). Here each
sequence's generator only hands over its first ``W`` 32-bit Mersenne Twister outputs, in one C
call (``getrandbits``). Everything Python's ``random`` then does with those words --
``randrange``'s rejection sampling, ``choice``, ``sample``'s pool of letters -- and the answers,
the tokens and the loss mask are integer tensor arithmetic over the batch on the training device.
So batch ``s`` holds ``make_batch``'s sequences token for token, on any device (integers only:
nothing rounds); tests check it against the string generator, which stays the reference.

Python's ``_randbelow(n)`` takes ``k = n.bit_length()`` bits, the top ``k`` bits of one word, and
draws again while the result is ``>= n``; ``sample(LETTERS, 8)`` makes eight such draws with
``n = 52, 51, .., 45``, taking ``pool[j]`` and moving the pool's last letter into the hole.

Supported: the character tasks ``plus_k`` and ``ret_k`` (:func:`supports`); other tasks use the
string generator. Inside, tensors are laid out position-major ([words, batch]): the scans along
a sequence (cumulative sums, the one loop) then run over whole rows of the batch at once. Rows
are right-padded to the longest sequence the tasks can make (:attr:`TensorBatches.width`), not
to the batch's longest: one shape, so a compiled step compiles once and the device never has to
report a size back. Padding carries no loss and, with causal
attention, changes no other position.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from superpose.scratch.data import sequence_rng
from superpose.scratch.tokenizer import char_vocab
from superpose.tasks import Task, get_task
from superpose.tasks.characters import EIGHT_LETTERS, LETTERS, ONE_DIGIT, RET_LENGTH

FAIL_PROBABILITY = 1e-15  # per sequence: the word budget runs out (then the batch is refused, never wrong)
SPARE_SAMPLES = 2  # ret_k: extra 8-letter inputs drawn, for the (1 in 6e9) repeated input the sampler skips
PREFIX_WORDS = 100  # words searched for the task's and the length's draws (each accepts with chance >= 1/2)


@dataclass(frozen=True)
class _Family:
    """How one input space turns words into a line ``x>y\\n``."""

    space: object
    line: int  # tokens per line
    draws: int  # _randbelow draws per input
    bounds: tuple[int, ...]  # the bound n of draw i of an input (all of one bit length)

    @property
    def bits(self) -> int:
        return self.bounds[0].bit_length()


_DIGITS = _Family(ONE_DIGIT, line=4, draws=1, bounds=(10,))  # choice("0123456789")
_LETTERS = _Family(EIGHT_LETTERS, line=RET_LENGTH + 3, draws=RET_LENGTH,
                   bounds=tuple(len(LETTERS) - i for i in range(RET_LENGTH)))  # sample(LETTERS, 8)
_FAMILIES = (_DIGITS, _LETTERS)


def _family_and_k(task: Task) -> tuple[_Family, int] | None:
    """The family of a task and its k, read off the task's own answers (None: not a character task)."""
    if task.separator != ">":
        return None
    if task.space is ONE_DIGIT:
        return _DIGITS, int(task.answer("0"))  # plus_k: (0 + k) mod 10
    if task.space is EIGHT_LETTERS:
        probe = LETTERS[:RET_LENGTH]
        return _LETTERS, probe.index(task.answer(probe)) + 1  # ret_k: the k-th letter
    return None


def supports(task_names: Sequence[str]) -> bool:
    """Whether every task is one this generator builds (plus_k, ret_k)."""
    return all(_family_and_k(get_task(n)) is not None for n in task_names)


def _acceptance(bound: int) -> float:
    """The chance that one word passes ``_randbelow(bound)``."""
    return bound / 2 ** bound.bit_length()


def _words_needed(draws: list[tuple[float, int]]) -> int:
    """Words that hold every draw (``count`` draws accepting with chance ``p`` each) but for
    FAIL_PROBABILITY. The words a draw reads are geometric; Chernoff's bound on their sum N:
    P(N > W) <= exp(-t W) prod E[exp(t X)], minimised over t."""
    log_eps = math.log(FAIL_PROBABILITY)
    t_max = min(-math.log(1 - p) for p, _ in draws if p < 1) if any(p < 1 for p, _ in draws) else 1.0
    best = math.inf
    for i in range(1, 200):
        t = t_max * i / 200
        log_mgf = sum(c * (math.log(p) + t - math.log(1 - (1 - p) * math.exp(t))) for p, c in draws)
        best = min(best, (log_mgf - log_eps) / t)
    return math.ceil(best)


def _top_bits(words: torch.Tensor, bits: int, start: torch.Tensor | None = None) -> torch.Tensor:
    """The top ``bits`` bits of 32-bit words stored as int32 (what ``getrandbits(bits)`` returns).

    words: [words, batch]. Words before ``start`` [batch] read as all ones, which every
    ``_randbelow`` of that bit length rejects: the draws begin at ``start``. Up to 8 bits come back
    as uint8 (a quarter of the bytes for the passes over the whole tensor that follow); callers
    widen what they index or add with.
    """
    c = (words >> (32 - bits)) & ((1 << bits) - 1)  # the mask undoes int32's sign extension
    if bits <= 8:
        c = c.to(torch.uint8)
    if start is None:
        return c
    pos = torch.arange(words.shape[0], device=words.device)[:, None]
    return c.masked_fill(pos < start, (1 << bits) - 1)


def _randbelow_first(c: torch.Tensor, bound: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first ``_randbelow(bound)`` in ``c``: (value, the word after it, found), each [batch].

    c: [words, batch], each word's top ``bound.bit_length()`` bits (see :func:`_top_bits`).
    """
    hit = c < bound  # [words, batch]
    first = hit.byte().argmax(0)  # the first accepted word (argmax returns the first maximum)
    return c.gather(0, first[None])[0].long(), first + 1, hit.any(0)


def _count(flags: torch.Tensor) -> torch.Tensor:
    """Running count of the flags down each column: [words, batch] bool -> int64.

    (From int32: torch's CPU cumsum of a bool tensor along dim 0 measured 3x slower.)
    """
    return flags.to(torch.int32).cumsum(0)


def _compact(flags: torch.Tensor, values: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The values at the first ``n`` flagged positions of each column, in order, and the flag counts.

    flags, values: [words, batch] -> [n, batch] (0 where a column has fewer), [batch].
    """
    rank = _count(flags)  # [words, batch]
    count = rank[-1].clone()
    slot = rank.masked_fill_(~flags, 0).clamp_(max=n + 1)  # rows 0 and n+1 collect the rest, then go
    out = torch.zeros(n + 2, flags.shape[1], dtype=values.dtype, device=values.device)
    return out.scatter_(0, slot, values)[1:n + 1], count


def _digits(words: torch.Tensor, start: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` draws of ``choice("0123456789")`` from word ``start`` on: (digits [n, batch], count)."""
    c = _top_bits(words, _DIGITS.bits, start)  # [words, batch]
    return _compact(c < 10, c, n)


def _letter_draws(words: torch.Tensor, start: torch.Tensor, n: int, ambiguous_max: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``j`` of ``n`` consecutive draws of ``sample(LETTERS, 8)``: (j [n, batch], accepted count).

    Draw i of a sample accepts a 6-bit value c iff c < 52 - i. Values below 45 are accepted by
    every draw and values from 52 on by none; only the ~11 % in between depend on which draw
    reads them, so one loop visits just those, in order (at most ``ambiguous_max`` per sequence).
    """
    top, low = _LETTERS.bounds[0], _LETTERS.bounds[-1]  # 52, 45
    c = _top_bits(words, _LETTERS.bits, start)  # [words, batch]
    width = c.shape[0]
    sure = c < low  # [words, batch]
    maybe = (c < top) ^ sure
    pos = torch.arange(width, device=c.device)[:, None].expand_as(c)
    at, n_maybe = _compact(maybe, pos, ambiguous_max)  # [Q, batch]: where each ambiguous word is
    at = torch.where(torch.arange(ambiguous_max, device=c.device)[:, None] < n_maybe, at, width)
    clipped = at.clamp(max=width - 1)
    before = _count(sure).gather(0, clipped)  # sure accepts before it (it is not one itself)
    limit = top - c.gather(0, clipped)  # draw i accepts c iff i < 52 - c
    decided = []
    extra = torch.zeros_like(before[0])  # ambiguous words accepted so far
    for q in range(ambiguous_max):
        accept = (before[q] + extra) & (RET_LENGTH - 1) < limit[q]  # the draw's index within its sample
        decided.append(accept)
        extra += accept
    accepted = torch.cat([sure, torch.zeros_like(sure[:1])])  # [words + 1, batch]; row `width` is a sink
    accepted.scatter_(0, at, torch.stack(decided))
    j, count = _compact(accepted[:width], c, n)
    return j, torch.where(n_maybe > ambiguous_max, -1, count)  # more than visited: refuse the batch


def _letters_from_pool(j: torch.Tensor) -> torch.Tensor:
    """The letters (indices into LETTERS) that ``sample``'s pool gives for draws j [8, ...].

    Draw i takes pool[j_i] and writes pool[51 - i] (the last letter still in play) into slot j_i.
    The pool is the identity but for those writes, so each lookup replays the earlier ones.
    """
    slots: list[torch.Tensor] = []  # slot written by draw i
    values: list[torch.Tensor] = []  # and what it holds since

    def lookup(x: torch.Tensor) -> torch.Tensor:
        v = x
        for s, w in zip(slots, values):  # later writes win
            v = torch.where(s == x, w, v)
        return v

    out = []
    for i in range(RET_LENGTH):
        out.append(lookup(j[i]))
        values.append(lookup(torch.full_like(j[i], len(LETTERS) - 1 - i)))
        slots.append(j[i])
    return torch.stack(out)


def _first_occurrences(keys: torch.Tensor) -> torch.Tensor:
    """keys [n, batch] -> [n, batch] bool: not equal to any earlier key of its column."""
    ordered, order = keys.sort(dim=0, stable=True)  # equal keys keep their order: the first comes first
    repeat = torch.cat([torch.zeros_like(ordered[:1], dtype=torch.bool), ordered[1:] == ordered[:-1]])
    return ~torch.zeros_like(repeat).scatter_(0, order, repeat)


class TensorBatches:
    """The batch of each training step as tensors on ``device``: ``make_batch``'s, token for token.

    ``batch(step)`` is sequences ``step * batch_size ..``, padded to :attr:`width`. A word budget
    that runs out (probability < 1e-15 per sequence) is never silently wrong: it is recorded on the
    device, and :meth:`check` (called where the loop reads its loss anyway) raises.
    """

    def __init__(self, task_names: Sequence[str], n_examples: int, seed: int, batch_size: int,
                 device: torch.device | str = "cpu", min_examples: int | None = None):
        tasks = [get_task(n) for n in task_names]
        found = [_family_and_k(t) for t in tasks]
        missing = [t.name for t, f in zip(tasks, found) if f is None]
        if missing:
            raise ValueError(f"the tensor generator builds plus_k and ret_k only, not {missing}")
        self.seed, self.batch_size, self.device = seed, batch_size, torch.device(device)
        self.n_examples, self.min_examples = n_examples, min_examples
        self.n_tasks = len(tasks)
        self.families = [f for f in _FAMILIES if any(g is f for g, _ in found)]
        self.task_family = torch.tensor([self.families.index(f) for f, _ in found], device=self.device)
        self.task_k = torch.tensor([k for _, k in found], device=self.device)
        self.lines = n_examples + 1  # the most lines a sequence has (examples and the query)
        self.width = max(f.line for f in self.families) * self.lines
        prefix = [(_acceptance(self.n_tasks), 1)]  # the task's draw, then the length's
        if min_examples is not None:
            prefix.append((_acceptance(n_examples - min_examples + 1), 1))
        self.n_words = max(_words_needed(prefix + [
            (_acceptance(b), self.lines + (SPARE_SAMPLES if f is _LETTERS else 0)) for b in f.bounds])
            for f in self.families)
        # Ambiguous ret_k words among n_words (p = 7/64): Bernstein's bound at FAIL_PROBABILITY.
        mean, log_eps = self.n_words * 7 / 64, -math.log(FAIL_PROBABILITY)
        self.ambiguous_max = math.ceil(mean + log_eps / 3 + math.sqrt((log_eps / 3) ** 2 + 2 * log_eps * mean))
        vocab = char_vocab()
        self.digit_ids = torch.tensor([vocab[c] for c in "0123456789"], device=self.device)
        self.letter_ids = torch.tensor([vocab[c] for c in LETTERS], device=self.device)
        self.gt, self.newline = vocab[">"], vocab["\n"]
        # Which tokens of a line carry loss: the answer and its newline. Built once: a tensor made
        # from a Python list on a GPU is a copy the host waits for.
        self.line_loss = {f: torch.tensor([False] * (f.line - 2) + [True, True], device=self.device)[:, None]
                          for f in self.families}
        self.refused = torch.zeros((), dtype=torch.bool, device=self.device)  # a budget ran out

    def words(self, start: int) -> torch.Tensor:
        """The first n_words outputs of the generators of sequences ``start ..``: [words, batch] int32."""
        w, rng = self.n_words, random.Random()
        raw = b"".join(sequence_rng(self.seed, start + j, rng).getrandbits(32 * w).to_bytes(4 * w, "little")
                       for j in range(self.batch_size))  # getrandbits puts the first output lowest
        words = np.frombuffer(raw, dtype="<i4").reshape(self.batch_size, w)  # int32 holding a uint32's bits
        words = torch.from_numpy(words.T.copy())  # [words, batch]
        if self.device.type == "cuda":  # pinned: the copy queues behind the running step, the host goes on
            words = words.pin_memory()
        return words.to(self.device, non_blocking=True)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids [batch, width] long, loss_mask [batch, width] bool) of ``step``."""
        return self.sequences(step * self.batch_size)

    def sequences(self, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sequences ``start .. start+batch_size-1``: (input_ids, loss_mask), [batch, width] each."""
        words = self.words(start)  # [words, batch]
        head = words[:PREFIX_WORDS]  # (a row whose prefix draws are not in it is refused)
        # tasks[rng.randrange(len(tasks))]
        task, cursor, ok = _randbelow_first(_top_bits(head, self.n_tasks.bit_length()), self.n_tasks)
        lines = torch.full_like(task, self.lines)  # [batch]: examples + query
        if self.min_examples is not None:  # rng.randint(min_examples, n_examples)
            span = self.n_examples - self.min_examples + 1
            extra, cursor, found = _randbelow_first(_top_bits(head, span.bit_length(), cursor), span)
            lines, ok = self.min_examples + extra + 1, ok & found
        family, k = self.task_family[task], self.task_k[task]  # [batch]
        ids = mask = None
        for index, fam in enumerate(self.families):
            f_ids, f_mask, f_ok = self._rows(fam, words, cursor, lines, k)
            mine = family == index  # [batch]
            ids = f_ids if ids is None else torch.where(mine, f_ids, ids)
            mask = f_mask if mask is None else torch.where(mine, f_mask, mask)
            ok = ok & (f_ok | ~mine)
        self.refused |= ~ok.all()
        return ids.T.contiguous(), mask.T.contiguous()

    def _rows(self, fam: _Family, words: torch.Tensor, cursor: torch.Tensor, lines: torch.Tensor,
              k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every sequence built as one of ``fam`` ([width, batch] ids and mask; other families' are dropped)."""
        n = self.lines
        if fam is _DIGITS:
            x, count = _digits(words, cursor, n)  # [lines, batch]
            x, ok = x.long(), count >= lines
            y = (x + k) % 10
            tokens = torch.stack([self.digit_ids[x], torch.full_like(x, self.gt), self.digit_ids[y],
                                  torch.full_like(x, self.newline)], 1)  # [lines, 4, batch]
        else:
            samples = n + SPARE_SAMPLES
            j, count = _letter_draws(words, cursor, samples * RET_LENGTH, self.ambiguous_max)
            j = j.view(samples, RET_LENGTH, -1).transpose(0, 1).contiguous()  # [8, samples, batch]
            letters = _letters_from_pool(j).long()  # [8, samples, batch]
            key = (letters * (len(LETTERS) ** torch.arange(RET_LENGTH, device=self.device))[:, None, None]).sum(0)
            inputs, kept = _compact(_first_occurrences(key), torch.arange(samples, device=self.device)[:, None]
                                    .expand(-1, key.shape[1]), n)  # the sampler skips a repeated input
            ok = (count >= samples * RET_LENGTH) & (kept >= lines)
            x = letters.gather(1, inputs[None].expand(RET_LENGTH, -1, -1))  # [8, lines, batch]
            at = (k - 1).clamp(0, RET_LENGTH - 1)  # (other families' k are dropped with their rows)
            y = x.gather(0, at[None, None].expand(1, n, -1))  # [1, lines, batch]: the k-th letter
            tokens = torch.cat([self.letter_ids[x], torch.full_like(y, self.gt), self.letter_ids[y],
                                torch.full_like(y, self.newline)]).transpose(0, 1)  # [lines, 11, batch]
        used = (torch.arange(n, device=self.device)[:, None] < lines)[:, None]  # [lines, 1, batch]
        ids = torch.where(used, tokens, 0).flatten(0, 1)  # [lines * line, batch]
        mask = (used & self.line_loss[fam]).flatten(0, 1)
        pad = self.width - ids.shape[0]
        return torch.nn.functional.pad(ids, (0, 0, 0, pad)), torch.nn.functional.pad(mask, (0, 0, 0, pad)), ok

    def check(self) -> None:
        """Raise if a batch so far could not be built from its word budget (reads one device flag)."""
        if bool(self.refused):
            raise RuntimeError("the tensor batch generator ran out of random words for a sequence "
                               f"(probability < {FAIL_PROBABILITY:g} per sequence); please report it")
