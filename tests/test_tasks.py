import json

import pytest

from superpose.errors import ConfigError, SuperposeError
from superpose.tasks import get_task, list_tasks, load_task_file


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
    ("currency", "Japan", "Yen"),
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


def test_word_inputs_have_distinct_first_and_last_letters():
    words = get_task("first_letter").space.items
    assert len(words) > 1000
    assert all(w[0] != w[-1] and w.isalpha() for w in words)


def test_families_share_their_input_space():
    families = {}
    for t in list_tasks():
        families.setdefault(t.family, set()).add(id(t.space))
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
