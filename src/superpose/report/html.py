"""The HTML report (`superpose report RUN_FOLDER... -o report.html`): one self-contained page from run folders.

The page opens from disk with no server and no network: figures are embedded as base64 PNG, the
style sheet is inline, and there is no script. Everything that comes from a run folder (task
names, answers, prompts, config values, summary.md) is escaped: Jinja2 autoescapes every value, and
summary.md is rendered by markdown-it with raw HTML turned off, so an answer ``<script>`` shows as
text and never runs.

Every kind of run shows the same way: its summary.md (written by the kind's own summariser, which
puts the study's published numbers beside ours where there are any) and its figures. A folder
written before its kind wrote summary.md gets one made in memory by that summariser. A run folder's
kind is read from its ``status.json`` (:data:`superpose.runs.KINDS`); a folder of an older version,
whose status.json does not say its kind, has it guessed from what it holds (``summary.json``'s
keys, a training run's ``records.jsonl`` or ``log.jsonl``).
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from superpose.errors import SuperposeError
from superpose.files import load_yaml
from superpose.runs import KINDS, read_status, training_log


@dataclass
class Block:
    """One piece of a run's section: a sentence (the description, a note on its state) or its rendered summary.md."""

    text: str = ""
    markdown: str = ""  # already-escaped HTML from markdown-it (raw HTML off)
    verdict: bool = False


@dataclass
class RunView:
    """What the page shows of one run folder."""

    path: str
    kind: str
    title: str
    status: str
    reason: str = ""
    blocks: list[Block] = field(default_factory=list)
    figures: list[dict] = field(default_factory=list)
    provenance: list[tuple[str, str]] = field(default_factory=list)
    config_text: str = ""

    @property
    def status_class(self) -> str:
        return self.status if self.status in ("complete", "running", "stopped", "failed") else "unknown"


def _markdown(text: str) -> str:
    from markdown_it import MarkdownIt
    from markupsafe import Markup

    text = "\n".join("##" + line if line.startswith("#") else line for line in text.splitlines())  # h1 -> h3
    html = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    return Markup(html)  # markdown-it escaped every character of the input; raw HTML is off


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _guess_kind(summary: dict, folder: Path) -> str:
    """The kind of a folder of format 1 (status.json without ``kind``), from what it holds."""
    if training_log(folder).exists() and not (folder / "config.yaml").exists():
        return "train"
    if "curve" in summary and "task1" in summary:
        return "sweep"
    if "architecture" in summary:
        return "construct"
    if (folder / "vectors.safetensors").exists() or "steps" in summary:
        return "vectors"
    if (folder / "records.jsonl").exists() and "models" in summary and all(
            isinstance(v, dict) and all(isinstance(m, dict) and "tasks" in m for m in v.values())
            for v in summary["models"].values()):
        return "probe"
    if "models" in summary:
        return "scale"
    return "run"


def _train_view(folder: Path, status: dict) -> RunView:
    """A training run: its summary.md and figures, drawn afresh (in memory) while it is unfinished."""
    from superpose.scratch.summary import training_figures, training_markdown

    config = _read_json(folder / "config.json")
    if not config and (folder / "config.yaml").is_file():  # a training folder written as a RunFolder
        doc = load_yaml(folder / "config.yaml", str(folder / "config.yaml"))
        config = doc.get("config") or {} if isinstance(doc, dict) else {}
    done = (folder / "model").is_dir()
    view = RunView(str(folder), "train", str(config.get("name", folder.name)),
                   status.get("status") or ("complete" if done else "running"),
                   reason=str(status.get("reason", "")), config_text=yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    if view.status == "complete" and (folder / "summary.md").is_file():
        _add_summary(view, (folder / "summary.md").read_text(encoding="utf-8"), folder / "figures")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            training_figures(folder, tmp)
            _add_summary(view, training_markdown(folder), Path(tmp))
    info = _read_json(folder / "model" / "training.json") if done else {}
    view.provenance = [(k, str(v)) for k, v in info.items() if not isinstance(v, (dict, list))]
    return view


def _add_summary(view: RunView, summary_md: str | None, figures: Path) -> None:
    """Embed a run's summary.md (rendered) and every PNG of its figures folder."""
    if summary_md is not None:
        view.blocks.append(Block(markdown=_markdown(summary_md)))
    for png in sorted(figures.glob("*.png")) if figures.is_dir() else []:
        view.figures.append({"name": png.stem, "mime": "image/png", "data": base64.b64encode(png.read_bytes()).decode()})


def _older_markdown(kind: str, summary: dict, folder: Path) -> str | None:
    """summary.md for a folder written before its kind wrote one (or, for a probe, before intervals),
    made in memory by the kind's own summariser; None where the folder's summary.md stands."""
    if kind == "probe":  # a folder from before intervals gets them from its records
        from superpose.experiments.probe import first_prompts, summary_markdown, summary_with_intervals

        fresh = summary_with_intervals(folder, summary)[1]
        if fresh is not None or (folder / "summary.md").is_file():
            return fresh
        return summary_markdown(summary, first_prompts(folder))
    if (folder / "summary.md").is_file():
        return None
    if kind == "sweep":
        from superpose.experiments.sweep import sweep_markdown

        return sweep_markdown(summary)
    if kind == "construct":
        from superpose.experiments.construct import construct_markdown

        return construct_markdown(summary)
    return None


def _provenance(doc: dict) -> list[tuple[str, str]]:
    """Environment and model rows: versions, commit, command, each model's backend and weight hashes."""
    env = doc.get("environment") or {}
    rows = [(k, str(env[k])) for k in ("git_commit", "command", "started", "python", "platform") if env.get(k)]
    rows += [(pkg, str(v)) for pkg, v in (env.get("versions") or {}).items()]
    models = dict(doc.get("models") or {})
    if isinstance(doc.get("model_info"), dict):  # a sweep keeps its one model's provenance here
        models[str(doc["model_info"].get("name", "model"))] = doc["model_info"]
    for name, info in models.items():
        if not isinstance(info, dict):
            continue
        facts = [f"{k} {info[k]}" for k in ("backend", "dtype", "device", "architecture", "n_parameters", "source")
                 if info.get(k) is not None]
        rows.append((f"model {name}", ", ".join(facts)))
        for file, digest in (info.get("sha256") or {}).items():
            rows.append((f"sha256 {file}", str(digest)))
    return rows


def read_run_view(path: str | Path) -> RunView:
    """Read one run folder into what the page shows of it."""
    folder = Path(path)
    if not folder.is_dir():
        raise SuperposeError(f"{folder}: no such run folder")
    status = read_status(folder)
    summary = _read_json(folder / "summary.json")
    kind = status.get("kind") or _guess_kind(summary, folder)
    if "kind" in status and kind not in KINDS:
        raise SuperposeError(f"{folder / 'status.json'}: kind {str(kind)[:40]!r} is not one of {', '.join(KINDS)}")
    if kind == "train" and training_log(folder).exists():
        return _train_view(folder, status)
    if not (folder / "config.yaml").is_file():
        raise SuperposeError(f"{folder} is not a run folder (no config.yaml, and no training log)")
    doc = load_yaml(folder / "config.yaml", str(folder / "config.yaml"))
    if not isinstance(doc, dict):
        raise SuperposeError(f"{folder / 'config.yaml'}: expected the mapping a run folder's config.yaml holds")
    config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    view = RunView(str(folder), kind, str(config.get("name", folder.name)), status.get("status", "unknown"),
                   reason=str(status.get("reason", "")), provenance=_provenance(doc),
                   config_text=yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    if config.get("description"):
        view.blocks.append(Block(text=str(config["description"])))
    if not summary and view.status == "complete":  # a summary deleted or cut short after the run finished
        view.status, view.reason = "damaged", ("summary.json is missing or cut short; the records are kept, and "
                                               "resuming the run writes it again from them")
    elif not summary:
        view.blocks.append(Block(text="No summary yet: this run has not finished (resume it with --resume).", verdict=True))
    if summary and kind in ("probe", "sweep", "construct") and _guess_kind(summary, folder) != kind:
        raise SuperposeError(f"{folder / 'status.json'} says kind '{kind}', but summary.json is not a {kind} summary"
                             "; correct the kind or remove the folder from the report")
    summary_md = (folder / "summary.md").read_text(encoding="utf-8") if (folder / "summary.md").is_file() else None
    if summary:
        try:
            summary_md = _older_markdown(kind, summary, folder) or summary_md
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise SuperposeError(f"{folder / 'status.json'} says kind '{kind}', but summary.json is not a {kind} "
                                 f"summary ({type(e).__name__}: {e}); correct the kind or remove the folder from "
                                 "the report") from None
    _add_summary(view, summary_md, folder / "figures")
    return view


def render_report(runs: list[RunView], title: str = "superpose report") -> str:
    """The report page as a string (autoescaped Jinja2)."""
    import jinja2

    from superpose.runs import environment

    env = jinja2.Environment(loader=jinja2.PackageLoader("superpose.report", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    made = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    version = environment()["versions"].get("superpose") or "(source)"
    return env.get_template("report.html.j2").render(title=title, runs=runs, made=made, version=version)


def write_report(folders: list[str | Path], out: str | Path, title: str = "superpose report") -> Path:
    """Render the run folders into one HTML file, written atomically (no half-written page)."""
    runs = [read_run_view(f) for f in folders]  # every folder is read (and checked) before anything is written
    out = Path(out)
    if out.is_dir():
        raise SuperposeError(f"-o {out}: is a folder; give a file name such as {out / 'report.html'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(render_report(runs, title))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a report is for reading
    os.replace(tmp, out)
    return out

