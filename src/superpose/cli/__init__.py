"""Command line: one table of commands, a thin layer over the library.

This package is the only layer that parses arguments: one module per command (``cli/run.py``,
``cli/sweep.py``, ...), each with ``configure(parser)`` and the function the parsed arguments go to.
Nothing outside it imports it. Only the module of the command being run is imported, so
`superpose --help` and `superpose tasks` start without torch. Flags mean the same on every command
(``cli/flags.py``): --model --dtype --device --out --resume --seed --figures --no-progress. Progress
and messages go to stderr; results go to stdout, and a command that writes a run folder ends stdout
with ``run folder: PATH``.

Errors the user can fix (SuperposeError, config validation) print one clear message and exit 2.
Any other exception (a full disk, a damaged model file, a bug) prints one line and exits 1, its
traceback only with ``--verbose`` (or ``SUPERPOSE_VERBOSE=1``). Either way a run folder the command
was writing says ``failed`` with the reason (a folder that was complete before stays complete).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from superpose.errors import SuperposeError

# name -> one line of help; superpose.cli.<name>.configure adds the command's arguments. In study order.
COMMANDS: dict[str, str] = {
    "run": "probe: P(every task's answer) after mixed-task prompts (Fig. 1-2; default: the demo)",
    "train": "train a small transformer from scratch, one task per sequence (Fig. 3)",
    "sweep": "λ sweep: P(task 1) and P(task 2) as task 1's share goes from 0 to 1 (Fig. 3)",
    "construct": "the hand-built 7-layer transformer that does K tasks at once (Theorem 1)",
    "vectors": "task vectors: extract, choose a layer, project, interpolate, steer (Fig. 4-5)",
    "mechanism": "where superposition forms: layer lens, leave-one-out attribution, heads, by task answer",
    "scale": "tasks solved at once and calibration against model size (Fig. 6, App. E)",
    "decode": "a model's most probable complete outputs after a prompt, with probabilities",
    "reproduce": "the whole study, every step as a run folder under one parent, then the report",
    "report": "one self-contained HTML page from run folders (opens from disk, no server)",
    "serve": "a local web page to explore mixed prompts on one warm model",
    "tasks": "list the registered tasks by family, with an example",
    "models": "list the embedded models and whether they are installed",
}


def _chosen(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The `superpose` parser: every command listed, the arguments of the one in ``argv`` added.

    Without ``argv`` every command's arguments are added (imports every module).
    """
    parser = argparse.ArgumentParser(
        prog="superpose", description="Study task superposition in language models.",
        epilog="`superpose COMMAND --help` shows a command's flags. Docs: README.md and docs/.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = None if argv is None else _chosen(argv)
    for name, help_line in COMMANDS.items():
        p = sub.add_parser(name, help=help_line, description=help_line[0].upper() + help_line[1:] + ".")
        if argv is None or name == chosen:
            importlib.import_module(f"superpose.cli.{name}").configure(p)
            p.add_argument("--no-progress", action="store_true",
                           help="no progress bars or progress lines (results and errors still print)")
            add_verbose_flag(p)
    return parser


def add_verbose_flag(parser: argparse.ArgumentParser) -> None:
    """``--verbose`` on every command (those that load a model have it from cli/flags.py already)."""
    from superpose.cli.flags import VERBOSE_HELP, Verbose

    try:
        parser.add_argument("--verbose", action=Verbose, nargs=0, help=VERBOSE_HELP)
    except argparse.ArgumentError:  # added by add_model_flags
        pass


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `superpose` command."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from superpose.progress import set_progress

    set_progress(not args.no_progress)
    try:
        return int(args.func(args) or 0)
    except SuperposeError as e:
        from superpose.runs import fail_held_runs

        fail_held_runs(str(e))  # no folder stays "running" after an error stopped it
        # every line of a message with several problems is marked, so none reads as a note
        print("\n".join(f"error: {line}" for line in str(e).splitlines() or [""]), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; finished work is kept (resume with --resume RUN_FOLDER)", file=sys.stderr)
        return 130
    except Exception as e:  # not the project's own: a full disk, a damaged file, a bug
        from superpose.runs import fail_held_runs

        kind = type(e).__qualname__ if type(e).__module__ == "builtins" else f"{type(e).__module__}.{type(e).__qualname__}"
        reason = f"{kind}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else '(no message)'}"
        failed = fail_held_runs(reason)
        if os.environ.get("SUPERPOSE_VERBOSE", "") not in ("", "0"):
            raise
        marked = f"; run folder {', '.join(map(str, failed))} marked failed" if failed else ""
        print(f"error: {reason}{marked} (--verbose shows the traceback)", file=sys.stderr)
        return 1

