"""`superpose serve`: the explorer page on one warm model (the app is in superpose.explore)."""

from __future__ import annotations

import argparse

from superpose.cli.flags import add_model_flags, model_overrides


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `superpose serve`."""
    add_model_flags(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Load the model once and serve the page until interrupted."""
    from superpose.errors import missing_package

    try:
        from superpose.explore.app import serve
    except ModuleNotFoundError as e:  # fastapi, starlette or uvicorn: installed by requirements.txt
        raise missing_package(e.name or "fastapi", "superpose serve") from None

    entry = model_overrides(args) or "gemma-3-270m"
    name, options = (entry["name"], entry["options"]) if isinstance(entry, dict) else (entry, {})
    serve(name, args.dtype or "float32", args.device, args.host, args.port, options)
    return 0
