"""The study's ``A+B->`` family: the sum written as numerals or as words in three languages."""

from num2words import num2words

from superpose.tasks.base import InputSpace, Task, register

SUM_PAIRS = InputSpace(
    name="operand_pair_plus",
    items=tuple((a, b) for a in range(10, 100) for b in range(10, 100)),
    render=lambda ab: f"{ab[0]}+{ab[1]}",
)

_FAMILY = "A+B->"
register(Task("sum_numeral", SUM_PAIRS, "->", lambda ab: str(ab[0] + ab[1]),
              "A+B -> the sum in digits", family=_FAMILY))
for _code, _lang in [("en", "English"), ("fr", "French"), ("es", "Spanish")]:
    register(Task(
        f"sum_{_lang.lower()}", SUM_PAIRS, "->",
        lambda ab, _code=_code: num2words(ab[0] + ab[1], lang=_code),
        f"A+B -> the sum in {_lang} words (num2words)", family=_FAMILY,
    ))
