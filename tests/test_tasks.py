import json
import random
import subprocess
import sys

import pytest

from superpose.errors import ConfigError, SuperposeError
from superpose.prompts import MixtureSpec, build_prompt
from superpose.tasks import (InputSpace, Task, catalogue, common_space, get_task, list_tasks,
                             load_task_file, render_catalogue)
from superpose.tasks.countries import country_table, study_country_table


@pytest.mark.parametrize("name, x, answer", [
    ("copy_op1", (57, 23), "57"),
    ("copy_op2", (57, 23), "23"),
    ("op1_plus_op2", (57, 23), "80"),
    ("sum_numeral", (57, 23), "80"),
    ("sum_english", (57, 23), "eighty"),
    ("sum_french", (48, 23), "soixante et onze"),
    ("sum_spanish", (57, 26), "ochenta y tres"),
    ("capital", "France", "Paris"),
    ("continent", "Brazil", "South America"),
    ("country_upper", "France", "FRANCE"),
    ("currency", "Japan", "JPY"),
    ("currency_name", "Japan", "Yen"),
    ("capital", "Kazakhstan", "Astana"),
    ("currency", "Bulgaria", "EUR"),
    ("country_letters", "Guinea-Bissau", "12 letters"),
    ("country_zh", "France", "法国"),
    ("capital_study", "Kazakhstan", "Astana"),
    ("currency_study", "Afghanistan", "AFN"),
    ("country_letters_study", "United Kingdom", "13 letters"),
    ("sum_german", (57, 44), "einhunderteins"),
    ("sum_chinese", (10, 10), "二十"),
    ("sum_chinese", (57, 44), "一百零一"),
    ("sum_chinese", (57, 53), "一百一十"),
    ("op1_plus_10", (57, 23), "67"),
    ("op1_plus_op2_plus_10", (57, 23), "90"),
    ("mod10_plus_3", (57, 23), "3"),
    ("mod10_letter_plus_3", (57, 23), "d"),
    ("abc_copy_op1", (57, 23, 11), "057"),
    ("abc_op1_plus_op2_plus_op3", (57, 23, 11), "091"),
    ("digit_at_3", ("3", "7", "1", "9"), "1"),
    ("pair_at_2", ("ab", "cd", "ef", "gh"), "cd"),
    ("next_digit", 9, "0"),
    ("next_digit_english", 9, "zero"),
    ("linear_3x_minus_1", 7, "20"),
    ("square_study", 5, "25"),
    ("first_letter", "house", "h"),
    ("first_letter_upper", "house", "H"),
    ("last_letter", "house", "e"),
    ("last_letter_upper", "house", "E"),
    ("negate", 7, "-7"),
    ("square", 7, "49"),
])
def test_task_answers(name, x, answer):
    assert get_task(name).answer(x) == answer


def test_formats_follow_the_study():
    assert get_task("copy_op1").example((57, 23)) == "57@23=57"
    assert get_task("sum_numeral").query((57, 23)) == "57+23->"
    assert get_task("capital").example("France") == "France->Paris"
    assert get_task("last_letter").example("house") == "house->e"
    assert get_task("digit_at_1").example(("3", "7", "1", "9")) == "3@7@1@9=3"
    assert get_task("abc_op1_plus_op2").example((57, 23, 11)) == "57@23@11->080"
    assert get_task("linear_2x_plus_3").example(7) == "7,17"
    assert get_task("country_letters").example("Chad") == "Chad->4 letters"


def _inputs(task, n_drawn=300):
    """Every input of a listed space; a fixed sample of a space that is drawn at random."""
    space = task.space
    if space.items is not None:
        return space.items
    rng = random.Random(0)
    return [space.draw_one(rng) for _ in range(n_drawn)]


def test_every_task_answers_every_input_on_one_line():
    for t in list_tasks():
        for x in _inputs(t):
            a = t.answer(x)
            assert isinstance(a, str) and a.strip() == a and a and "\n" not in a and "\r" not in a, (t.name, x, a)


@pytest.mark.parametrize("family", sorted({t.family for t in list_tasks()}))
def test_every_family_writes_the_study_format(family):
    """`{examples}\n{query}`: example lines input+separator+answer, no added spaces."""
    tasks = [t for t in list_tasks() if t.family == family]
    assert " " not in tasks[0].separator
    names = [t.name for t in tasks][:4]
    spec = MixtureSpec(tasks=names, n_examples=8)
    p = build_prompt(spec, seed=0, index=0)
    lines = p.text.split("\n")
    assert len(lines) == 9
    space = common_space([get_task(n) for n in names])
    assert lines[-1] == p.query_input + tasks[0].separator
    for line, x, k in zip(lines, p.example_inputs, p.example_tasks):
        assert line.startswith(x + tasks[0].separator) and line[len(x + tasks[0].separator):]
    assert len(set(p.answers)) == len(names)
    if space.queries is not None:
        assert p.query_input in [space.render(q) for q in space.queries]
        assert p.query_input not in p.example_inputs


def test_country_table_covers_the_sovereign_states():
    table = country_table()
    assert len(table) >= 160 and len(table) == 193  # the UN member states
    assert len({r["iso2"] for r in table.values()}) == len(table)  # no state twice (Burma/Myanmar)
    assert all(r["capital"] and r["continent"] and r["currency"] and r["name_zh"] for r in table.values())
    for name in ["Belarus", "Bulgaria", "Croatia", "Cuba", "Mauritania", "Venezuela", "Zambia",
                 "Andorra", "Iceland", "Luxembourg", "Malta", "Monaco"]:
        for t in list_tasks():
            if t.family == "Country->":
                assert name in t.space.items, (name, t.name)
    assert table["Kazakhstan"]["capital"] == "Astana"
    for not_a_state in ["Burma", "Hong Kong", "Puerto Rico", "Scotland", "Palestine", "Palestinian Territory"]:
        assert not_a_state not in table
    assert all(name.isascii() and r["capital"].isascii() for name, r in table.items())


def test_study_table_is_the_studys():
    study = study_country_table()
    assert len(study) == 168
    # the study counts letters as len(name without spaces); on its names that is our letter count
    for name in study:
        assert get_task("country_letters_study").answer(name) == f"{len(name.replace(' ', ''))} letters"


def test_a_mixture_draws_from_the_inputs_every_task_answers():
    rows = InputSpace("rows", items=("a", "b", "c", "d"))
    has_x = rows.subset(lambda r: r != "b", name="rows with x")
    has_y = rows.subset(lambda r: r != "c", name="rows with y")
    tx = Task("tx", has_x, "->", str.upper)
    ty = Task("ty", has_y, "->", lambda r: r * 2)
    tz = Task("tz", rows, "->", lambda r: r + "!")
    assert common_space([tx, ty, tz]).items == ("a", "d")
    assert common_space([tx, tz]) is has_x
    with pytest.raises(SuperposeError, match="cannot be mixed"):
        common_space([tx, Task("other", InputSpace("other", items=("a",)), "->", str)])


def test_catalogue_lists_every_task_by_family_without_cutting_names():
    text = render_catalogue()
    families = catalogue()
    assert sum(len(v) for v in families.values()) == len(list_tasks())
    for family, entries in families.items():
        assert f"\n{family}  (" in text
        for e in entries:
            assert f"  {e.task}  " in text and e.example in text
    # only a task line whose name and example alone pass 80 columns may (its description moves down)
    from superpose.tasks.catalogue import _width

    descriptions = {e.description for entries in families.values() for e in entries}
    for line in text.splitlines():
        if _width(line) > 80:
            assert not any(line.endswith(d) for d in descriptions), line


def test_listing_tasks_imports_no_heavy_library():
    code = ("import sys; from superpose.tasks import render_catalogue; render_catalogue(); "
            "print([m for m in ('torch', 'transformers', 'sklearn', 'matplotlib') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_missing_data_package_removes_only_its_family():
    # A real interpreter where importing wordfreq fails as it does when the package is absent (as on
    # a GPU image): the plus_k tasks still work, and asking for a word task says what is missing.
    code = """
import sys
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "wordfreq":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Absent())
from superpose.tasks import get_task, list_tasks
assert get_task("plus_2").answer(9) == "1"
assert not any(t.family == "word->" for t in list_tasks())
from superpose.tasks import render_catalogue
assert "not loaded: the words tasks (wordfreq is not installed)" in render_catalogue()
get_task("first_letter")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    assert "unknown task 'first_letter'" in out.stderr
    assert "Not loaded: the words tasks (wordfreq is not installed)" in out.stderr


def test_word_inputs_have_distinct_first_and_last_letters():
    words = get_task("first_letter").space.items
    assert len(words) > 1000
    assert all(w[0] != w[-1] and w.isalpha() for w in words)


def test_families_share_their_input_space():
    families = {}
    for t in list_tasks():
        families.setdefault(t.family, set()).add(id(t.space.root))
    assert all(len(spaces) == 1 for spaces in families.values())


def test_unknown_task_suggests_close_names():
    with pytest.raises(SuperposeError, match="unknown task 'copy_op3'.*copy_op1"):
        get_task("copy_op3")


def test_user_tasks_from_csv_jsonl_yaml(tmp_path):
    csv_file = tmp_path / "opposites.csv"
    csv_file.write_text("input,antonym,plural\nhot,cold,hots\nbig,small,bigs\n")
    tasks = load_task_file(csv_file)
    assert [t.name for t in tasks] == ["antonym", "plural"]
    assert tasks[0].example("hot") == "hot->cold"
    assert tasks[0].space is tasks[1].space  # mixable

    jsonl = tmp_path / "caps.jsonl"
    jsonl.write_text("\n".join(json.dumps({"input": w, "output": w.upper()}) for w in ["a", "b"]) + "\n")
    (only,) = load_task_file(jsonl)
    assert only.name == "caps" and only.answer("b") == "B"

    yml = tmp_path / "t.yaml"
    yml.write_text("name: yes_no\nseparator: ' = '\nrows:\n  - {input: '1', output: odd}\n  - {input: '2', output: even}\n")
    (t,) = load_task_file(yml)
    assert t.name == "yes_no" and t.example("2") == "2 = even"


@pytest.mark.parametrize("filename, content, message", [
    ("a.csv", "input,output\nhot,cold\nbig\n", r"a.csv, line 3: expected 2 columns"),
    ("b.csv", "word,output\nhot,cold\n", r"b.csv: missing the 'input' column"),
    ("c.csv", "input,output\nhot,cold\nhot,warm\n", r"c.csv, line 3: input 'hot' appears twice"),
    ("d.csv", "input,output\nhot,\n", r"d.csv, line 2: field 'output' must be a non-empty string"),
    ("e.jsonl", '{"input": "a", "output": "b"}\n{"input": "c", \n', r"e.jsonl, line 2: not valid JSON"),
    ("f.yaml", "rows: 3\n", r"f.yaml: expected a mapping with a list field 'rows'"),
    ("g.txt", "x", r"g.txt: expected a .csv, .jsonl or .yaml file"),
    ("h.csv", "input,capital\nFrance,Paris\n", r"clashes with a built-in task"),
])
def test_malformed_task_files_name_the_file_and_place(tmp_path, filename, content, message):
    path = tmp_path / filename
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_task_file(path)
