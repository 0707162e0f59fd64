"""The explorer's controls beside the shares (issue #30): the page's numbers are the API's, and the API's are
the backend's on the prompts :func:`superpose.prompts.build_controls` builds; a moved or edited prompt says why
it has none."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from browser import Chromium, chromium_path
from test_explore_mechanism import ERROR, PICK, TEXT, post
from test_explore import server  # noqa: F401  (the module's `superpose serve` fixture)

from superpose.explore.service import Setting, mixture
from superpose.prompts import build_controls, build_prompt

ROWS = """Array.from(document.querySelectorAll('#controls-table tbody tr')).map(r => ({task: r.dataset.task,
          values: Array.from(r.querySelectorAll('td.num')).map(td => Number(td.textContent))}))"""
NOTE = "document.querySelector('#controls-note').textContent"
DISABLED = "document.querySelector('#controls').disabled"


def steps() -> dict[str, str]:
    def act(js: str, result: str) -> str:
        return f"(async () => {{ {js}; await explorer.idle(); return {result}; }})()"

    seen = f"({{rows: {ROWS}, note: {NOTE}, disabled: {DISABLED}, error: {ERROR}}})"
    return {
        "start": act("await explorer.idle()", "null"),
        "copy": act(PICK, f"({{text: {TEXT}, setting: explorer.state.prompt.setting, rows: {ROWS}, "
                          f"note: {NOTE}, disabled: {DISABLED}}})"),
        "controls": act("document.querySelector('#controls').click()", seen),
        "moved": act("document.querySelector('#moves button[data-move=last][data-task=\"0\"]').click()", seen),
        "edited": act("document.querySelector('#moves button[data-move=none]').click(); await explorer.idle(); "
                      "document.querySelector('#edit').click(); const box = document.querySelector('#prompt-edit'); "
                      "box.value = box.value.split('\\n').slice(1).join('\\n'); "
                      "document.querySelector('#apply').click()", seen),
    }


@pytest.mark.skipif(chromium_path() is None and not os.environ.get("SUPERPOSE_REQUIRE_BROWSER"),
                    reason="chromium is not installed (.ci/run installs it)")
def test_page_shows_the_apis_controls_and_the_api_scores_build_controls(server, smollm, tmp_path):  # noqa: F811
    browser = Chromium(tmp_path / "profile")
    browser.timeout = 600  # a shared CPU can take minutes for a step
    try:
        visit = browser.visit(server + "/", steps())
    finally:
        browser.close()
    ev = visit.evaluated
    assert visit.exceptions == [] and visit.console_errors == [], (visit.exceptions, visit.console_errors)
    copy = ev["copy"]
    assert copy["rows"] == [] and not copy["disabled"] and "2K = 4 control prompts" in copy["note"]

    # The page's table is the API's answer for the setting that drew the prompt.
    status, api = post(server, "/api/controls", copy["setting"])
    assert status == 200 and ev["controls"]["error"] is None
    assert api["text"] == copy["text"] and api["n_control_prompts"] == 4
    shown = ev["controls"]["rows"]
    assert [r["task"] for r in shown] == api["tasks"] == ["copy_op1", "copy_op2"]
    for row, c in zip(shown, api["controls"]):
        expected = [c["mixed"], c["without"], c["effect"], c["single"], c["ratio_to_single"]]
        assert np.abs(np.array(row["values"][:4]) - expected[:4]).max() < 1e-4, (row, c)
        assert abs(row["values"][4] - expected[4]) < 1e-3  # the ratio is shown to 3 digits
        assert c["effect"] == pytest.approx(c["mixed"] - c["without"], abs=1e-12)
    assert "scored 4 control prompts" in ev["controls"]["note"]

    # The API's numbers are the backend's on build_controls' prompts, scored here directly.
    spec = mixture(Setting(**copy["setting"]))
    prompt = build_prompt(spec, copy["setting"]["seed"], 0)
    controls = build_controls(spec, copy["setting"]["seed"], 0)
    assert prompt.text == copy["text"]
    for c in controls:
        p = smollm.score_one(c.prompt.text, c.prompt.answers)[c.task].prob
        got = api["controls"][c.task]["without" if c.kind == "without" else "single"]
        assert abs(got - p) < 1e-5, (c.kind, c.task, got, p)
        if c.kind == "without":  # no example of task k is left, so its examples really were taken away
            assert c.task not in c.prompt.example_tasks
    mixed = [s.prob for s in smollm.score_one(prompt.text, prompt.answers)]
    assert np.abs(np.array([c["mixed"] for c in api["controls"]]) - mixed).max() < 1e-5
    assert all(math.isfinite(c["effect"]) for c in api["controls"])

    # A moved or edited prompt is not one build_controls draws: the page says so, shows none, and sends nothing.
    for name, words in (("moved", "for the prompt as drawn"), ("edited", "edited by hand")):
        state = ev[name]
        assert state["rows"] == [] and state["disabled"] and words in state["note"] and state["error"] is None, state
    assert sum(u.endswith("/api/controls") for u in visit.requests) == 1


def test_controls_api_refuses_one_task_and_a_request_over_its_cost(server):  # noqa: F811
    status, answer = post(server, "/api/controls", {"tasks": ["copy_op1"], "n_examples": 4})
    assert status == 400 and answer["error"] == "tasks: controls need two tasks or more, got 1"
    five = ["copy_op1", "copy_op2", "op1_plus_op2", "op1_plus_10", "op2_plus_10"]
    status, answer = post(server, "/api/controls", {"tasks": five, "n_examples": 400})  # 11 prompts of 400 lines
    assert status == 422 and answer["error"] == (
        "request body: (2 x 5 tasks + 1) prompts x 400 examples = 4,400 example lines, over the limit of 4,000 "
        "for one request; ask for fewer examples or tasks")
