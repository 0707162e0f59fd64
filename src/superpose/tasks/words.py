"""The study's ``word->`` family: first or last letter, lower or upper case.

Words are the most frequent English words in ``wordfreq`` that are 4-10 ASCII letters long and
whose first and last letters differ (so the first- and last-letter tasks never agree).
"""

from __future__ import annotations

from superpose.tasks.base import InputSpace, Task, register

N_CANDIDATES = 5000


def _words() -> tuple[str, ...]:
    from wordfreq import top_n_list

    keep = []
    for w in top_n_list("en", N_CANDIDATES):
        if w.isascii() and w.isalpha() and w.islower() and 4 <= len(w) <= 10 and w[0] != w[-1]:
            keep.append(w)
    return tuple(keep)


WORDS = InputSpace(name="english_word", items=_words())

_FAMILY = "word->"
register(Task("first_letter", WORDS, "->", lambda w: w[0], "word -> first letter", family=_FAMILY))
register(Task("first_letter_upper", WORDS, "->", lambda w: w[0].upper(),
              "word -> first letter, upper case", family=_FAMILY))
register(Task("last_letter", WORDS, "->", lambda w: w[-1], "word -> last letter", family=_FAMILY))
register(Task("last_letter_upper", WORDS, "->", lambda w: w[-1].upper(),
              "word -> last letter, upper case", family=_FAMILY))
