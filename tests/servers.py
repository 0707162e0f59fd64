"""Real servers for the tests: vLLM's OpenAI-compatible server, and a fault-injecting HTTP proxy in front of it.

Both listen on 127.0.0.1. The proxy forwards every request to the server unchanged, except the ones its
``faults`` schedule names (by the order requests arrive): an HTTP 429 or 500, a delay beyond the
client's timeout, a dropped connection, a body cut short, or a completions answer with its log-probs
removed. It counts, per request body, how many answers it delivered, so a test can prove that a
resumed run asked nothing twice.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator


TEST_KEY = "superpose-test-key-7f3a"  # the only key the tests' shared server (conftest.vllm_server) accepts


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VLLMServer:
    """``python -m vllm.entrypoints.openai.api_server`` on a model folder, stopped with SIGTERM."""

    def __init__(self, folder: Path, name: str, api_key: str, log: Path, max_model_len: int = 1024):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = log
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder),
               "--host", "127.0.0.1", "--port", str(self.port), "--dtype", "float32",
               "--max-model-len", str(max_model_len), "--enforce-eager", "--served-model-name", name,
               "--max-logprobs", "20", "--api-key", api_key,
               # the shared-prefix path: prompts cached in blocks of 32 tokens, log-probs of the raw model output
               "--enable-prefix-caching", "--block-size", "32", "--logprobs-mode", "raw_logprobs"]
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
               "VLLM_LOGGING_LEVEL": "WARNING"}
        self.process = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout: float = 600) -> None:
        """Block until /health answers 200; fail with the server's log when it dies or takes too long."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM server exited ({self.process.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(1)
        raise RuntimeError(f"vLLM server not ready after {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


FAULTS = ("429", "500", "delay", "drop", "truncate", "strip")


class FaultProxy:
    """A threaded HTTP proxy to ``upstream`` (host, port) that injects ``faults[n]`` into the n-th request
    (of those under the path ``only``, when given)."""

    def __init__(self, upstream_port: int, faults: dict[int, str] | None = None, delay: float = 3.0,
                 only: str | None = None):
        self.upstream_port, self.faults, self.delay = upstream_port, dict(faults or {}), delay
        self.only = only  # a path prefix: count, fault and record only these requests (forward the rest as they are)
        self.arrived = 0
        self.delivered: dict[str, int] = {}  # sha256 of body -> answers delivered
        self.bodies: list[bytes] = []  # every POST body answered with 200, in order
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep the test output clean
                pass

            def do_GET(self):
                self._forward(b"")

            def do_POST(self):
                self._forward(self.rfile.read(int(self.headers.get("Content-Length", 0))))

            def _forward(self, body: bytes) -> None:
                counted = proxy.only is None or self.path.startswith(proxy.only)
                fault = None
                if counted:
                    with proxy.lock:
                        proxy.arrived += 1
                        fault = proxy.faults.get(proxy.arrived)
                if fault in ("429", "500"):
                    return self._reply(int(fault), json.dumps({"error": {"message": "injected"}}).encode())
                if fault == "delay":
                    time.sleep(proxy.delay)
                    self.close_connection = True
                    return
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=600)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                upstream.close()
                if fault == "strip" and answer.status == 200:
                    doc = json.loads(data)
                    for choice in doc.get("choices", []):
                        choice["logprobs"] = None
                    data = json.dumps(doc).encode()
                if fault == "truncate":
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self._reply(answer.status, data, answer.getheader("Content-Type", "application/json"))
                if answer.status == 200 and self.command == "POST" and counted:
                    key = hashlib.sha256(body).hexdigest()
                    with proxy.lock:
                        proxy.delivered[key] = proxy.delivered.get(key, 0) + 1
                        proxy.bodies.append(body)

            def _reply(self, status: int, data: bytes, content_type: str = "application/json") -> None:
                with proxy.lock:
                    proxy.statuses.append(status)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def repeated(self) -> int:
        """Request bodies answered more than once."""
        return sum(1 for n in self.delivered.values() if n > 1)

    def answered(self) -> int:
        """Answers delivered in all."""
        return sum(self.delivered.values())

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def explorer(tmp_path_factory, model: str) -> Iterator[str]:
    """`superpose serve --model MODEL --port P` for a fixture: yields its URL, then stops it and checks
    that its log holds no traceback (no request crashed the server)."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "superpose.cli", "serve", "--model", model,
                                    "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        assert process.poll() is None, f"superpose serve exited:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"superpose serve did not answer:\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(url + "/api/info", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(timeout=30)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
