"""The explorer's mechanism panels (lens, attribution, steering) in headless Chromium, against the API."""

from __future__ import annotations

import os

import numpy as np
import pytest
from browser import Chromium, chromium_path
from test_explore import server  # noqa: F401  (the module's `superpose serve` fixture)

PICK = """document.querySelector('#n_examples').value = '6';
          for (const r of document.querySelectorAll('#tasks tbody tr')) {
            r.querySelector('input[type=checkbox]').checked = ['copy_op1', 'copy_op2'].includes(r.dataset.task); }
          document.querySelector('#tasks input[type=checkbox]').dispatchEvent(new Event('change', {bubbles: true}))"""
TEXT = """Array.from(document.querySelectorAll('#prompt div')).map(d => d.textContent)
          .concat([document.querySelector('#query').textContent]).join('\\n')"""
ERROR = "(document.querySelector('#error').hidden ? null : document.querySelector('#error').textContent)"


def post(url: str, path: str, body: dict) -> tuple[int, dict]:
    """POST JSON and return (status, parsed answer); 4xx answers are returned. A long wait: a shared CPU."""
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=900) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode())


def steps() -> dict[str, str]:
    def act(js: str, result: str) -> str:
        return f"(async () => {{ {js}; await explorer.idle(); return {result}; }})()"

    return {
        "start": act("await explorer.idle()", "null"),
        "copy": act(PICK, f"({{text: {TEXT}, answers: explorer.state.prompt.answers}})"),
        "lens": act("document.querySelector('#lens').click()",
                    "({lens: explorer.mech.lens, table: Array.from(document.querySelectorAll('#lens-table tbody tr'))"
                    ".map(r => Array.from(r.children).map(c => c.textContent)), error: " + ERROR + "})"),
        "attribution": act("document.querySelector('#attribution-task').value = '1'; "
                           "document.querySelector('#attribute').click()",
                           "({effects: Array.from(document.querySelectorAll('#attribution div'))"
                           ".map(d => Number(d.dataset.effect)), error: " + ERROR + "})"),
        "steer": act("document.querySelector('#steer-points').value = '3'; "
                     "document.querySelector('#steer-prompts').value = '2'; document.querySelector('#steer').click()",
                     "({steer: explorer.mech.steer, real: explorer.mech.real, value: "
                     "document.querySelector('#steer-value').value, error: " + ERROR + "})"),
        "bad": act("document.querySelector('#steer-layer').value = '999'; document.querySelector('#steer').click()",
                   ERROR),
        "after": act("document.querySelector('#steer-layer').value = ''; document.querySelector('#lens').click()",
                     "({lens: explorer.mech.lens, error: " + ERROR + "})"),
    }


@pytest.mark.skipif(chromium_path() is None and not os.environ.get("SUPERPOSE_REQUIRE_BROWSER"),
                    reason="chromium is not installed (.ci/run installs it)")
def test_mechanism_panels_show_the_apis_numbers(server, tmp_path):  # noqa: F811
    browser = Chromium(tmp_path / "profile")
    browser.timeout = 600  # a step scores up to a dozen prompts; a shared CPU can take minutes
    try:
        visit = browser.visit(server + "/", steps())
    finally:
        browser.close()
    ev = visit.evaluated
    assert visit.exceptions == [], visit.exceptions
    text, answers = ev["copy"]["text"], ev["copy"]["answers"]
    assert len(answers) == 2 and text.count("\n") == 6

    status, lens = post(server, "/api/lens", {"prompt": text, "answers": answers})
    assert status == 200 and ev["lens"]["error"] is None
    assert np.abs(np.array(ev["lens"]["lens"]["probs"]) - lens["probs"]).max() < 1e-4
    shown = np.array([[float(r[2]), float(r[3])] for r in ev["lens"]["table"]])  # last layer (lens), exact
    assert np.abs(shown[:, 0] - [row[-1] for row in lens["probs"]]).max() < 1e-4
    assert np.abs(shown[:, 1] - lens["exact_first"]).max() < 1e-4
    assert np.abs(shown[:, 0] - shown[:, 1]).max() < 1e-4  # the lens at the last layer is the output

    status, attr = post(server, "/api/attribution", {"prompt": text, "answers": answers})
    assert status == 200 and ev["attribution"]["error"] is None
    assert len(ev["attribution"]["effects"]) == 6
    assert np.abs(np.array(ev["attribution"]["effects"]) - np.array(attr["effect"])[:, 1]).max() < 1e-4

    body = {"tasks": ["copy_op1", "copy_op2"], "weights": None, "n_examples": 6, "seed": 0, "layer": None,
            "n_points": 3, "n_vector_prompts": 2}
    status, steer = post(server, "/api/steer", body)
    assert status == 200 and ev["steer"]["error"] is None
    page = ev["steer"]["steer"]
    assert np.abs(np.array(page["p1"]) - steer["p1"]).max() < 1e-4
    assert np.abs(np.array(page["p2"]) - steer["p2"]).max() < 1e-4
    assert len(ev["steer"]["real"]["points"]) == 3 and f"{steer['p1'][1]:.4f}" in ev["steer"]["value"]

    bad = ev["bad"]
    assert bad is not None and "layer" in bad and "\n" not in bad  # one line naming the field
    status, answer = post(server, "/api/steer", {**body, "layer": 999})
    assert 400 <= status < 500 and "layer" in answer["error"]
    assert ev["after"]["error"] is None  # the page kept working
    assert np.abs(np.array(ev["after"]["lens"]["probs"]) - lens["probs"]).max() < 1e-4
