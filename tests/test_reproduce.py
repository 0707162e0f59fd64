"""`superpose reproduce` is interrupted, resumes and skips finished steps; its report opens in a real
headless Chromium with no console errors, decoded images, and a user's `<script>` shown as text."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from browser import Chromium, chromium_path
from superpose.cli import main

EVIL = "<script>window.__pwned=1</script>"
EVIL_MIXTURE = "<img src=x onerror=window.__pwned=2>"


def _cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "superpose.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    """A three-step reproduction, killed during its second step and resumed."""
    tmp = tmp_path_factory.mktemp("reproduce")
    (tmp / "evil.csv").write_text("input,upper,evil\n" + "".join(f"{c},{c.upper()},{EVIL}\n" for c in "abcdefghij"))
    (tmp / "probe.yaml").write_text(yaml.safe_dump({
        "name": "evil", "models": ["smollm2-135m"], "n_prompts": 2, "task_files": ["evil.csv"], "controls": True,
        "mixtures": [{"name": EVIL_MIXTURE, "tasks": ["upper", "evil"], "n_examples": 4}]}))
    (tmp / "plan.yaml").write_text(yaml.safe_dump({"name": "tiny", "models": ["smollm2-135m"], "steps": [
        {"name": "construct", "study": "Theorem 1",
         "command": ["construct", "--k", "2", "--examples", "8", "--prompts", "6", "--dims", "1,4"]},
        {"name": "probe", "study": "Figures 1-2", "command": ["run", str(tmp / "probe.yaml")], "models": "all"},
        {"name": "sweep", "study": "Figure 3",
         "command": ["sweep", "configs/sweep/plus_scratch.yaml", "--n-prompts", "2", "--seed", "3"]}]}))

    first = _cli("reproduce", "--plan", tmp / "plan.yaml", "--out", tmp / "runs", cwd=tmp)
    for line in first.stderr:  # kill it (like a crash) once the probe's run folder exists
        if "[2/3] probe" in line:
            break
    parent = next((tmp / "runs").iterdir())
    deadline = time.monotonic() + 120
    while not list((parent / "probe").glob("*/config.yaml")):
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    probe_folder = next((parent / "probe").glob("*/config.yaml")).parent
    construct_summary = next((parent / "construct").glob("*/summary.json"))
    before = construct_summary.stat().st_mtime_ns
    assert json.loads((probe_folder / "status.json").read_text())["status"] == "running"
    assert not (parent / "report.html").exists()

    second = _cli("reproduce", "--resume", parent, cwd=tmp)
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err
    return {"parent": parent, "out": out, "err": err, "probe": probe_folder,
            "construct_unchanged": construct_summary.stat().st_mtime_ns == before}


def test_resume_skips_finished_steps_and_finishes_the_rest(reproduced):
    parent, err = reproduced["parent"], reproduced["err"]
    assert "[1/3] construct · Theorem 1: complete, skipped" in err
    assert f"[2/3] probe · Figures 1-2: resuming superpose run --resume {reproduced['probe']}" in err
    assert "[3/3] sweep · Figure 3: running" in err
    assert reproduced["construct_unchanged"]
    for step in ("construct", "probe", "sweep"):
        (folder,) = [p for p in (parent / step).iterdir() if p.is_dir()]  # one run folder per step
        assert json.loads((folder / "status.json").read_text())["status"] == "complete", step
    records = (reproduced["probe"] / "records.jsonl").read_text().splitlines()
    mixed = [r for r in map(json.loads, records) if "control" not in r]
    assert len(mixed) == 2 and len(records) == 2 * 5  # the killed folder resumed, not a second one;
    # each mixture prompt with its 2K = 4 controls
    assert reproduced["out"].splitlines()[-1] == f"run folder: {parent}"
    assert (parent / "report.html").is_file()


@pytest.mark.skipif(chromium_path() is None and not os.environ.get("SUPERPOSE_REQUIRE_BROWSER"),
                    reason="chromium is not installed (.ci/run installs it)")
def test_report_in_headless_chromium(reproduced, tmp_path):
    from PIL import Image

    report = reproduced["parent"] / "report.html"
    html = report.read_text(encoding="utf-8")
    n_figures = len(list(reproduced["parent"].glob("*/*/figures/*.png")))
    assert n_figures >= 4 and html.count("<img ") == n_figures
    assert EVIL not in html and "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    browser = Chromium(tmp_path / "profile")
    try:
        visit = browser.visit(report.as_uri(), {
            "images": "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])",
            "scripts": "document.scripts.length",
            "pwned": "typeof window.__pwned",
            "text": "document.body.innerText",
        })
    finally:
        browser.close()
    assert visit.console_errors == [] and visit.exceptions == []
    assert all(u.startswith(("file:", "data:")) for u in visit.requests), visit.requests  # no network
    images = visit.evaluated["images"]
    assert len(images) == n_figures and all(ok and w > 100 and h > 100 for ok, w, h in images), images
    assert visit.evaluated["scripts"] == 0 and visit.evaluated["pwned"] == "undefined"
    assert EVIL in visit.evaluated["text"] and EVIL_MIXTURE in visit.evaluated["text"]  # shown as text
    text = visit.evaluated["text"]
    # intervals beside the means, and the controls with their verdicts (issue #30)
    assert re.search(r"\d\.\d{3} \[-?\d\.\d{3}, -?\d\.\d{3}\]", text)
    assert "In-context effect: P(answer | mixed)" in text and "in-context effect [CI]" in text
    names = [p.stem for p in reproduced["probe"].glob("figures/*.png")]
    assert {"means", "controls"} <= set(names)  # the means with error bars, the controls' bars
    shot = np.asarray(Image.open(io.BytesIO(visit.screenshot)).convert("L"), dtype=float)
    assert shot.shape[1] >= 1000 and shot.std() > 20  # not blank: dark header, text, figures


def test_run_folders_say_their_kind_and_older_folders_still_report(reproduced, tmp_path):
    """status.json names each folder's kind and format; a folder of format 1 (no kind) renders the same."""
    import shutil

    from superpose.report.html import read_run_view
    from superpose.runs import FORMAT_VERSION

    parent = reproduced["parent"]
    status = json.loads((parent / "status.json").read_text())
    assert (status["kind"], status["status"], status["format"]) == ("reproduce", "complete", FORMAT_VERSION)
    for step, kind in (("construct", "construct"), ("probe", "probe"), ("sweep", "sweep")):
        (folder,) = [p for p in (parent / step).iterdir() if p.is_dir()]
        status = json.loads((folder / "status.json").read_text())
        assert (status["kind"], status["format"]) == (kind, FORMAT_VERSION), step
        new = read_run_view(folder)
        old = tmp_path / step
        shutil.copytree(folder, old)
        (old / "status.json").write_text(json.dumps({"status": "complete", "time": status["time"]}))
        (old / "summary.md").unlink()  # from before every kind wrote one: its summariser makes it in memory
        older = read_run_view(old)
        assert new.kind == older.kind == kind and older.status == "complete"
        assert [b.markdown for b in older.blocks] == [b.markdown for b in new.blocks] and new.blocks
        assert new.figures and [f["name"] for f in older.figures] == [f["name"] for f in new.figures]
    assert main(["report", str(tmp_path / "probe"), str(tmp_path / "sweep"), "-o", str(tmp_path / "old.html")]) == 0
    assert "Beside the study (Figure 2)" in (tmp_path / "old.html").read_text(encoding="utf-8")

    # a probe folder from before intervals (no *_lo/_hi, no ci_level, no controls in its summary):
    # the report computes them from its records
    pre = tmp_path / "pre-intervals"
    shutil.copytree(tmp_path / "probe", pre)
    summary = json.loads((pre / "summary.json").read_text())
    for mixtures in summary["models"].values():
        for m in mixtures.values():
            for key in [k for k in m if k.endswith(("_lo", "_hi")) or k in ("ci_level", "controls")]:
                del m[key]
            for t in m["tasks"].values():
                for key in [k for k in t if k.endswith(("_lo", "_hi"))]:
                    del t[key]
    (pre / "summary.json").write_text(json.dumps(summary))
    (pre / "summary.md").write_text("# Probe evil\n\nmean P 0.5\n")
    view = read_run_view(pre)
    (page,) = [b.markdown for b in view.blocks if b.markdown]
    beside = page[page.index("Beside the study (Figure 2)"):]
    assert re.search(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", beside[:beside.index("</table>")])
    assert "95% CI" in page and "mean P 0.5" not in page  # made afresh from the records, not the old file


def test_report_refuses_what_is_not_a_run_folder(tmp_path, capsys):
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "is not a run folder" in err
    assert not (tmp_path / "r.html").exists()


def test_a_bad_plan_fails_before_any_folder(tmp_path, capsys):
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({"name": "p", "models": ["smollm2-135m"], "steps": [
        {"name": "a", "study": "x", "command": ["run", "configs/nope.yaml"]}]}))
    assert main(["reproduce", "--plan", str(plan), "--out", str(tmp_path / "runs")]) == 2
    assert "plan step 'a': config configs/nope.yaml: no such file" in capsys.readouterr().err
    plan.write_text(yaml.safe_dump({"name": "p", "models": ["m"], "steps": [
        {"name": "a", "study": "x", "command": ["rm", "-rf"]}]}))
    assert main(["reproduce", "--plan", str(plan), "--out", str(tmp_path / "runs")]) == 2
    assert "expected one of run, sweep" in capsys.readouterr().err
    plan.write_text(yaml.safe_dump({"name": "p", "models": ["m"], "steps": [
        {"name": "a", "study": "x", "command": ["run", "--bogus", "3"]}]}))
    assert main(["reproduce", "--plan", str(plan), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a valid command line" in err, err
    assert "unrecognized arguments: --bogus" in err
    assert not (tmp_path / "runs").exists()


def test_a_step_reads_an_earlier_steps_run_folder(tmp_path, capsys):
    """{run:STEP} names the earlier step's run folder (its name has its start time): a sweep of the model
    that the train step made. A name that is no earlier step is refused before any folder."""
    (tmp_path / "t.yaml").write_text(yaml.safe_dump({
        "name": "tiny", "tasks": ["plus_2", "plus_7"], "n_examples": 20, "steps": 2, "batch_size": 2,
        "warmup_steps": 0, "decay_steps": 0, "threads": 1,
        "model": {"n_layers": 1, "d_model": 16, "n_heads": 2, "d_mlp": 32, "max_position_embeddings": 256}}))
    steps = [{"name": "train", "study": "Figure 3", "command": ["train", str(tmp_path / "t.yaml")]},
             {"name": "sweep", "study": "Figure 3", "command": ["sweep", "configs/sweep/plus_scratch.yaml",
                                                                "--n-prompts", "2", "--model", "{run:train}/model"]}]
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({"name": "p", "models": ["m"], "steps": steps[::-1]}))  # sweep first: refused
    assert main(["reproduce", "--plan", str(plan), "--out", str(tmp_path / "runs")]) == 2
    assert "step 'sweep': {run:train} names no earlier step" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    plan.write_text(yaml.safe_dump({"name": "p", "models": ["m"], "steps": steps}))
    assert main(["reproduce", "--plan", str(plan), "--out", str(tmp_path / "runs"), "--no-progress"]) == 0
    (parent,) = (tmp_path / "runs").iterdir()
    (trained,) = (parent / "train").glob("tiny-*")
    (swept,) = (parent / "sweep").glob("*/config.yaml")
    assert yaml.safe_load(swept.read_text())["config"]["model"] == str(trained / "model")
