"""`superpose serve` for real: the command as a subprocess on 127.0.0.1 with SmolLM2-135M, its JSON API
(good and bad input), and the page driven in a real headless Chromium, its numbers checked against
the transformers backend in this process."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

from browser import Chromium, chromium_path
from conftest import TEST_MODEL
from servers import explorer

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "figures" / "explorer.png"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`superpose serve --model smollm2-135m --port P` until the module's tests are done; yields its URL."""
    yield from explorer(tmp_path_factory, TEST_MODEL)


def test_serve_refuses_a_busy_port_before_loading_the_model(server):
    port = server.rsplit(":", 1)[1]
    done = subprocess.run([sys.executable, "-m", "superpose.cli", "serve", "--model", TEST_MODEL, "--port", port],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "loading model" not in done.stdout + done.stderr
    assert done.stderr.strip() == f"error: --port {port}: cannot listen on 127.0.0.1:{port} (Address already in use); " \
                                  "choose another port with --port"


def post(url: str, path: str, body=None, raw: bytes | None = None) -> tuple[int, dict | str]:
    """POST JSON (or ``raw`` bytes) and return (status, parsed answer); 4xx answers are returned, not raised."""
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            status, text, kind = r.status, r.read().decode(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        status, text, kind = e.code, e.read().decode(), e.headers.get("Content-Type", "")
    return status, (json.loads(text) if "json" in kind else text)


COPY = {"tasks": ["copy_op1", "copy_op2"], "n_examples": 30, "seed": 3}


def test_api_scores_are_the_backends_and_requests_queue(server, smollm):
    status, prompt = post(server, "/api/prompt", COPY)
    assert status == 200 and prompt["tasks"] == COPY["tasks"] and len(prompt["examples"]) == 30
    assert prompt["text"] == "\n".join([e["line"] for e in prompt["examples"]] + [prompt["query"]])
    status, scored = post(server, "/api/score", {"prompt": prompt["text"], "answers": prompt["answers"]})
    assert status == 200
    reference = [s.prob for s in smollm.score_one(prompt["text"], prompt["answers"])]
    assert np.allclose(scored["probs"], reference, atol=1e-6, rtol=0)
    assert scored["other"] == pytest.approx(1 - sum(reference), abs=1e-6)

    # Four requests at once: the one worker answers each, in turn, with the same numbers.
    answers: list = []
    threads = [threading.Thread(target=lambda: answers.append(post(server, "/api/score", {
        "prompt": prompt["text"], "answers": prompt["answers"]}))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [s for s, _ in answers] == [200] * 4
    assert all(np.allclose(a["probs"], scored["probs"], atol=1e-9, rtol=0) for _, a in answers)

    # Moving copy_op1's examples to the end keeps every line, only their order changes.
    status, moved = post(server, "/api/prompt", {**COPY, "move": "last", "move_task": 0})
    assert status == 200 and sorted(moved["text"].split("\n")) == sorted(prompt["text"].split("\n"))
    k = len([e for e in moved["examples"] if e["task"] == 0])
    assert [e["task"] for e in moved["examples"][-k:]] == [0] * k

    status, exported = post(server, "/api/export", {**COPY, "weights": [1, 3], "n_prompts": 5})
    assert status == 200
    from superpose.config import config_from_dict
    from superpose.experiments.probe import ProbeConfig

    config = config_from_dict(ProbeConfig, yaml.safe_load(exported), "export")  # the loader `superpose run` uses
    assert config.models[0].name == TEST_MODEL and config.seed == 3 and config.n_prompts == 5
    assert config.mixtures[0].tasks == COPY["tasks"] and config.mixtures[0].shares == [0.25, 0.75]


def test_api_bad_input_is_a_4xx_with_a_message_and_the_server_keeps_serving(server):
    too_long = "12@34=12\n" * 2000 + "56@78="  # 18,000 tokens; the model's context is 8,192
    cases = [
        ("/api/score", {"prompt": "", "answers": ["1", "2"]}, None, 400, "prompt: empty"),
        ("/api/score", {"prompt": "   \n", "answers": ["1", "2"]}, None, 400, "prompt: empty"),
        ("/api/prompt", {"tasks": ["copy_op1", "no_such_task"]}, None, 400, "unknown task 'no_such_task'"),
        ("/api/prompt", {"tasks": ["copy_op1", "capital"]}, None, 400, "cannot be mixed"),
        ("/api/score", {"prompt": too_long, "answers": ["56", "78"]}, None, 400, "does not fit in the context"),
        ("/api/score", None, b"{'prompt': not json", 400, "not valid JSON"),
        ("/api/score", None, b'["1@2=", "1"]', 422, "expected a JSON object"),
        ("/api/score", None, b"x" * 10_000_000, 413, "over the limit"),
        ("/api/score", None, json.dumps({"prompt": "a" * 10_000_000, "answers": ["1"]}).encode(), 413, "over the limit"),
        ("/api/prompt", {**COPY, "n_examples": "many"}, None, 422, "n_examples"),
        ("/api/prompt", {**COPY, "colour": "red"}, None, 422, "colour"),
        ("/api/sweep", {**COPY, "tasks": ["copy_op1"]}, None, 400, "exactly two tasks"),
        ("/api/outputs", {"prompt": "1@2=", "answers": ["1"], "tasks": ["copy_op1", "copy_op2"]}, None, 400,
         "one answer per task"),
    ]
    for path, body, raw, expected, words in cases:
        status, answer = post(server, path, body, raw)
        assert status == expected, (path, body if raw is None else raw[:40], status, answer)
        assert isinstance(answer, dict) and words in answer["error"], answer
        assert "\n" not in answer["error"] and "Traceback" not in answer["error"]
        status, scored = post(server, "/api/score", {"prompt": "1@2=1\n3@4=", "answers": ["3", "4"]})
        assert status == 200 and 0 < scored["probs"][0] < 1  # still serving


def page_steps() -> dict[str, str]:
    """What the browser test does on the page, in order (name -> JavaScript expression whose value is kept)."""
    read = """(() => ({
        text: Array.from(document.querySelectorAll('#prompt div')).map(d => d.textContent)
              .concat([document.querySelector('#query').textContent]).join('\\n'),
        tasks: Array.from(document.querySelectorAll('#scores tbody tr')).map(r => r.dataset.task),
        answers: Array.from(document.querySelectorAll('#scores td.answer')).map(td => td.textContent),
        p: Array.from(document.querySelectorAll('#scores td.p')).map(td => Number(td.textContent)),
        share: Array.from(document.querySelectorAll('#scores td.share')).map(td => Number(td.textContent)),
        other: Number(document.querySelector('#other').dataset.other),
        error: document.querySelector('#error').hidden ? null : document.querySelector('#error').textContent,
        colours: Array.from(document.querySelectorAll('#prompt div')).map(d => d.className),
    }))()"""
    then = "await explorer.idle(); return " + read + ";"

    def act(js: str) -> str:
        return f"(async () => {{ {js}; {then} }})()"

    pick = """document.querySelector('#n_examples').value = '20';
              for (const r of document.querySelectorAll('#tasks tbody tr')) {
                r.querySelector('input[type=checkbox]').checked = ['copy_op1', 'copy_op2'].includes(r.dataset.task); }
              document.querySelector('#tasks input[type=checkbox]').dispatchEvent(new Event('change', {bubbles: true}))"""
    change = "document.querySelector('#{id}').value = '{value}'; " \
             "document.querySelector('#{id}').dispatchEvent(new Event('change', {{bubbles: true}}))"
    click = "document.querySelector('{selector}').click()"
    return {
        "start": act("await explorer.idle()"),
        "family": "document.querySelector('#family').value",
        "copy": act(pick),
        "lambda": act(change.format(id="lambda", value="0.2")),
        "sweep": f"(async () => {{ {click.format(selector='#sweep')}; await explorer.idle(); "
                 "return JSON.parse(document.querySelector('#curve').dataset.points); })()",
        "bad": act(change.format(id="n_examples", value="100000")),
        "recovered": act(change.format(id="n_examples", value="20")),
        "last": act(click.format(selector='#moves button[data-move=last][data-task="0"]')),
        "positions": "document.querySelectorAll('#positions tbody tr').length",
        "top": f"(async () => {{ {click.format(selector='#top')}; await explorer.idle(); "
               "return Array.from(document.querySelectorAll('#outputs tbody tr')).map(r => "
               "Array.from(r.children).map(c => c.textContent)); })()",
        "export": f"(async () => {{ {click.format(selector='#export')}; await explorer.idle(); "
                  "return document.querySelector('#export-yaml').textContent; })()",
        # Last, so the screenshot shows them: the controls of the prompt as drawn (test_explore_controls checks them).
        "controls": f"(async () => {{ {click.format(selector='#moves button[data-move=none]')}; await explorer.idle(); "
                    f"{click.format(selector='#controls')}; await explorer.idle(); "
                    "return Array.from(document.querySelectorAll('#controls-table tbody tr')).map(r => "
                    "Array.from(r.querySelectorAll('td.num')).map(c => Number(c.textContent))); })()",
    }


@pytest.mark.skipif(chromium_path() is None and not os.environ.get("SUPERPOSE_REQUIRE_BROWSER"),
                    reason="chromium is not installed (.ci/run installs it)")
def test_page_in_headless_chromium(server, smollm, tmp_path):
    from PIL import Image

    browser = Chromium(tmp_path / "profile")
    try:
        visit = browser.visit(server + "/", page_steps())
    finally:
        browser.close()
    ev = visit.evaluated
    assert visit.exceptions == [], visit.exceptions
    # The one console error is the browser's own line for the refused request (HTTP 422) we made on purpose.
    assert len(visit.console_errors) == 1 and "422" in visit.console_errors[0], visit.console_errors
    origin = server + "/"
    assert all(u.startswith((origin, "file:", "data:")) for u in visit.requests), visit.requests
    assert any(u == origin + "api/score" for u in visit.requests)

    assert ev["start"]["error"] is None and ev["family"] == "A@B="
    for name in ("copy", "lambda", "last", "recovered"):  # every state the page showed: the backend's numbers
        state = ev[name]
        assert state["tasks"] == ["copy_op1", "copy_op2"] and state["error"] is None, (name, state)
        reference = [s.prob for s in smollm.score_one(state["text"], state["answers"])]
        assert np.abs(np.array(state["p"]) - reference).max() < 1e-4, (name, state["p"], reference)
        assert state["other"] == pytest.approx(1 - sum(reference), abs=1e-4)
    assert ev["copy"]["share"] == [0.5, 0.5] and ev["lambda"]["share"] == [0.2, 0.8]
    assert ev["lambda"]["p"] != ev["copy"]["p"]  # the slider changed the prompt and its numbers
    assert len(ev["sweep"]) == 11 and ev["sweep"][0]["p1"] < ev["sweep"][-1]["p1"]
    assert ev["recovered"]["text"] == ev["lambda"]["text"]  # the same setting again: the same prompt
    assert ev["last"]["text"] != ev["lambda"]["text"] and ev["last"]["colours"][-1] == "task-0"
    assert ev["positions"] == 2  # the λ = 0.2 prompt as drawn, then with copy_op1 last
    assert "n_examples" in ev["bad"]["error"]  # the refused setting is named on the page
    top = ev["top"]
    assert len(top) >= 3 and [float(r[2]) for r in top] == sorted((float(r[2]) for r in top), reverse=True)
    marked = [r for r in top if r[3] in ("copy_op1", "copy_op2")]
    assert marked and all(json.loads(r[1]) in ev["recovered"]["answers"] for r in marked)
    from superpose.config import config_from_dict
    from superpose.experiments.probe import ProbeConfig

    exported = config_from_dict(ProbeConfig, yaml.safe_load(ev["export"]), "export")
    assert exported.mixtures[0].tasks == ["copy_op1", "copy_op2"] and exported.mixtures[0].n_examples == 20

    assert len(ev["controls"]) == 2 and all(len(r) == 5 and np.isfinite(r).all() for r in ev["controls"])

    shot = Image.open(io.BytesIO(visit.screenshot))
    assert shot.width >= 1000 and np.asarray(shot.convert("L"), dtype=float).std() > 20
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.write_bytes(visit.screenshot)  # the README shows the page as this run saw it
