"""Hostile configs and task files (issue 29, items 5, 6, 10, 11, 15, 16): each is one line per problem
marked `error:`, exit status 2, no run folder, no traceback, and never the raw input echoed back."""

import resource
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from superpose.cli import main
from test_reliability import write  # the same file writer as the first reliability tests

TINY = {"name": "tiny", "models": ["smollm2-135m"], "seed": 1, "n_prompts": 3,
        "mixtures": [{"name": "copy", "tasks": ["copy_op1", "copy_op2"], "n_examples": 6}]}
ROOT = Path(__file__).resolve().parents[1]


def cli(capsys, *args):
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def refused(code, err, *needles):
    """Exit status 2, every line marked `error:`, no traceback, and each needle in the message."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert lines and all(line.startswith("error: ") for line in lines) and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)
    return lines


def config(tmp_path, **change):
    return write(tmp_path, "config.yaml", {**TINY, **change})


# --- item 6: YAML alias bombs -----------------------------------------------------------------------

BOMB = "\n".join(["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
                 + [f"{x}: &{x} [{', '.join([f'*{p}'] * 9)}]" for p, x in zip("abcdefgh", "bcdefghi")])


def _small_memory():  # 3 GiB of address space: the bomb would take gigabytes, a refusal takes little
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


@pytest.mark.parametrize("command, name, text", [
    (["run"], "bomb.yaml", BOMB + "\ndtype: [*i, *i, *i]\nname: x\n"),
    (["tasks", "--task-file"], "bomb.yaml", BOMB + "\nname: [*i, *i]\nrows: [{input: a, output: b}]\n"),
])
def test_a_yaml_alias_bomb_is_refused_at_once_in_little_memory(tmp_path, command, name, text):
    path = write(tmp_path, name, text)
    done = subprocess.run([sys.executable, "-m", "superpose.cli", *command, str(path), "--out", str(tmp_path / "runs")]
                          if command == ["run"] else [sys.executable, "-m", "superpose.cli", *command, str(path)],
                          capture_output=True, text=True, timeout=120, preexec_fn=_small_memory)
    refused(done.returncode, done.stderr, str(path), "anchors and aliases (&name, *name) are not accepted")
    assert "lol" not in done.stderr and not (tmp_path / "runs").exists()


def test_an_error_never_echoes_a_long_value(tmp_path, capsys):
    path = config(tmp_path, dtype="x" * 5000)
    lines = refused(*cli(capsys, "run", path, "--out", tmp_path / "runs"), "dtype", "a string of 5,000 characters")
    assert "xxxxxxxxxx" not in "".join(lines)


# --- item 11: configs -----------------------------------------------------------------------------

def test_duplicate_yaml_keys_are_refused(tmp_path, capsys):
    path = write(tmp_path, "dup.yaml", yaml.safe_dump(TINY) + "seed: 2\n")
    refused(*cli(capsys, "run", path, "--out", tmp_path / "runs"), f"config {path}: not valid YAML at line",
            "a key appears twice")
    tasks = write(tmp_path, "dup-task.yaml", "name: t\nname: u\nrows: [{input: a, output: b}]\n")
    refused(*cli(capsys, "tasks", "--task-file", tasks), "a key appears twice")
    assert not (tmp_path / "runs").exists()


def test_a_number_python_cannot_convert_is_one_line(tmp_path, capsys):
    path = write(tmp_path, "big.yaml", yaml.safe_dump({k: v for k, v in TINY.items() if k != "seed"}) + "seed: " + "7" * 5001 + "\n")
    refused(*cli(capsys, "run", path, "--out", tmp_path / "runs"),
            f"config {path}: not valid YAML (Exceeds the limit (4300 digits) for integer string conversion)")
    tasks = write(tmp_path, "big.jsonl", '{"input": 1' + "7" * 5001 + ', "out": "b"}\n')
    refused(*cli(capsys, "tasks", "--task-file", tasks), f"task file {tasks}, line 1: not valid JSON")


def test_a_task_file_that_is_not_a_path_is_one_line(tmp_path, capsys):
    refused(*cli(capsys, "run", config(tmp_path, task_files=[123]), "--out", tmp_path / "runs"),
            "task_files[0]: expected a file path, got 123")


def test_every_line_of_a_config_with_several_errors_is_marked(tmp_path, capsys):
    lines = refused(*cli(capsys, "run", config(tmp_path, dtype="float8", seed="x", colour=1), "--out", tmp_path / "r"))
    assert len(lines) == 3 and {line.split(": ")[2] for line in lines} == {"dtype", "seed", "colour"}, lines


# --- items 5, 10, 11: task files ------------------------------------------------------------------

def test_a_lone_surrogate_in_a_jsonl_task_file_is_refused_at_validation(tmp_path, capsys):
    path = write(tmp_path, "s.jsonl", '{"input": "a", "out": "b"}\n{"input": "c\\ud800", "out": "d"}\n')
    refused(*cli(capsys, "tasks", "--task-file", path),
            f"task file {path}, line 2: field 'input' is not valid Unicode text")
    runs = tmp_path / "runs"
    mixture = {"name": "m", "tasks": ["out", "copy_op1"], "n_examples": 2}
    refused(*cli(capsys, "run", config(tmp_path, task_files=[str(path)], mixtures=[mixture]), "--out", runs),
            f"task file {path}, line 2")
    assert not runs.exists()  # refused before any folder (and no prompts.jsonl.tmp)


def test_a_symlinked_task_file_shows_none_of_its_target(tmp_path, capsys):
    secret = write(tmp_path, "shadow", "root:$6$s3cr3tSALT$hashhashhash:19000:0:99999:7:::\ndaemon:*:19000\n")
    link = tmp_path / "tasks.csv"
    link.symlink_to(secret)
    code, err = cli(capsys, "tasks", "--task-file", link)
    refused(code, err, f"task file {link}: missing the 'input' column")
    assert "s3cr3t" not in err and "hashhash" not in err and "daemon" not in err, err
    secret.write_text("input,out\nroot:$6$s3cr3t,a\nroot:$6$s3cr3t,b\n")  # an input twice: the value stays hidden
    code, err = cli(capsys, "tasks", "--task-file", link)
    refused(code, err, "line 3: an input appears twice")
    assert "s3cr3t" not in err, err


@pytest.mark.parametrize("name, text, needle", [
    ("cols.csv", "input,out,out\na,b,c\n", "line 1: column out appears twice in the header"),
    ("empty.csv", "input,\na,b\nc,d\n", "a task name must be non-empty text on one line"),
    ("break.csv", 'input,"anto\nnym"\na,b\nc,d\n', "a task name must be non-empty text on one line"),
    ("name.yaml", 'name: ""\nrows: [{input: a, output: b}]\n', "a task name must be non-empty text on one line"),
    ("name2.yaml", 'name: "a\\nb"\nrows: [{input: a, output: b}]\n', "got 'a\\nb'"),
    ("sep.yaml", 'separator: " \\n "\nrows: [{input: a, output: b}]\n', "'separator' must be a non-empty string on one"),
    ("sep2.yaml", 'separator: "  "\nrows: [{input: a, output: b}]\n', "'separator' must be a non-empty string"),
])
def test_bad_task_file_shapes_are_one_line(tmp_path, capsys, name, text, needle):
    path = write(tmp_path, name, text)
    refused(*cli(capsys, "tasks", "--task-file", path), f"task file {path}", needle)


def test_the_same_task_name_in_two_files_is_refused(tmp_path, capsys):
    a = write(tmp_path, "a.csv", "input,antonym29\nhot,cold\nup,down\n")
    b = write(tmp_path, "b.csv", "input,antonym29\nhot,COLD\nup,DOWN\n")
    refused(*cli(capsys, "tasks", "--task-file", a, "--task-file", b),
            f"task file {b}: task 'antonym29' is also defined by {a}")
    mixture = {"name": "m", "tasks": ["antonym29", "copy_op1"], "n_examples": 2}
    refused(*cli(capsys, "run", config(tmp_path, task_files=[str(a), str(b)], mixtures=[mixture]), "--out",
                 tmp_path / "runs"), "also defined by")


def test_a_column_named_where_is_an_ordinary_task(tmp_path, capsys):
    path = write(tmp_path, "w.csv", "input,_where\nhot,cold\nup,down\n")
    assert cli(capsys, "tasks", "--task-file", path)[0] == 0
    from superpose.tasks import get_task

    assert get_task("_where").answer("up") == "down"  # the internal row location is kept apart from the columns


def test_the_csv_field_limit_error_names_the_rows_line(tmp_path, capsys):
    # the row with the huge field starts at line 4 (lines 2-3 are one row with a quoted line break)
    path = write(tmp_path, "big.csv", 'input,out\nb,"c\nd"\na,' + "x" * 140_000 + "\n")
    refused(*cli(capsys, "tasks", "--task-file", path), f"task file {path}, line 4: field larger than field limit")


# --- item 16: api_key_env -------------------------------------------------------------------------

@pytest.mark.parametrize("env", ["GITHUB_TOKEN", "HOME", "AWS_SECRET_ACCESS_KEY"])
def test_api_key_env_names_only_api_key_variables(tmp_path, capsys, env):
    models = [{"name": "openai:m", "options": {"base_url": "http://192.0.2.1:9/v1", "api_key_env": env}}]
    refused(*cli(capsys, "run", config(tmp_path, models=models), "--out", tmp_path / "runs"),
            "api_key_env: expected the name of an environment variable ending in _API_KEY")
    assert not (tmp_path / "runs").exists()


# --- item 2: the openai package -------------------------------------------------------------------

def test_openai_is_a_declared_dependency_pinned_to_the_tested_version():
    import importlib.metadata
    import tomllib

    pins = dict(line.split("#")[0].strip().split("==") for line in (ROOT / "requirements.txt").read_text().splitlines()
                if "==" in line.split("#")[0])
    assert pins["openai"] == importlib.metadata.version("openai")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("openai") for d in deps)


def test_a_missing_openai_package_is_one_line_saying_what_to_install(tmp_path):
    path = config(tmp_path, models=[{"name": "openai:m", "options": {"base_url": "http://127.0.0.1:9/v1"}}])
    code = ("import sys; sys.modules['openai'] = None  # as if it were not installed\n"
            "from superpose.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", code, "run", str(path), "--out", str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=300)
    refused(done.returncode, done.stderr, "needs the Python package 'openai==", "pip install")
    assert len(done.stderr.strip().splitlines()) == 1


# --- item 15: a bad --host ------------------------------------------------------------------------

@pytest.mark.parametrize("host, needle", [("no such host!", "not an address or name of this machine"),
                                          ("192.0.2.1", "no network interface of this machine has that address")])
def test_a_bad_host_is_reported_as_a_host_problem(host, needle):
    done = subprocess.run([sys.executable, "-m", "superpose.cli", "serve", "--model", "smollm2-135m", "--host", host,
                           "--port", "8799"], capture_output=True, text=True, timeout=120)
    refused(done.returncode, done.stderr, f"--host '{host}'", needle)
    assert "--port" not in done.stderr and "loading model" not in done.stdout + done.stderr


def test_a_non_loopback_host_warns_that_the_explorer_is_unauthenticated():
    done = subprocess.run([sys.executable, "-m", "superpose.cli", "serve", "--model", "no-such-model", "--host",
                           "0.0.0.0", "--port", "8799"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("warning: --host 0.0.0.0: the explorer has no authentication"), done.stderr
