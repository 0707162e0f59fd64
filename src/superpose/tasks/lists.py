"""The study's retrieval tasks: a list of distinct elements written ``e1@e2@e3@e4=``, answer the
i-th element. Three element kinds, one family each: digits, letters (a-z, A-Z), lowercase letter
pairs. (The study keeps only letter pairs that are one token for the model's tokenizer; tasks here do
not depend on a tokenizer, so every pair is allowed.)"""

from __future__ import annotations

import itertools
import string

from superpose.tasks.base import InputSpace, register_family

LENGTH = 4  # elements per list, so a family has LENGTH tasks

_KINDS = [  # (family, task prefix, the elements)
    ("digits@=", "digit_at", tuple(string.digits)),
    ("letters@=", "letter_at", tuple(string.ascii_letters)),
    ("pairs@=", "pair_at", tuple(a + b for a, b in itertools.product(string.ascii_lowercase, repeat=2))),
]


def _space(family: str, elements: tuple[str, ...]) -> InputSpace:
    render = "@".join
    if len(elements) <= 10:  # 5,040 lists of digits: list them
        return InputSpace(family, items=tuple(itertools.permutations(elements, LENGTH)), render=render)
    return InputSpace(family, sampler=lambda rng: tuple(rng.sample(elements, LENGTH)), render=render)


def _at(i: int):
    return lambda xs: xs[i]


for _family, _prefix, _elements in _KINDS:
    register_family(_family, _space(_family, _elements), "=", [
        (f"{_prefix}_{i + 1}", _at(i), f"{LENGTH} distinct {_family[:-2]} -> element {i + 1}")
        for i in range(LENGTH)
    ])
