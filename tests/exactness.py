"""The cross-backend exactness check: real mixture prompts in five task families (Chinese, German and
French answers among them) plus accented French and German words, scored against the naive
one-pass-per-answer oracle (:class:`~superpose.naive.NaiveScorer`)."""

from __future__ import annotations

from superpose.backends import ContinuationScore, ScoreRequest
from superpose.prompts import MixtureSpec, build_prompt
from superpose.naive import NaiveScorer

FAMILIES = [["copy_op1", "copy_op2", "op1_plus_op2"],
            ["sum_numeral", "sum_chinese", "sum_german", "sum_french"],  # 六十九, fünfundsiebzig, ...
            ["capital", "country_zh", "continent"],
            ["first_letter", "last_letter_upper"],
            ["identity", "negate", "plus_one"]]
ACCENTED = ScoreRequest(  # "->" ends a token, as in the study's prompts: no answer straddles the boundary
    "English->French or German\nwater->eau\nsummer->été\nschool->école\nstreet->Straße\n"
    "greetings->Grüße\nboy->garçon\ngirl->",
    ["fille", "Mädchen", "jeune fille", "élève", "Fräulein"])
TOLERANCE = 1e-4  # in probability, fp32


def mixture_requests(n: int = 2, n_examples: int = 8) -> list[ScoreRequest]:
    """``n`` prompts per family, each with every task's answer, and the accented-words prompt."""
    out = []
    for tasks in FAMILIES:
        for i in range(n):
            p = build_prompt(MixtureSpec(tasks=tasks, n_examples=n_examples), 5, i)
            out.append(ScoreRequest(p.text, p.answers))
    return out + [ACCENTED]


def oracle(smollm, requests: list[ScoreRequest]) -> list[list[ContinuationScore]]:
    """The naive scorer's scores of ``requests`` (one full forward pass per answer)."""
    naive = NaiveScorer(smollm)
    return [naive.score(r.prompt, r.continuations) for r in requests]


def assert_agrees(got: list[list[ContinuationScore]], want: list[list[ContinuationScore]]) -> None:
    """Every probability within :data:`TOLERANCE` of the oracle's, with as many answer tokens."""
    worst = 0.0
    for x, y in zip(got, want, strict=True):
        for a, b in zip(x, y, strict=True):
            assert a.n_tokens == len(b.token_ids) >= 1, (a.text, a.n_tokens, b.token_ids)
            assert a.straddles == b.straddles and not a.lower_bound, a.text
            if a.token_ids:  # backends that know the ids score the oracle's ids
                assert a.token_ids == b.token_ids, a.text
            worst = max(worst, abs(a.prob - b.prob))
    assert worst < TOLERANCE, worst


def has_chinese_and_accents(requests: list[ScoreRequest]) -> bool:
    """Whether the answers include CJK characters and Latin letters with diacritics (the check's point)."""
    answers = "".join(a for r in requests for a in r.continuations)
    return any("\u4e00" <= ch <= "\u9fff" for ch in answers) and any(ch in answers for ch in "éèüäößç")
