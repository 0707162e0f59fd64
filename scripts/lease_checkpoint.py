"""A training run's small checkpoint in pieces under 16 MiB, and back (superpose.scratch.lease).

    python scripts/lease_checkpoint.py pack runs/scratch/ret_paper leases/ret_paper
    python scripts/lease_checkpoint.py unpack leases/ret_paper runs/scratch/ret_paper   # or the manifest file
    superpose train --resume runs/scratch/ret_paper          # continues the run

``pack`` writes ``<name>.tar.NNN`` and ``<name>.manifest.json`` (sha256 of every piece and of the
whole); ``unpack`` checks them, joins them and writes a run folder that ``--resume`` continues
(exactly if the optimizer's moments fitted in 60 MB, else after rebuilding them; docs/scratch.md).
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    from superpose.errors import SuperposeError
    from superpose.scratch.lease import pack, unpack

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="RUN_DIR's latest checkpoint -> pieces in OUT")
    p.add_argument("run_dir")
    p.add_argument("out")
    u = sub.add_parser("unpack", help="MANIFEST's pieces -> a resumable RUN_DIR")
    u.add_argument("manifest", help="<name>.manifest.json, or the folder that holds it and its pieces")
    u.add_argument("run_dir")
    args = ap.parse_args()
    try:
        if args.command == "pack":
            manifest = pack(args.run_dir, args.out)
            print(f"wrote {manifest} and its pieces")
        else:
            facts = unpack(args.manifest, args.run_dir)
            print(f"{args.run_dir}: step {facts['step']}, optimizer moments {facts['moments']}; "
                  f"continue with: superpose train --resume {args.run_dir}")
    except SuperposeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
