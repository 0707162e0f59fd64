"""Command line: a thin layer over the library. Every command's work lives in a library function.

Errors the user can fix (SuperposeError, config validation) print one clear message and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from superpose.errors import SuperposeError

# Modules that add their own sub-commands: each defines add_parser(subparsers).
COMMAND_MODULES = (
    "superpose.experiments.probe",
    "superpose.commands",
    "superpose.construction.cli",
    "superpose.scratch.cli",
    "superpose.vectors.cli",
    "superpose.experiments.scale_cli",
)


def build_parser() -> argparse.ArgumentParser:
    """The `superpose` argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="superpose", description="Study task superposition in language models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `superpose` command."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SuperposeError as e:
        from superpose.runs import fail_held_runs

        fail_held_runs(str(e))  # no folder stays "running" after an error stopped it
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; finished records are kept (resume with --resume RUN_FOLDER)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
