"""The explorer's web app (FastAPI): the page, its static files, and a small JSON API.

    GET  /                the page (static/index.html); /static/... its script, style and Chart.js
    GET  /api/info        the model: name, dtype, context length, whether it can enumerate outputs
    GET  /api/tasks       task families that can be mixed, with an example line per task
    POST /api/prompt      a seeded prompt of a setting (tasks, weights, n_examples, seed, move)
    POST /api/score       every answer's exact P after a prompt text, the other mass, the shares
    POST /api/sweep       P(task 1), P(task 2) along λ for two tasks (the study's Figure 3)
    POST /api/outputs     the most probable complete outputs, each marked with the task it answers
    POST /api/export      the setting as a probe config YAML for `superpose run`

Every error answers ``{"error": "<one line>"}`` with a 4xx status: a body that is not JSON (400), a
field that does not validate (422), anything the model refuses, such as a prompt beyond its context
(400), a body over :data:`MAX_BODY` bytes (413). Model calls go through the explorer's one worker
thread, so the event loop keeps answering while a call waits its turn.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from superpose.errors import SuperposeError
import superpose.explore.mechanism as mechanism
from superpose.explore.service import (Explorer, ExportBody, OutputsBody, PromptRequest, ScoreBody, SweepBody,
                                       families, make_prompt)

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY = 1_000_000  # bytes; a prompt that fills any model's context is far smaller
# The page loads only its own files: nothing from another host, even by mistake.
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class LimitBody:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 before the app reads any of it."""

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
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


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


def create_app(explorer: Explorer) -> LimitBody:
    """The ASGI app serving ``explorer`` (its model loaded already): FastAPI behind the body limit."""
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
        return _error(400, str(exc))

    async def on_model(fn: Callable, *args: Any) -> Any:
        """Run ``fn`` on the model's worker thread, in turn with every other model call."""
        return await asyncio.wrap_future(explorer.submit(fn, *args))

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

    return LimitBody(app)


def check_listen(host: str, port: int) -> None:
    """Fail with one line unless ``host:port`` can be listened on now."""
    if not 0 < port < 65536:
        raise SuperposeError(f"--port {port}: expected a port number from 1 to 65535")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise SuperposeError(f"--port {port}: cannot listen on {host}:{port} ({e.strerror}); "
                                 "choose another port with --port") from None


def serve(model: str, dtype: str = "float32", device: str | None = None, host: str = "127.0.0.1",
          port: int = 8765, options: dict | None = None) -> None:
    """Load ``model`` once, then serve the explorer on ``host:port`` until interrupted."""
    import uvicorn

    from superpose.backends import check_model, load_backend
    from superpose.report.console import console

    check_listen(host, port)  # before the model loads: a busy port is known at once
    check_model(model, purpose="superpose serve")
    console.print(f"loading model [bold]{model}[/bold] ({dtype})")
    backend = load_backend(model, dtype, device, **(options or {}))
    explorer = Explorer(backend, model, dtype, device)
    print(f"superpose explorer: http://{host}:{port}/  (Ctrl-C stops it)", flush=True)
    try:
        uvicorn.run(create_app(explorer), host=host, port=port, log_level="warning")
    finally:
        explorer.close()


__all__ = ["MAX_BODY", "create_app", "serve"]
