"""`superpose decode`: output enumeration (enumerate.py) from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from superpose.cli.flags import add_model_flags, parse_model_options


def configure(d: argparse.ArgumentParser) -> None:
    """Arguments of ``superpose decode``."""
    from superpose.enumerate import EnumerateSettings

    defaults = EnumerateSettings()
    d.description += (" A best-first search over the model's continuations (reusing the prompt's KV "
                      "cache) lists distinct complete outputs -- text up to the terminator -- with exact "
                      "probabilities, and where the rest of the probability went.")
    add_model_flags(d)
    src = d.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt-file", metavar="FILE", help="file holding the prompt ('-' reads stdin)")
    src.add_argument("--prompt", help="the prompt text (use $'...' in bash for newlines)")
    d.add_argument("--terminator", default=defaults.terminator,
                   help="an output ends at the first token containing this (default: newline)")
    d.add_argument("--min-prob", type=float, default=defaults.min_prob,
                   help=f"expand only partial outputs at least this probable (default {defaults.min_prob:g})")
    d.add_argument("--max-expansions", type=int, default=defaults.max_expansions)
    d.add_argument("--max-tokens", type=int, default=defaults.max_tokens)
    d.add_argument("--max-outputs", type=int, default=defaults.max_outputs)
    d.add_argument("--max-branching", type=int, default=defaults.max_branching)
    d.add_argument("--batch-size", type=int, default=defaults.batch_size)
    d.add_argument("--no-cache", action="store_true", help="re-run the prompt for every expansion (slow; a check)")
    d.add_argument("--json", action="store_true", help="print the result as JSON")
    d.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Enumerate a model's most probable outputs after one prompt and print them."""
    from superpose.config import validate
    from superpose.enumerate import EnumerateSettings, OutputEnumerator, format_enumeration
    from superpose.errors import SuperposeError
    from superpose.backends import check_model, load_backend

    if args.prompt_file is not None:
        if args.prompt_file == "-":
            prompt = sys.stdin.read()
        else:
            path = Path(args.prompt_file)
            if not path.is_file():
                raise SuperposeError(f"prompt file {path}: no such file")
            prompt = path.read_text(encoding="utf-8")
    else:
        prompt = args.prompt
    settings = validate(EnumerateSettings, {
        "terminator": args.terminator, "min_prob": args.min_prob, "max_expansions": args.max_expansions,
        "max_tokens": args.max_tokens, "max_outputs": args.max_outputs, "max_branching": args.max_branching,
        "batch_size": args.batch_size}, "decode options")
    model = args.model or "gemma-3-270m"
    check_model(model, needs=("enumerate",), purpose="superpose decode")
    lm = load_backend(model, args.dtype or "float32", args.device, **parse_model_options(args.model_options))
    result = OutputEnumerator(lm, settings, reuse_cache=not args.no_cache).enumerate(prompt)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=1))
    else:
        print(format_enumeration(result, lm.tokenizer))
    return 0
