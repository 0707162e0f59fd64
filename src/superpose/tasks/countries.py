"""The study's ``Country->`` family: capital, continent, the name in upper case; and currency.

Data come from the ``countryinfo`` and ``pycountry`` packages (no network). We keep countries with
a population of at least one million, a capital and a currency (accents dropped), so that the answers
are well defined and familiar enough for a small model.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from superpose.tasks.base import InputSpace, Task, register

MIN_POPULATION = 1_000_000


# Currency codes that name funds or units of account, not the money people use.
_FUND_CODES = {"BOV", "CHE", "CHW", "CLF", "COU", "MXV", "USN", "USS", "UYI", "UYW", "XDR"}


def _continent(info: dict) -> str:
    if info["region"] == "Americas":
        return "South America" if info.get("intermediateregion") == "South America" else "North America"
    return info["region"]


def _ascii(text: str) -> str:
    """Drop accents (Bogotá -> Bogota) so every tokenizer sees plain ASCII."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


@lru_cache(maxsize=1)
def country_table() -> dict[str, dict[str, str]]:
    """name -> {capital, continent, currency} for the countries in the input space."""
    import pycountry
    from countryinfo import all_countries

    table: dict[str, dict[str, str]] = {}
    for c in all_countries():
        info = c.info()
        name, capital = info.get("name") or "", info.get("capital") or ""
        if isinstance(capital, list):  # a few countries list several capitals; take the first
            capital = capital[0] if capital else ""
        name, capital = _ascii(name), _ascii(capital)
        codes = [c for c in info.get("currencies") or [] if c not in _FUND_CODES]
        currency = pycountry.currencies.get(alpha_3=codes[0]) if codes else None
        if (not name or not capital or currency is None or not info.get("region")
                or (info.get("population") or 0) < MIN_POPULATION):
            continue
        table[name] = {"capital": capital, "continent": _continent(info), "currency": currency.name}
    return dict(sorted(table.items()))



COUNTRIES = InputSpace(name="country", items=tuple(country_table()))

_FAMILY = "Country->"
register(Task("capital", COUNTRIES, "->", lambda c: country_table()[c]["capital"],
              "Country -> its capital city", family=_FAMILY))
register(Task("continent", COUNTRIES, "->", lambda c: country_table()[c]["continent"],
              "Country -> its continent", family=_FAMILY))
register(Task("country_upper", COUNTRIES, "->", lambda c: c.upper(),
              "Country -> the name in UPPERCASE", family=_FAMILY))
register(Task("currency", COUNTRIES, "->", lambda c: country_table()[c]["currency"],
              "Country -> its currency (ISO 4217 name)", family=_FAMILY))
