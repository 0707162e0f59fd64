"""`superpose serve`: flags only; the explorer itself is in app.py and service.py."""

from __future__ import annotations

import argparse

from superpose.cli_args import add_model_flags, model_overrides


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `superpose serve`."""
    add_model_flags(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from superpose.explore.app import serve

    entry = model_overrides(args) or "gemma-3-270m"
    name, options = (entry["name"], entry["options"]) if isinstance(entry, dict) else (entry, {})
    serve(name, args.dtype or "float32", args.device, args.host, args.port, options)
    return 0
