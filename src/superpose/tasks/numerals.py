"""The study's ``A+B->`` family: the sum written as numerals or as words in five languages.

Words come from ``num2words`` (English, French, Spanish, German) and ``cn2an`` (Chinese characters,
e.g. 二十, 一百零一); for every sum from 20 to 198 both equal the study's own tables exactly.
"""

from num2words import num2words

from superpose.tasks.base import InputSpace, register_family

SUM_PAIRS = InputSpace(
    name="operand_pair_plus",
    items=tuple((a, b) for a in range(10, 100) for b in range(10, 100)),
    render=lambda ab: f"{ab[0]}+{ab[1]}",
)


def _words(lang: str):
    return lambda ab: num2words(ab[0] + ab[1], lang=lang)


def _chinese(ab) -> str:
    import cn2an  # imported on first use: it takes a quarter of a second

    return cn2an.an2cn(ab[0] + ab[1])


register_family("A+B->", SUM_PAIRS, "->", [
    ("sum_numeral", lambda ab: str(ab[0] + ab[1]), "the sum in digits"),
    ("sum_english", _words("en"), "in English (num2words)"),
    ("sum_french", _words("fr"), "in French (num2words)"),
    ("sum_spanish", _words("es"), "in Spanish (num2words)"),
    ("sum_german", _words("de"), "in German (num2words)"),
    ("sum_chinese", _chinese, "in Chinese (cn2an)"),
])
