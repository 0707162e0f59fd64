"""The command line as one tool: every command listed, shared flags, light start, readable tables."""

import subprocess
import sys

import pytest

from superpose.cli import COMMANDS, build_parser, main
from superpose.cli.flags import print_summary


def _superpose(*args, **kw):
    return subprocess.run([sys.executable, "-m", "superpose.cli", *args], capture_output=True, text=True,
                          env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"}, **kw)


def test_help_lists_every_command_with_one_line():
    done = _superpose("--help")
    assert done.returncode == 0
    for name, help_line in COMMANDS.items():
        assert f"    {name}" in done.stdout
        assert help_line.split()[0] in done.stdout


def test_tasks_and_help_do_not_import_torch():
    code = ("import sys; from superpose.cli import main; main(['tasks']); "
            "heavy = [m for m in ('torch', 'transformers', 'sklearn', 'matplotlib') if m in sys.modules]; "
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "copy_op1" in done.stdout


@pytest.mark.parametrize("command, extra", [
    ("run", ["CONFIG"]), ("sweep", ["CONFIG"]), ("scale", ["CONFIG"]), ("vectors", ["CONFIG"]),
    ("construct", []), ("train", ["CONFIG"])])
def test_shared_flags_mean_the_same_everywhere(command, extra):
    argv = [command, *extra, "--out", "OUT", "--seed", "7", "--no-progress"]
    args = build_parser(argv).parse_args(argv)
    assert args.out == "OUT" and args.seed == 7 and args.no_progress
    argv = [command, "--resume", "RUN"]  # every kind resumes (the run contract)
    assert build_parser(argv).parse_args(argv).resume == "RUN"


def test_probe_summary_keeps_full_names_in_a_pipe(tmp_path, capsys):
    """A command prints its folder's summary.md whole, then the folder: names are never cut."""
    from superpose.display.text import md
    from superpose.experiments.probe import summary_markdown

    tasks = {"first_letter_upper": {}, "first_letter": {}, "last_letter_upper_with_a_long_name": {}}
    for i, v in enumerate(tasks.values()):
        v.update(share=0.33, mean=0.1 * i, median=0.1, variance=0.01, mean_normalized=0.3, top1_rate=0.5)
    model = "a-model-with-a-rather-long-name/checkpoint-000123"
    summary = {"config": "demo", "models": {model: {"letters (word->) with a long mixture name": {
        "tasks": tasks, "n_prompts": 12, "other_mean": 0.2, "kl": 0.5, "kl_normalized": 0.4,
        "sorted_means": [0.2, 0.1, 0.0], "boundary_straddles": 0}}}}
    (tmp_path / "summary.md").write_text(summary_markdown(summary))
    print_summary(tmp_path)
    out = capsys.readouterr().out
    for name in (*tasks, model, "letters (word->) with a long mixture name"):
        assert md(name) in out, name  # as summary.md holds it: Markdown-safe
    assert "2 of 3" in out  # the study's Figure 2 beside ours: tasks with mean P >= 0.05
    assert out.endswith(f"run folder: {tmp_path}\n")


def test_models_listing_keeps_install_hints(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "qwen2.5-coder-0.5b" in out
    assert "install: make models-qwen   (or: pip install -r requirements-qwen.txt)" in out or \
        "qwen2.5-coder-0.5b  [installed]" in out
