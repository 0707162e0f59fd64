"""The explorer's web app (FastAPI): the page, its static files, and a small JSON API.

    GET  /                the page (static/index.html); /static/... its script, style and Chart.js
    GET  /api/info        the model: name, dtype, context length, whether it can enumerate outputs; the queue
    GET  /api/tasks       task families that can be mixed, with an example line per task
    POST /api/prompt      a seeded prompt of a setting (tasks, weights, n_examples, seed, move)
    POST /api/score       every answer's exact P after a prompt text, the other mass, the shares
    POST /api/sweep       P(task 1), P(task 2) along λ for two tasks (the study's Figure 3)
    POST /api/outputs     the most probable complete outputs, each marked with the task it answers
    POST /api/controls    a drawn prompt's controls: P without each task's examples, with only them (2K)
    POST /api/export      the setting as a probe config YAML for `superpose run`

Every error answers ``{"error": "<one line>"}`` with a 4xx status: a body that is not JSON, or
holds text that is not valid Unicode (a lone surrogate ``\\ud800``) or a number over 4300 digits
(400, before any model work), a field that does not validate or a request over its cost limit (422),
anything the model refuses, such as a prompt beyond its context (400), a body over :data:`MAX_BODY`
bytes (413), a full queue (429), a Host or Origin that is not this server (403). Model calls go
through the explorer's one worker thread, so the event loop keeps answering while a call waits its
turn; a call whose client disconnects is skipped, or a sweep stopped between λ points.

The explorer has no authentication: it listens on 127.0.0.1 unless told otherwise, and it answers
only requests whose Host names this server (loopback names, the ``--host`` value, or an IP address),
so a web page on another domain cannot reach it by DNS rebinding; a request whose Origin is another
site is refused too.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import ipaddress
import json
import socket
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

import superpose.explore.mechanism as mechanism
from superpose.errors import SuperposeError, brief
from superpose.explore.service import (Cancelled, ControlsBody, Explorer, ExportBody, OutputsBody, PromptRequest,
                                       QueueFull, ScoreBody, SweepBody, families, make_prompt)

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY = 1_000_000  # bytes; a prompt that fills any model's context is far smaller
# The page loads only its own files: nothing from another host, even by mistake.
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Set by LimitBody for each POST: the event its model calls watch, set when the client disconnects.
CLIENT_GONE: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("client_gone", default=None)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class LimitBody:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 before the app reads any of it, one
    the app must not parse (see :func:`_unreadable`) 400; while the app answers, the client going away
    sets the request's :data:`CLIENT_GONE` event, which its model calls watch."""

    def __init__(self, app: Any, limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:  # read it all (dropping what is over the limit), so the client can read our answer
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size <= self.limit:
                chunks.append(body)
            more = message.get("more_body", False)
        if size > self.limit:
            response = _error(413, f"request body: {size:,} bytes, over the limit of {self.limit:,}")
            return await response(scope, receive, send)
        body = b"".join(chunks)
        problem = _unreadable(body)
        if problem is not None:  # before any model work, and in our own error shape
            return await _error(400, f"request body: {problem}")(scope, receive, send)
        replayed, gone, cancel = False, asyncio.Event(), threading.Event()

        async def watch() -> None:  # the body is read: the next message is the client going away
            while (await receive())["type"] != "http.disconnect":
                pass
            cancel.set()
            gone.set()

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        watcher = asyncio.create_task(watch())
        token = CLIENT_GONE.set(cancel)
        try:
            await self.app(scope, replay, send)
        finally:
            CLIENT_GONE.reset(token)
            watcher.cancel()


def _unreadable(body: bytes) -> str | None:
    """Why a JSON body cannot be used safely (text that is not Unicode, a number Python refuses), or None;
    a body that is not JSON at all is left to the app, which names the parse error."""
    if not body.strip():
        return None
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return None
    except RecursionError:
        return "nested too deeply"
    except ValueError:  # Python refuses to convert an integer of more than 4300 digits
        return "a number with more than 4300 digits"
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return "text that is not valid Unicode (a lone surrogate such as \\ud800)"
    except RecursionError:
        return "nested too deeply"
    return None


class CheckOrigin:
    """ASGI middleware: refuse (403) a request whose Host is not this server's, or whose Origin is another site.

    A DNS-rebinding page reaches 127.0.0.1 under its own domain name, so its requests carry that name
    as Host; names we answer to are the loopback names, the ``--host`` value and IP addresses.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1"):
        self.app = app
        self.names = {n.lower().strip("[]") for n in (*LOOPBACK, host)}
        if host in ("0.0.0.0", "::"):  # every interface: the machine's own names too
            self.names |= {socket.gethostname().lower(), socket.getfqdn().lower()}

    def _allowed(self, hostport: str) -> bool:
        host = hostport.strip().lower()
        if host.startswith("["):  # [::1]:8765
            host = host[1:].partition("]")[0]
        elif host.count(":") == 1:  # name:port (more colons: a bare IPv6 address)
            host = host.partition(":")[0]
        if host in self.names:
            return True
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return False
        return True

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host, origin = headers.get("host", ""), headers.get("origin")
        if not self._allowed(host):
            return await _error(403, "refused: the Host header names no address of this server (a guard against "
                                "DNS rebinding); open the address superpose serve printed")(scope, receive, send)
        if origin is not None and origin.partition("://")[2].rstrip("/").lower() != host.strip().lower():
            return await _error(403, "refused: the request comes from a page of another site (its Origin is not "
                                "this server)")(scope, receive, send)
        await self.app(scope, receive, send)


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    errors = exc.errors()
    bad_json = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if bad_json is not None:
        return 400, f"request body: not valid JSON ({bad_json.get('ctx', {}).get('error', 'cannot parse')})"
    if any(tuple(e["loc"]) == ("body",) and e.get("type") in ("dict_type", "model_attributes_type") for e in errors):
        return 422, "request body: expected a JSON object of named fields"  # e.g. a list, or a bare string
    lines = []
    for e in errors:
        where = ".".join(str(p) for p in e["loc"] if p != "body") or "request body"
        lines.append(f"{where}: {e['msg'].removeprefix('Value error, ')}")
    return 422, "; ".join(lines)


def create_app(explorer: Explorer, host: str = "127.0.0.1") -> CheckOrigin:
    """The ASGI app serving ``explorer`` (its model loaded already): FastAPI behind the body limit and
    the Host/Origin check (``host``: the address it listens on)."""
    app = FastAPI(title="superpose explorer", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(*_validation_message(exc))

    @app.exception_handler(SuperposeError)
    async def refused(request: Request, exc: SuperposeError) -> JSONResponse:
        return _error(429 if isinstance(exc, QueueFull) else 400, str(exc).replace("\n", "; "))

    @app.exception_handler(Cancelled)
    async def cancelled(request: Request, exc: Cancelled) -> JSONResponse:
        return _error(499, "cancelled: the client went away")  # nobody reads it; the log stays clean

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))  # e.g. 404, 405: our shape, not FastAPI's

    async def on_model(fn: Callable, *args: Any) -> Any:
        """Run ``fn`` on the model's worker thread, in turn with every other model call; skipped or
        stopped when the client disconnects."""
        return await asyncio.wrap_future(explorer.submit(fn, *args, cancel=CLIENT_GONE.get()))

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/info")
    async def info() -> dict:
        return explorer.info()

    @app.get("/api/tasks")
    async def tasks() -> list[dict]:
        return families()

    @app.post("/api/prompt")
    async def prompt(body: PromptRequest) -> dict:
        return make_prompt(body)

    @app.post("/api/score")
    async def score(body: ScoreBody) -> dict:
        return await on_model(explorer.score, body)

    @app.post("/api/sweep")
    async def sweep(body: SweepBody) -> dict:
        return await on_model(explorer.sweep, body)

    @app.post("/api/outputs")
    async def outputs(body: OutputsBody) -> dict:
        return await on_model(explorer.outputs, body)

    @app.post("/api/controls")
    async def controls(body: ControlsBody) -> dict:
        return await on_model(explorer.controls, body)

    # The mechanism panels (explore/mechanism.py): lens, attribution, steering.
    @app.post("/api/lens")
    async def lens(body: ScoreBody) -> dict:
        return await on_model(mechanism.lens, explorer.backend, body)

    @app.post("/api/attribution")
    async def attribution(body: mechanism.AttributionBody) -> dict:
        return await on_model(mechanism.attribution, explorer.backend, body)

    @app.post("/api/steer")
    async def steer(body: mechanism.SteerBody) -> dict:
        return await on_model(mechanism.steer, explorer.backend, body)

    @app.post("/api/export")
    async def export(body: ExportBody) -> PlainTextResponse:
        return PlainTextResponse(explorer.export(body), media_type="application/yaml")

    return CheckOrigin(LimitBody(app), host)


def check_listen(host: str, port: int) -> None:
    """Fail with one line unless ``host:port`` can be listened on now (naming --host or --port, whichever is wrong)."""
    if not 0 < port < 65536:
        raise SuperposeError(f"--port {port}: expected a port number from 1 to 65535")
    try:
        family, *_, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError, ValueError):
        raise SuperposeError(f"--host {brief(host)}: not an address or name of this machine (e.g. 127.0.0.1)") \
            from None
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRNOTAVAIL:
                raise SuperposeError(f"--host {brief(host)}: no network interface of this machine has that address "
                                     f"({e.strerror})") from None
            raise SuperposeError(f"--port {port}: cannot listen on {host}:{port} ({e.strerror}); "
                                 "choose another port with --port") from None


def warn_if_exposed(host: str) -> None:
    """One warning line on stderr when ``host`` is not a loopback address: the page has no authentication."""
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = host.lower() == "localhost"
    if not loopback:
        print(f"warning: --host {host}: the explorer has no authentication; anyone who can reach this port can "
              "run the model and read what it loaded (use 127.0.0.1, or an SSH tunnel, unless the network is yours)",
              file=sys.stderr, flush=True)


def serve(model: str, dtype: str = "float32", device: str | None = None, host: str = "127.0.0.1",
          port: int = 8765, options: dict | None = None) -> None:
    """Load ``model`` once, then serve the explorer on ``host:port`` until interrupted."""
    import uvicorn

    from superpose.backends import backend_class, check_model, load_backend
    from superpose.display.console import console

    check_listen(host, port)  # before the model loads: a busy port is known at once
    warn_if_exposed(host)
    check_model(model, purpose="superpose serve")
    console.print(f"loading model [bold]{model}[/bold] ({dtype})")
    backend = load_backend(model, dtype, device, **(options or {}))
    if backend_class(model).remote:
        backend.check_access()  # a refused key or an unknown model: one line now, not a page that cannot score
    explorer = Explorer(backend, model, dtype, device)
    print(f"superpose explorer: http://{host}:{port}/  (Ctrl-C stops it)", flush=True)
    try:
        uvicorn.run(create_app(explorer, host), host=host, port=port, log_level="warning")
    finally:
        explorer.close()


__all__ = ["MAX_BODY", "create_app", "serve"]
