"""The HTML report (`superpose report RUN_FOLDER... -o report.html`): one self-contained page from run folders.

The page opens from disk with no server and no network: figures are embedded as base64 PNG, the
style sheet is inline, and there is no script. Everything that comes from a run folder (task
names, answers, prompts, config values, summary.md) is escaped: Jinja2 autoescapes every value, and
summary.md is rendered by markdown-it with raw HTML turned off, so an answer ``<script>`` shows as
text and never runs.

A run folder's kind is read from its ``status.json`` (:data:`superpose.runs.KINDS`), and each kind
has its own blocks; a folder of an older version, whose status.json does not say its kind, has it
guessed from what it holds (``summary.json``'s keys, a training run's ``records.jsonl`` or ``log.jsonl``). Where the study published numbers (the λ
curves of its from-scratch models; Figure 2's pattern), they are shown beside ours.
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
from superpose.files import load_yaml, read_jsonl
from superpose.metrics import verdict
from superpose.runs import KINDS, read_status, training_log
from superpose.stats import fmt_key


@dataclass
class Block:
    """One piece of a run's section: a heading, a sentence, a table or rendered Markdown."""

    heading: str = ""
    text: str = ""
    table: dict | None = None  # {"header": [...], "rows": [[...], ...], "text": True for left-aligned columns}
    markdown: str = ""  # already-escaped HTML from markdown-it (raw HTML off)
    verdict: bool = False

    def __post_init__(self):
        if self.table is not None:
            self.table.setdefault("text", False)


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


def _f(x, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _sweep_blocks(s: dict) -> list[Block]:
    from superpose.experiments.sweep import spearman_caveat

    ref = s.get("reference")
    header = ["λ"] + ([f"study ({ref['name']}_k)"] if ref else []) + [f"P({s['task1']})", f"P({s['task2']})", "other"]
    rows = [[_f(c["lambda"], 1)] + ([_f(ref["p1"][i])] if ref else []) + [fmt_key(c, "p1"), fmt_key(c, "p2"),
                                                                          fmt_key(c, "other")]
            for i, c in enumerate(s["curve"])]
    blocks = [Block(heading=f"λ sweep: {s['task1']} vs {s['task2']} on {s['model']}",
                    text=f"{s['n_prompts']} prompts per λ, {s['n_examples']} examples each ({s['counts']} counts). "
                         f"Spearman(P1, λ) = {_f(s.get('spearman_p1_vs_lambda'), 2)}{spearman_caveat(s)}; mean leftover mass "
                         f"{_f(s.get('mean_other'))}" + (
                             f"; mean |P1 − study| = {_f(ref['mean_abs_diff'])} (largest {_f(ref['max_abs_diff'])})"
                             if ref else "") + ".",
                    table={"header": header, "rows": rows})]
    if "split_within_prompt" in s:
        rule = ""
        if "follows_last_example" in s:
            rule = f" The favoured answer is the last example's task in {s['follows_last_example']:.0%} of them."
        blocks.append(Block(
            heading="Inside each mixed prompt (0 < λ < 1)",
            text=f"Mean within-prompt split {_f(s['split_within_prompt'])} (1 = an even split, 0 = all mass on "
                 f"one answer); both answers ≥ 0.1 in {s['prompts_splitting_10pct']:.0%} of mixed prompts.{rule} "
                 "A mean curve that follows λ while every prompt puts its mass on one answer is a mixture over "
                 "prompts, not superposition inside a prompt."))
    position = [b for b in (s.get("position") or {}).get("by_fixed_last", []) if b["fixed_last"] > 0]
    if position:
        lams = [c["lambda"] for c in position[0]["curve"]]
        blocks.append(Block(
            heading="Recency or aggregation: the last m examples held at one task",
            text="P(task 1) against λ over the other examples. A model that reads the task off the last "
                 "example gives flat lines (slope 0); one that aggregates the examples follows λ.",
            table={"header": ["last m fixed"] + [f"λ={x:g}" for x in lams] + ["slope"],
                   "rows": [[str(b["fixed_last"])] + [_f(c["p1"]) for c in b["curve"]] + [_f(b["slope"], 2)]
                            for b in position]}))
    for warning in s.get("warnings", []):
        blocks.append(Block(text=f"Warning: {warning}", verdict=True))
    extra = {k: v for k, v in s.items() if isinstance(v, (int, float)) and k not in {
        "n_prompts", "n_examples", "spearman_p1_vs_lambda", "mean_other", "split_within_prompt",
        "prompts_splitting_10pct", "follows_last_example", "monotone_p1", "trained_length", "longest_prompt"}}
    if extra:
        blocks.append(Block(table={"header": ["measure", "value"],
                                   "rows": [[k, _f(v) if isinstance(v, float) else str(v)] for k, v in extra.items()]}))
    return blocks


def _probe_blocks(s: dict) -> list[Block]:
    rows = []
    for model, mixtures in s["models"].items():
        for mixture, m in mixtures.items():
            tasks = m["tasks"]
            above = sum(v["mean"] >= 0.05 for v in tasks.values())
            rows.append([f"{model} · {mixture}", f"{above} of {len(tasks)}",
                         ", ".join(f"{t} {fmt_key(v, 'mean')}" for t, v in tasks.items()), fmt_key(m, "other_mean")])
    return [Block(heading="Beside the study (Figure 2)",
                  text="The study's Figure 2: a pretrained model given examples of K tasks puts probability on "
                       "every task's answer at once. Ours, per mixture: how many tasks' answers get a mean "
                       "probability of at least 0.05, the means, and the mass left for other outputs, each with "
                       "its bootstrap interval over prompts.",
                  table={"header": ["model · mixture", "tasks with mean P ≥ 0.05", "mean P per task [CI]", "other [CI]"],
                         "rows": rows, "text": True})] + _control_blocks(s)


def _control_blocks(s: dict) -> list[Block]:
    """The in-context effect of every task (controls), or a line saying no controls ran."""
    rows = [[f"{model} · {mixture}", t, fmt_key(m["tasks"][t], "mean"), fmt_key(c, "mean_without"),
             fmt_key(c, "effect"), fmt_key(c, "ratio_to_single", 2), verdict(c)]
            for model, mixtures in s["models"].items() for mixture, m in mixtures.items()
            for t, c in (m.get("controls") or {}).items()]
    if not rows:
        return [Block(heading="Controls", text="No controls run (controls: true in the config), so no task is "
                                               "called superposed.", verdict=True)]
    return [Block(heading="Controls: the in-context effect",
                  text="In-context effect = P(answer | mixed) − P(answer | the task's examples given to the other "
                       "tasks), with a paired bootstrap interval over prompts; a task is superposed when that "
                       "interval lies above 0. mixed / single: the mixed P over the P with only the task's examples.",
                  table={"header": ["model · mixture", "task", "mixed P [CI]", "without its examples [CI]",
                                    "in-context effect [CI]", "mixed / single [CI]", "verdict"],
                         "rows": rows, "text": True})]


def _example_prompts(folder: Path) -> list[Block]:
    """The first prompt of every mixture: its last lines and each task's answer to the query."""
    firsts: dict[str, dict] = {}
    path = folder / "prompts.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else []:
        p = json.loads(line)
        firsts.setdefault(p["mixture"], p)
    rows = [[mixture, "\n".join(p["text"].splitlines()[-3:]), ", ".join(f"{t} → {a}" for t, a in zip(p["tasks"], p["answers"]))]
            for mixture, p in firsts.items()]
    return [Block(heading="An example prompt per mixture (its last lines)",
                  table={"header": ["mixture", "prompt ends with", "answer of each task"], "rows": rows,
                         "text": True})] if rows else []


def _construct_blocks(s: dict) -> list[Block]:
    return [Block(heading="Theorem 1, built by hand",
                  text=f"{s['layers']} layers, d_model {s['d_model']}, {s['prompts']} prompts: largest "
                       f"|P(answer) − share| = {s['max_abs_error']:.2e} → {'OK' if s['passed'] else 'FAILED'}.",
                  verdict=True)]


def _read_log(path: Path) -> list[dict]:
    """A training run's log (records.jsonl, or log.jsonl): every whole line (a last line cut by a kill is left out)."""
    rows = []
    for i, row in enumerate(read_jsonl(path)):
        try:
            rows.append({"step": int(row["step"]), "loss": float(row["loss"]), "seconds": float(row["seconds"])})
        except (ValueError, KeyError, TypeError):
            raise SuperposeError(f"{path}, line {i + 1}: damaged (expected a JSON object with step, loss and "
                                 "seconds)") from None
    return rows


def _train_view(folder: Path, status: dict) -> RunView:
    config = _read_json(folder / "config.json")
    log = _read_log(training_log(folder))
    done = (folder / "model").is_dir()
    view = RunView(str(folder), "train", str(config.get("name", folder.name)),
                   status.get("status") or ("complete" if done else "running"),
                   reason=str(status.get("reason", "")), config_text=yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    if log:
        tail = [r["loss"] for r in log[-50:]]
        view.blocks.append(Block(text=f"{len(log)} steps in {log[-1]['seconds']:.0f} s; mean loss of the last "
                                      f"{len(tail)} steps {sum(tail) / len(tail):.4f}."))
        view.figures.append({"name": "training loss", "mime": "image/png", "data": _loss_png(log)})
    view.blocks += _observatory_blocks(folder, view, config)
    info = _read_json(folder / "model" / "training.json") if done else {}
    view.provenance = [(k, str(v)) for k, v in info.items() if not isinstance(v, (dict, list))]
    return view


def _observatory_blocks(folder: Path, view: RunView, config: dict) -> list[Block]:
    """The training observatory (issue #32): its figure against the step and the last checkpoint's verdict."""
    from superpose.scratch.observatory import observatory_summary, plot_observatory, read_observatory, run_title

    rows = read_observatory(folder)
    if not rows:
        return []
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        title, bounds = run_title(config, folder.name)
        png = plot_observatory(rows, Path(tmp) / "observatory.png", title=title, boundaries=bounds)
        view.figures.append({"name": "training observatory", "mime": "image/png",
                             "data": base64.b64encode(png.read_bytes()).decode()})
    return [Block(heading="Training observatory", text=observatory_summary(rows))]


def _loss_png(log: list[dict]) -> str:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot([r["step"] for r in log], [r["loss"] for r in log], lw=0.8)
    ax.set(xlabel="step", ylabel="loss (answers only)", yscale="log")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


# The blocks each kind adds before its summary.md (scale, vectors and mechanism say everything in summary.md).
_KIND_BLOCKS = {
    "sweep": lambda summary, folder: _sweep_blocks(summary),
    "probe": lambda summary, folder: _probe_blocks(summary) + _example_prompts(folder),
    "construct": lambda summary, folder: _construct_blocks(summary),
}


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
    summary_md = (folder / "summary.md").read_text(encoding="utf-8") if (folder / "summary.md").is_file() else None
    if summary and kind in _KIND_BLOCKS:
        try:
            if kind == "probe":  # a folder from before intervals gets them from its records
                from superpose.experiments.probe import summary_with_intervals

                summary, fresh_md = summary_with_intervals(folder, summary)
                summary_md = fresh_md or summary_md
            view.blocks += _KIND_BLOCKS[kind](summary, folder)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise SuperposeError(f"{folder / 'status.json'} says kind '{kind}', but summary.json is not a {kind} "
                                 f"summary ({type(e).__name__}: {e}); correct the kind or remove the folder from "
                                 "the report") from None
    if summary_md is not None:
        view.blocks.append(Block(markdown=_markdown(summary_md)))
    for png in sorted((folder / "figures").glob("*.png")) if (folder / "figures").is_dir() else []:
        view.figures.append({"name": png.stem, "mime": "image/png", "data": base64.b64encode(png.read_bytes()).decode()})
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

