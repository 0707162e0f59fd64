"""`superpose report`: one self-contained HTML page (report/html.py) from run folders."""

from __future__ import annotations

import argparse

from superpose.experiments.reproduce import expand_run_folders
from superpose.report.html import write_report


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `superpose report`."""
    p.add_argument("folders", nargs="+", metavar="RUN_FOLDER",
                   help="run folders (a reproduce folder stands for every step in it)")
    p.add_argument("-o", "--output", default="report.html", metavar="FILE", help="the HTML file (default: report.html)")
    p.add_argument("--title", default="superpose report", help="the page's title")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Write the report of the given run folders."""
    out = write_report(expand_run_folders(args.folders), args.output, args.title)
    print(f"report: {out}")
    return 0
