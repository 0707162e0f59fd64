"""A real headless Chromium driven over the DevTools protocol, for testing the HTML report.

Debian's `chromium` package (installed by .ci/run) runs with --remote-debugging-port=0; we read the
port it chose from DevToolsActivePort, attach to its page over a WebSocket, load a file:// URL, and
collect what a person would notice: console errors, script exceptions, network requests, images
that fail to decode, and a screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from websockets.sync.client import connect


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageVisit:
    """What loading one page produced."""

    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    evaluated: dict = field(default_factory=dict)  # results of the probe expressions
    screenshot: bytes = b""


class Chromium:
    """One headless Chromium process with a single page target."""

    def __init__(self, profile: Path):
        exe = chromium_path()
        assert exe, "chromium is not installed (apt-get install chromium)"
        profile.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1280,1600", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert self.process.poll() is None, "chromium exited at start"
            assert time.monotonic() < deadline, "chromium did not open its debugging port"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        while True:  # the page target appears a moment after the port
            targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
            pages = [t for t in targets if t["type"] == "page"]
            if pages:
                break
            assert time.monotonic() < deadline, "chromium opened no page"
            time.sleep(0.1)
        self._stack = contextlib.ExitStack()  # the client is a context manager; close() leaves it
        self.ws = self._stack.enter_context(connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=30))
        self._id = 0
        self._events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        """Send one DevTools command and wait for its result (events seen meanwhile are kept)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=getattr(self, "timeout", 60)))  # a slower page may raise it
            if msg.get("id") == self._id:
                assert "error" not in msg, msg["error"]
                return msg.get("result", {})
            self._events.append(msg)

    def _wait_for(self, event: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self._events):
            assert time.monotonic() < deadline, f"no {event} within {timeout} s"
            self._events.append(json.loads(self.ws.recv(timeout=timeout)))

    def visit(self, url: str, probes: dict[str, str]) -> PageVisit:
        """Load ``url``, wait for its load event, evaluate ``probes`` (name -> JS expression), screenshot."""
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self._events.clear()
        self.call("Page.navigate", url=url)
        self._wait_for("Page.loadEventFired")
        visit = PageVisit()
        for name, expression in probes.items():
            result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
            visit.evaluated[name] = result["result"].get("value")
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        visit.screenshot = base64.b64decode(shot["data"])
        for e in self._events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                visit.console_errors.append(json.dumps(params.get("args")))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                visit.console_errors.append(params["entry"].get("text", ""))
            elif method == "Runtime.exceptionThrown":
                visit.exceptions.append(json.dumps(params.get("exceptionDetails")))
            elif method == "Network.requestWillBeSent":
                visit.requests.append(params["request"]["url"])
        return visit

    def close(self) -> None:
        try:
            self._stack.close()
        finally:
            self.process.kill()
            self.process.wait(timeout=30)
