"""Character-level tasks of the study's scratch-training experiment, written ``x>y`` one per line.

* ``ret_k`` (k = 1..8): x is 8 distinct letters (a-z, A-Z), y is its k-th letter.
* ``plus_k`` (k = 0..9): x is one digit, y = (x + k) mod 10.

Each family shares one input space, so tasks of a family mix in one prompt. Every answer is one
character, so a probe scores it with a single token of a character-level model.
"""

from __future__ import annotations

import random
import string

from superpose.tasks.base import InputSpace, Task, register

LETTERS = string.ascii_lowercase + string.ascii_uppercase
RET_LENGTH = 8


def _eight_letters(rng: random.Random) -> str:
    """A string of 8 distinct letters."""
    return "".join(rng.sample(LETTERS, RET_LENGTH))


EIGHT_LETTERS = InputSpace(name="eight_distinct_letters", sampler=_eight_letters)
# A 10-element space: 100 examples per prompt must repeat inputs, as in the study.
ONE_DIGIT = InputSpace(name="one_digit", items=tuple("0123456789"), repeats=True)


def _ret(k: int):
    return lambda x: x[k - 1]


def _plus(k: int):
    return lambda x: str((int(x) + k) % 10)


for _k in range(1, RET_LENGTH + 1):
    register(Task(f"ret_{_k}", EIGHT_LETTERS, ">", _ret(_k),
                  f"8 distinct letters -> the letter at position {_k}", family="ret_k"))
for _k in range(10):
    register(Task(f"plus_{_k}", ONE_DIGIT, ">", _plus(_k),
                  f"digit x -> (x + {_k}) mod 10", family="plus_k"))
