"""Arithmetic families: ``A@B=`` (copy, sums, a constant, mod 10), ``A@B@C->``, the maps ``x->``
(ours and the study's small set), the linear maps ``x,y`` and the one-digit family ``d->``.

Each family is one input space and a table of ``(task, answer, description)``; constants such as C
or the linear maps' coefficients are data in these tables, so adding one is adding a row.
"""

import random

from num2words import num2words

from superpose.tasks.base import InputSpace, register_family

# A != B, so that the two copy tasks never agree on an example.
OPERAND_PAIRS = InputSpace(
    name="operand_pair_at",
    items=tuple((a, b) for a in range(10, 100) for b in range(10, 100) if a != b),
    render=lambda ab: f"{ab[0]}@{ab[1]}",
)
C = 10  # the constant of the A+C, B+C, A+B+C tasks
LETTER_DIGITS = "abcdefghij"  # the study's digit -> letter code for the mod-10 tasks


def _mod10(c: int, letters: bool):
    if letters:
        return lambda ab: LETTER_DIGITS[(ab[0] + ab[1] + c) % 10]
    return lambda ab: str((ab[0] + ab[1] + c) % 10)


register_family("A@B=", OPERAND_PAIRS, "=", [
    ("copy_op1", lambda ab: str(ab[0]), "A@B= -> A (copy the first operand)"),
    ("copy_op2", lambda ab: str(ab[1]), "A@B= -> B (copy the second operand)"),
    ("op1_plus_op2", lambda ab: str(ab[0] + ab[1]), "A@B= -> A+B"),
    (f"op1_plus_{C}", lambda ab: str(ab[0] + C), f"A@B= -> A+{C}"),
    (f"op2_plus_{C}", lambda ab: str(ab[1] + C), f"A@B= -> B+{C}"),
    (f"op1_plus_op2_plus_{C}", lambda ab: str(ab[0] + ab[1] + C), f"A@B= -> A+B+{C}"),
    *[(f"mod10_plus_{c}", _mod10(c, False), f"A@B= -> (A+B+{c}) mod 10, a digit") for c in range(10)],
    *[(f"mod10_letter_plus_{c}", _mod10(c, True), f"A@B= -> (A+B+{c}) mod 10 as a letter a-j")
      for c in range(10)],
])


def _three_operands(rng: random.Random) -> tuple[int, int, int]:
    return rng.randint(10, 99), rng.randint(10, 99), rng.randint(10, 99)


OPERAND_TRIPLES = InputSpace(name="operand_triple_at", sampler=_three_operands,
                             render=lambda abc: "@".join(map(str, abc)))
PAD = 3  # answers zero-padded to the width of the largest, 99+99+99 = 297 (as the study pads)

register_family("A@B@C->", OPERAND_TRIPLES, "->", [
    ("abc_copy_op1", lambda abc: str(abc[0]).zfill(PAD), "A@B@C -> A, zero-padded to 3 digits"),
    ("abc_op1_plus_op2", lambda abc: str(abc[0] + abc[1]).zfill(PAD), "A@B@C -> A+B, zero-padded"),
    ("abc_op1_plus_op2_plus_op3", lambda abc: str(sum(abc)).zfill(PAD), "A@B@C -> A+B+C, zero-padded"),
])

_MAPS = [
    ("identity", lambda x: str(x), "x -> x"),
    ("negate", lambda x: str(-x), "x -> -x"),
    ("plus_one", lambda x: str(x + 1), "x -> x+1"),
    ("minus_one", lambda x: str(x - 1), "x -> x-1"),
    ("double", lambda x: str(2 * x), "x -> 2x"),
    ("square", lambda x: str(x * x), "x -> x^2"),
]
SMALL_INTEGERS = InputSpace(name="integer_0_99", items=tuple(range(100)))
register_family("x->", SMALL_INTEGERS, "->", _MAPS)

# The study's own set: examples from 3, 4, 6, 7, 8, 9 (repeating), the query always 5.
STUDY_INTEGERS = InputSpace(name="integer_study", items=(3, 4, 6, 7, 8, 9), repeats=True, queries=(5,))
register_family("x-> (study)", STUDY_INTEGERS, "->",
                [(f"{name}_study", fn, desc)
                 for name, fn, desc in _MAPS])

# y = a*x + b, written "x,y" as in the study; (a, b) are ours (the study's are run arguments).
LINEAR_MAPS = [(2, 3), (3, -1), (-1, 50), (5, 0)]


def _linear_name(a: int, b: int) -> str:
    return f"linear_{a}x".replace("-", "neg") + (f"_plus_{b}" if b > 0 else f"_minus_{-b}" if b < 0 else "")


register_family("x,y", SMALL_INTEGERS, ",", [
    (_linear_name(a, b), lambda x, a=a, b=b: str(a * x + b), f"x -> {a}x" + (f"{b:+d}" if b else ""))
    for a, b in LINEAR_MAPS
])

DIGITS = InputSpace(name="digit", items=tuple(range(10)))
register_family("d->", DIGITS, "->", [
    ("digit_copy", lambda d: str(d), "digit -> itself"),
    ("next_digit", lambda d: str((d + 1) % 10), "digit -> the next digit, (d+1) mod 10"),
    ("digit_english", lambda d: num2words(d, lang="en"), "digit -> its English word"),
    ("next_digit_english", lambda d: num2words((d + 1) % 10, lang="en"),
     "digit -> the next digit's English word"),
])
