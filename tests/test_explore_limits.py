"""The explorer's limits, for real (issue 29, items 3, 5, 9, 15): `superpose serve` on 127.0.0.1 with
SmolLM2-135M as a subprocess; raw sockets stand in for clients that go away. Its queue is capped
(429), one request's cost is capped (422 naming the fields and the limit), work of a client that
disconnected is skipped or stopped between λ points, text that is not Unicode and numbers Python
refuses are one-line 400s before any model work, and only requests for this server's own Host,
from its own Origin, are answered."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest

from conftest import TEST_MODEL
from servers import explorer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`superpose serve --model smollm2-135m --port P`; yields its URL; its log must hold no traceback."""
    yield from explorer(tmp_path_factory, TEST_MODEL)


def request(url: str, path: str, body=None, raw: bytes | None = None, headers: dict | None = None,
            method: str | None = None) -> tuple[int, dict | str]:
    """(status, parsed answer) of one request; 4xx answers are returned, not raised."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            status, text, kind = r.status, r.read().decode(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        status, text, kind = e.code, e.read().decode(), e.headers.get("Content-Type", "")
    return status, (json.loads(text) if "json" in kind else text)


def one_line(status, answer, expected, *needles):
    assert status == expected, (status, answer)
    assert isinstance(answer, dict) and set(answer) == {"error"}, answer  # the project's shape, not FastAPI's
    assert "\n" not in answer["error"] and "Traceback" not in answer["error"], answer
    for n in needles:
        assert n in answer["error"], (n, answer)


def info(url: str) -> dict:
    return request(url, "/api/info")[1]  # type: ignore[return-value]


COPY = {"tasks": ["copy_op1", "copy_op2"], "n_examples": 20, "seed": 3}


def test_text_that_is_not_unicode_and_huge_numbers_are_400s_before_model_work(server):
    lone = b'{"prompt": "1@2=1\\n3@4=\\ud800", "answers": ["3", "4"]}'
    one_line(*request(server, "/api/score", raw=lone), 400, "not valid Unicode", "lone surrogate")
    one_line(*request(server, "/api/outputs", raw=b'{"prompt": "1@2=", "answers": ["1"], "tasks": ["\\udfff"]}'),
             400, "not valid Unicode")
    one_line(*request(server, "/api/prompt", raw=b'{"tasks": ["copy_op1", "copy_op2"], "seed": ' + b"7" * 5001 + b"}"),
             400, "a number with more than 4300 digits")
    one_line(*request(server, "/api/nothing-here"), 404)  # FastAPI's {"detail": ...} is not our shape either
    assert info(server)["queue"]["pending"] == 0


def test_weights_whose_sum_overflows_still_mix(server):
    status, prompt = request(server, "/api/prompt", {**COPY, "weights": [1e308, 1e308]})
    assert status == 200 and prompt["shares"] == [0.5, 0.5], prompt
    one_line(*request(server, "/api/prompt", {**COPY, "weights": [0, 0]}), 400, "weights")


def test_export_refuses_a_name_that_run_refuses(server):
    for name in ["../escape", "a/b", "", ".hidden", "x" * 200]:
        one_line(*request(server, "/api/export", {**COPY, "name": name}), 422, "name")
    status, text = request(server, "/api/export", {**COPY, "name": "my-probe_1"})
    assert status == 200 and "name: my-probe_1" in text


def test_one_requests_cost_is_capped(server):
    big = {**COPY, "n_examples": 400, "n_prompts": 10, "lambdas": [0.0, 0.5, 1.0]}
    one_line(*request(server, "/api/sweep", big), 422, "lambdas x n_prompts x n_examples = 3 x 10 x 400 = 12,000",
             "over the limit of 4,000")
    # the page's largest request (one λ, 10 prompts of 400 examples) is within the limit: it validates
    status, answer = request(server, "/api/sweep", {**COPY, "tasks": ["copy_op1"], "n_examples": 400, "n_prompts": 10,
                                                    "lambdas": [0.5]})
    one_line(status, answer, 400, "exactly two tasks")  # refused by the sweep itself, not by the cost cap


def test_host_and_origin_must_be_this_server(server):
    port = server.rsplit(":", 1)[1]
    one_line(*request(server, "/api/info", headers={"Host": f"rebind.example:{port}"}), 403, "Host")
    one_line(*request(server, "/", headers={"Host": "attacker.test"}), 403, "DNS rebinding")
    one_line(*request(server, "/api/prompt", COPY, headers={"Origin": "http://attacker.test"}), 403, "Origin")
    one_line(*request(server, "/api/prompt", COPY, headers={"Origin": "null"}), 403, "Origin")
    assert request(server, "/api/prompt", COPY, headers={"Origin": f"http://127.0.0.1:{port}"})[0] == 200
    assert request(server, "/api/info", headers={"Host": f"localhost:{port}"})[0] == 200


def _send(url: str, path: str, body: dict) -> socket.socket:
    """A client that sends a POST and does not read the answer yet (closing it = going away)."""
    host, port = url.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    s = socket.create_connection((host, int(port)))
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    return s


def _wait(url: str, condition, what: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = info(url)
        if condition(got["queue"]):
            return got["queue"]
        time.sleep(0.2)
    raise AssertionError(f"{what}: {info(url)['queue']}")


def test_the_queue_is_capped_and_work_of_clients_that_left_is_cancelled(server):
    limit = info(server)["queue"]["limit"]
    before = info(server)["queue"]["cancelled"]
    # A sweep of 11 λ points, each a 300-example prompt (3,300 lines, within the cost cap), then the queue filled.
    sweep = _send(server, "/api/sweep", {**COPY, "n_examples": 300})
    _wait(server, lambda q: q["pending"] == 1, "the sweep never started")
    status, prompt = request(server, "/api/prompt", COPY)
    clients = [sweep] + [_send(server, "/api/score", {"prompt": prompt["text"], "answers": prompt["answers"]})
                         for _ in range(limit - 1)]
    _wait(server, lambda q: q["pending"] == limit, "the queue never filled")
    one_line(*request(server, "/api/score", {"prompt": prompt["text"], "answers": prompt["answers"]}), 429,
             f"the model is busy: {limit} requests are queued or running, the limit is {limit}")

    for c in clients:  # every client goes away: the queued scores are skipped, the sweep stops between λ points
        c.close()
    queue = _wait(server, lambda q: q["pending"] == 0, "the abandoned work never ended")
    assert queue["cancelled"] - before == limit  # the sweep counts only if it stopped before its last λ point

    status, scored = request(server, "/api/score", {"prompt": prompt["text"], "answers": prompt["answers"]})
    assert status == 200 and 0 < scored["probs"][0] < 1  # still serving
