"""Character-level tasks of the study's scratch-training experiment, written ``x>y`` one per line.

* ``ret_k`` (k = 1..8): x is 8 distinct letters (a-z, A-Z), y is its k-th letter.
* ``plus_k`` (k = 0..9): x is one digit, y = (x + k) mod 10.
* ``kret`` (explicit-k retrieval, not in the study): x is a digit k (1..8) and then 8 distinct
  letters, y is the k-th letter, e.g. ``3abcdefgh>c``. k is drawn per line and written in it, so
  the task needs ret_k's "select column k" attention without inferring k: a warm start for ret_k.

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


def _k_and_eight_letters(rng: random.Random) -> str:
    """A digit k in 1..8, then 8 distinct letters (the explicit-k retrieval input)."""
    return str(rng.randint(1, RET_LENGTH)) + _eight_letters(rng)


EIGHT_LETTERS = InputSpace(name="eight_distinct_letters", sampler=_eight_letters)
# A 10-element space: 100 examples per prompt must repeat inputs, as in the study.
ONE_DIGIT = InputSpace(name="one_digit", items=tuple("0123456789"), repeats=True)
K_AND_EIGHT_LETTERS = InputSpace(name="k_and_eight_distinct_letters", sampler=_k_and_eight_letters)


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
register(Task("kret", K_AND_EIGHT_LETTERS, ">", lambda x: x[int(x[0])],
              "k (1-8) then 8 distinct letters -> the letter at position k", family="kret"))
