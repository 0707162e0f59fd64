"""The λ sweep: how a model splits probability between two tasks as their mix in the prompt varies.

For each λ in the config (default 0, 0.1, ..., 1), prompts hold examples of task 1 with share λ and
task 2 with share 1-λ -- exact counts (largest remainder) or i.i.d. draws -- and the model scores
both tasks' answers to the query. A model that "learns tasks in superposition" puts about λ on task
1's answer and 1-λ on task 2's; the study found this in small transformers trained on one task per
sequence, and in pretrained LLMs. Works on any model and backend (:mod:`superpose.backends`).

    superpose sweep configs/sweep/plus_scratch.yaml
    superpose sweep configs/sweep/plus_scratch.yaml --resume runs/sweep-plus-...   # continue

Prompt ``i`` at every λ is built from the same seed ``(seed, i)``: the example inputs and the query
are then the same across λ and only which task answers each example changes (common random
numbers), so the curve shows the effect of λ rather than prompt-to-prompt noise.

A mean over prompts can follow λ without any single prompt being in superposition: a model that
reads the task off the last example alone puts ~1 on one answer per prompt, and the last example
is task 1's with probability λ. So the summary also says, over the mixed prompts (0 < λ < 1),
how evenly each prompt splits its own probability (``split_within_prompt``: 2·min(P1, P2)/(P1+P2),
1 for an even split, 0 for all on one answer) and how often the favoured answer is the task of
the last example (``follows_last_example``; ~1 means recency, not superposition).

Position control separates the two. With ``fixed_last: [0, 1, 2, 4]`` the sweep also builds, for
each m > 0, prompts whose LAST m examples all belong to ``fixed_task`` (task 2 by default) while λ
sets the share of task 1 among the examples before them. A model that reads the task off the last
examples gives a flat line (P(task 1) ≈ 0 whatever λ); a model that aggregates over the examples
follows λ. :func:`position_control` (a pure function of the records) reports P(task 1) against λ
for each m, and against how far back the nearest task-1 example is (1 = the last example).

A model trained by ``superpose train`` knows the longest sequence it saw (``training.json``); the
sweep flags every prompt longer than that (``beyond_training``), warns once on the console, and the summary says what share of prompts extrapolate.

The run folder holds config.yaml, records.jsonl (one record per prompt), summary.json and
figures/sweep.png (stacked areas of P(task 1), P(task 2) and the rest against λ, with the diagonal;
beside it, every prompt's P(task 1)) and figures/position.png (the position-controlled curves).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from superpose.backends import Backend, ScoreRequest, backend_class, check_model, load_backend
from superpose.backends.base import Encoded, beyond_training_warning
from superpose.backends.devices import resolve_device
from superpose.backends.entry import ModelEntry
from superpose.config import load_config
from superpose.display.console import warn
from superpose.progress import Progress, track
from superpose.errors import SuperposeError
from superpose.experiments.base import ExperimentConfig, open_run
from superpose.prompts import MAX_PROMPTS, MixtureSpec, build_prompt
from superpose.runs import DEFAULT_ROOT, RunFolder
from superpose.display.figures import save_figure
from superpose.display.text import md
from superpose.stats import DEFAULT_LEVEL, fmt_key, generator, interval, with_interval

DEFAULT_LAMBDAS = [round(i / 10, 1) for i in range(11)]

# The study's published P(task 1 answer) at λ = 0, 0.1, ..., 1 for models trained from scratch.
STUDY_CURVES = {
    "plus": [0, .114, .202, .299, .408, .492, .618, .690, .803, .899, 1],
    "ret": [0, .009, .036, .133, .299, .489, .685, .844, .935, .990, 1],
}


class SweepConfig(ExperimentConfig):
    """A λ sweep (YAML)."""

    name: str = "sweep"
    model: ModelEntry | str  # embedded name (`superpose models`), folder, GGUF file, hub id, "vllm:..."
    task1: str
    task2: str
    n_examples: int = Field(40, ge=1)
    n_prompts: int = Field(20, ge=1, le=MAX_PROMPTS)  # prompts per λ
    lambdas: list[float] = Field(default_factory=lambda: list(DEFAULT_LAMBDAS))
    counts: Literal["exact", "iid"] = "exact"
    reference: Literal["none", "plus", "ret"] = "none"  # a study curve to draw and compare with
    # Position control: for each m listed, a sweep whose last m examples all belong to fixed_task;
    # 0 is the plain sweep (always run: the baseline of the others). See the module doc.
    fixed_last: list[int] = Field(default_factory=lambda: [0])
    fixed_task: Literal[1, 2] = 2
    out_root: str = str(DEFAULT_ROOT)  # not read: run_sweep's ``root`` places the folder (older folders record it)
    ci_level: float = Field(DEFAULT_LEVEL, gt=0, lt=1)  # confidence level of the curve's band
    resume_may_change: ClassVar[frozenset[str]] = frozenset({"out_root"})

    @property
    def entry(self) -> ModelEntry:
        """The model as an entry (name, label, backend options)."""
        return self.model if isinstance(self.model, ModelEntry) else ModelEntry(name=self.model)

    @field_validator("lambdas")
    @classmethod
    def _unit_interval(cls, lams: list[float]) -> list[float]:
        if not lams:
            raise ValueError("needs at least one λ")
        if any(not 0.0 <= x <= 1.0 for x in lams):
            raise ValueError(f"every λ must lie in [0, 1], got {lams}")
        if len(set(lams)) != len(lams):
            raise ValueError(f"lists a λ twice: {lams}")
        return sorted(lams)

    @field_validator("fixed_last")
    @classmethod
    def _fixed_last(cls, ms: list[int]) -> list[int]:
        if 0 not in ms:
            raise ValueError(f"must include 0 (the plain sweep, the baseline of the position-controlled "
                             f"curves), got {ms}")
        if any(m < 0 for m in ms) or len(set(ms)) != len(ms):
            raise ValueError(f"must list distinct non-negative numbers of examples, got {ms}")
        return sorted(ms)

    @model_validator(mode="after")
    def _mixable(self) -> "SweepConfig":
        if self.task1 == self.task2:
            raise ValueError(f"task1 and task2 are both '{self.task1}'; a sweep needs two tasks")
        try:
            self.spec(0.5)  # unknown or unmixable tasks, too few inputs: fail now, not mid-run
        except SuperposeError as e:
            raise ValueError(f"task1/task2: {e}") from None
        except ValidationError as e:
            raise ValueError("task1/task2: " + "; ".join(
                err["msg"].removeprefix("Value error, ") for err in e.errors())) from None
        if self.reference != "none" and self.lambdas != DEFAULT_LAMBDAS:
            raise ValueError("reference curves are given at λ = 0, 0.1, ..., 1; use those lambdas")
        if max(self.fixed_last) >= self.n_examples:
            raise ValueError(f"fixed_last: {max(self.fixed_last)} fixed examples leave none of the "
                             f"n_examples={self.n_examples} to vary with λ")
        return self

    def spec(self, lam: float, fixed_last: int = 0) -> MixtureSpec:
        """The mixture at share ``lam`` of task 1 (among all but the ``fixed_last`` last examples)."""
        return MixtureSpec(tasks=[self.task1, self.task2], weights=[lam, 1.0 - lam],
                           n_examples=self.n_examples, counts=self.counts, fixed_last=fixed_last,
                           fixed_task=self.fixed_task - 1)


def load_sweep_config(path: str | Path, overrides: dict | None = None) -> SweepConfig:
    """A validated :class:`SweepConfig` from YAML; ``overrides`` (None values ignored) replace top-level fields."""
    return load_config(SweepConfig, path, overrides)


def run_sweep(config: SweepConfig | None, *, root: str | Path = DEFAULT_ROOT, resume: str | Path | None = None,
              backend: Backend | None = None, progress: Progress = True) -> tuple[RunFolder, dict]:
    """Score every (λ, prompt) pair not yet in the run folder, then write summary and figure.

    ``backend`` may pass an already loaded model (tests, notebooks); it must be the config's ``model``.
    """
    if resume is None:
        assert config is not None
        if backend is None:
            resolve_device(config.device)  # a missing GPU fails before a run folder is made
            check_model(config.entry.name, purpose="superpose sweep")  # so does an unknown model
            if backend_class(config.entry.name).remote:  # and a refused key or an unknown served model
                load_backend(config.entry.name, config.dtype, config.device, **config.entry.options).check_access()
    run, cfg = open_run("sweep", SweepConfig, config, root, resume)
    done = {(r.get("fixed_last", 0), r["lambda"], r["index"]) for r in run.read_records()}
    items = [(m, lam, i) for m in cfg.fixed_last for lam in cfg.lambdas for i in range(cfg.n_prompts)]
    finished = [item in done for item in items]

    if not all(finished):
        entry = cfg.entry
        backend = backend or load_backend(entry.name, cfg.dtype, cfg.device, **entry.options)
        run.update_config("model_info", {k: v for k, v in backend.provenance.items() if k != "versions"})
        specs = {(m, lam): cfg.spec(lam, m) for m in cfg.fixed_last for lam in cfg.lambdas}
        prompts = [build_prompt(specs[m, lam], cfg.seed, i) for m, lam, i in items]
        guard = backend.trained_length is not None  # a `superpose train` model
        requests = [backend.prepare(ScoreRequest(p.text, p.answers)) for p in prompts]  # encoded once
        note = beyond_training_warning(backend, requests)
        if note:
            warn(note)
        stream = backend.stream(requests, finished)
        stream = track(stream, f"sweep {cfg.task1}/{cfg.task2}", total=finished.count(False), progress=progress)
        for k, (s1, s2) in stream:
            (m, lam, i), prompt = items[k], prompts[k]
            record = {
                "lambda": lam, "index": i, "fixed_last": m, "p1": s1.prob, "p2": s2.prob,
                "other": max(0.0, 1.0 - s1.prob - s2.prob), "logp1": s1.logprob, "logp2": s2.logprob,
                "answers": prompt.answers, "counts": prompt.counts, "query": prompt.query_input,
                "last_example_task": prompt.example_tasks[-1] + 1,  # 1 or 2
                "example_tasks": "".join(str(t + 1) for t in prompt.example_tasks),  # e.g. "1221"
            }
            request = requests[k]
            if guard and isinstance(request, Encoded):  # n_read: the prompt and all but the last answer token
                record.update(n_read=request.n_read, beyond_training=request.beyond_training)
            run.append_record(record)
    records = run.read_records()
    summary = summarize_sweep(records, cfg, run.config_doc().get("model_info"))
    plot_sweep(summary, records, cfg, run.figure_path("sweep"))
    plot_position(summary, cfg, run.figure_path("position"))
    run.write_text("summary.md", sweep_markdown(summary))
    run.finish(summary)
    return run, summary


def summarize_sweep(records: list[dict], cfg: SweepConfig, model_info: dict | None = None) -> dict:
    """Mean P(task 1), P(task 2) and the rest per λ, with the checks the study's claim implies.

    The λ curve and the per-prompt split are over the plain sweep (no fixed last examples);
    ``position`` holds the position-controlled analysis of every record.
    """
    from scipy.stats import spearmanr

    everything, records = records, [r for r in records if r.get("fixed_last", 0) == 0]
    curve = []
    for lam in cfg.lambdas:
        rows = [r for r in records if r["lambda"] == lam]
        if not rows:
            continue
        p1, p2, other = ([r[k] for r in rows] for k in ("p1", "p2", "other"))
        sem = statistics.stdev(p1) / math.sqrt(len(p1)) if len(p1) > 1 else 0.0
        rng = generator(cfg.seed, "sweep", lam)  # one stream per λ: a point's band does not depend on the others
        point = {"lambda": lam, "n": len(rows)}
        for key, values in (("p1", p1), ("p2", p2), ("other", other)):
            point[key] = statistics.fmean(values)
            with_interval(point, key, interval(values, rng, cfg.ci_level))
        curve.append({**point, "p1_sem": sem})
    lams = [c["lambda"] for c in curve]
    p1s = [c["p1"] for c in curve]
    summary: dict = {
        "model": cfg.entry.display, "architecture": (model_info or {}).get("architecture"),
        "task1": cfg.task1, "task2": cfg.task2, "counts": cfg.counts,
        "n_examples": cfg.n_examples, "n_prompts": cfg.n_prompts, "curve": curve,
        "spearman_p1_vs_lambda": float(spearmanr(lams, p1s).statistic) if len(curve) > 2 else None,
        "p1_range": max(p1s) - min(p1s) if p1s else None,  # below FLAT_CURVE Spearman ranks noise
        "monotone_p1": all(b >= a for a, b in zip(p1s, p1s[1:])),
        "mean_other": statistics.fmean(c["other"] for c in curve) if curve else None,
        "mean_abs_p1_minus_lambda": statistics.fmean(abs(c["p1"] - c["lambda"]) for c in curve) if curve else None,
    }
    summary.update(per_prompt_split(records))
    summary["position"] = position_control(everything)
    summary["position"]["fixed_task"] = cfg.fixed_task
    summary.update(training_length_guard(everything, cfg, model_info))
    half = [c for c in curve if abs(c["lambda"] - 0.5) < 1e-9]
    if half:
        summary["at_half"] = {"p1": half[0]["p1"], "p2": half[0]["p2"], "other": half[0]["other"]}
    if cfg.reference != "none" and len(curve) == len(DEFAULT_LAMBDAS):
        ref = STUDY_CURVES[cfg.reference]
        summary["reference"] = {"name": cfg.reference, "p1": ref,
                                "mean_abs_diff": statistics.fmean(abs(a - b) for a, b in zip(p1s, ref)),
                                "max_abs_diff": max(abs(a - b) for a, b in zip(p1s, ref))}
    return summary


FLAT_CURVE = 0.05  # a mean P1 curve that spans less than this over λ is flat


def spearman_caveat(summary: dict) -> str:
    """A warning to print after Spearman(P1, λ) when the curve is flat; empty otherwise.

    A model that ignores the mix (e.g. one stuck on a plateau) gives the same P1 at every λ up to
    sampling noise, and ranking that noise can give any Spearman, 0.9 included.
    """
    spread = summary.get("p1_range")
    if spread is None or spread >= FLAT_CURVE:
        return ""
    shown = f"{spread:.3f}" if spread >= 0.001 else "< 0.001"
    return f" (P1 spans only {shown} over λ: the curve is flat, so Spearman ranks noise)"


def _f(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


# summary.json's numbers that sweep_markdown shows in its sentences; any other number goes in its last table
_SAID = {"n_prompts", "n_examples", "spearman_p1_vs_lambda", "mean_other", "split_within_prompt",
         "prompts_splitting_10pct", "follows_last_example", "monotone_p1", "trained_length", "longest_prompt"}


def sweep_markdown(s: dict) -> str:
    """summary.md of a sweep (what the command prints and the report shows), from its summary.json."""
    ref = s.get("reference")
    out = [f"# λ sweep: {md(s['task1'])} vs {md(s['task2'])} on {md(s['model'])}\n"]
    if _changed(s):  # an architecture change is named wherever the model's numbers are shown
        out.append(f"**Model: {md(_changed(s).strip())}.**\n")
    out += [
        f"{s['n_prompts']} prompts per λ, {s['n_examples']} examples each ({s['counts']} counts). "
        f"Spearman(P1, λ) = {_f(s.get('spearman_p1_vs_lambda'), 2)}{spearman_caveat(s)}; mean leftover mass "
        f"{_f(s.get('mean_other'))}" + (f"; mean |P1 − study| = {_f(ref['mean_abs_diff'])} (largest "
                                        f"{_f(ref['max_abs_diff'])})" if ref else "") + ".\n",
        "| λ |" + (f" study ({md(ref['name'])}_k) |" if ref else "")
        + f" P({md(s['task1'])}) [CI] | P({md(s['task2'])}) [CI] | other [CI] |",
        "|---" * (4 + bool(ref)) + "|"]
    for i, c in enumerate(s["curve"]):
        out.append(f"| {_f(c['lambda'], 1)} |" + (f" {_f(ref['p1'][i])} |" if ref else "")
                   + f" {fmt_key(c, 'p1')} | {fmt_key(c, 'p2')} | {fmt_key(c, 'other')} |")
    out.append("")
    if "split_within_prompt" in s:
        rule = (f" The favoured answer is the last example's task in {s['follows_last_example']:.0%} of them."
                if "follows_last_example" in s else "")
        out += ["## Inside each mixed prompt (0 < λ < 1)\n",
                f"Mean within-prompt split {_f(s['split_within_prompt'])} (1 = an even split, 0 = all mass on one "
                f"answer); both answers ≥ 0.1 in {s['prompts_splitting_10pct']:.0%} of mixed prompts.{rule} A mean "
                "curve that follows λ while every prompt puts its mass on one answer is a mixture over prompts, "
                "not superposition inside a prompt.\n"]
    position = [b for b in (s.get("position") or {}).get("by_fixed_last", []) if b["fixed_last"] > 0]
    if position:
        fixed = s["task1"] if s["position"].get("fixed_task") == 1 else s["task2"]
        lams = [c["lambda"] for c in position[0]["curve"]]
        out += [f"## Recency or aggregation: the last m examples held at {md(fixed)}\n",
                "P(task 1) against λ over the other examples. A model that reads the task off the last example "
                "gives flat lines (slope 0); one that aggregates the examples follows λ.\n",
                "| last m fixed |" + "".join(f" λ={x:g} |" for x in lams) + " slope |", "|---" * (len(lams) + 2) + "|"]
        out += [f"| {b['fixed_last']} |" + "".join(f" {_f(c['p1'])} |" for c in b["curve"]) + f" {_f(b['slope'], 2)} |"
                for b in position]
        out.append("")
    out += [f"**Warning:** {md(w)}\n" for w in s.get("warnings", [])]
    extra = {k: v for k, v in s.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in _SAID}
    if extra:
        out += ["| measure | value |", "|---|---|"]
        out += [f"| {k} | {_f(v) if isinstance(v, float) else v} |" for k, v in extra.items()]
        out.append("")
    return "\n".join(out)


def per_prompt_split(records: list[dict]) -> dict:
    """Superposition inside each mixed prompt (0 < λ < 1), not just on average over prompts."""
    mixed = [r for r in records if 0 < r["lambda"] < 1 and r["p1"] + r["p2"] > 0]
    if not mixed:
        return {}
    split = [2 * min(r["p1"], r["p2"]) / (r["p1"] + r["p2"]) for r in mixed]
    out = {"split_within_prompt": statistics.fmean(split),
           "prompts_splitting_10pct": statistics.fmean(min(r["p1"], r["p2"]) >= 0.1 for r in mixed)}
    tagged = [r for r in mixed if "last_example_task" in r]  # records of older runs lack it
    if tagged:
        out["follows_last_example"] = statistics.fmean(
            (1 if r["p1"] >= r["p2"] else 2) == r["last_example_task"] for r in tagged)
    return out


def training_length_guard(records: list[dict], cfg: SweepConfig, model_info: dict | None) -> dict:
    """The share of prompts longer than the model's training sequences (when it knows them)."""
    flagged = [r["beyond_training"] for r in records if "beyond_training" in r]
    limit = (model_info or {}).get("trained_length")
    if not flagged or limit is None:
        return {}
    longest = max(r.get("n_read", 0) for r in records)
    out = {"trained_length": limit, "longest_prompt": longest,
           "beyond_trained_length": statistics.fmean(flagged)}
    if any(flagged):
        from superpose.backends.base import beyond_training_message

        out["warnings"] = [beyond_training_message(cfg.entry.display, longest, limit)
                           + f"; {out['beyond_trained_length']:.0%} of the prompts are longer"]
    return out


def _mean_p1(rows: list[dict]) -> float:
    return statistics.fmean(r["p1"] for r in rows)


def position_control(records: list[dict]) -> dict:
    """P(task 1) against λ for each number m of last examples held at one task, and against how far
    back the nearest task-1 example is, from per-prompt records alone (``lambda``, ``p1``,
    ``fixed_last``, ``example_tasks``: the task, 1 or 2, of every example in order).

    ``slope`` is the least-squares slope of every prompt's P(task 1) on λ: about 0 for a model that
    answers with the last examples' task, about (n - m)/n for one that answers in proportion to the
    counts. ``by_nearest_task1`` is over prompts holding both tasks: distance 1 is the last example.
    """
    by_m = []
    for m in sorted({r.get("fixed_last", 0) for r in records}):
        rows = [r for r in records if r.get("fixed_last", 0) == m]
        lams = sorted({r["lambda"] for r in rows})
        curve = []
        for lam in lams:
            sel = [r for r in rows if r["lambda"] == lam]
            curve.append({"lambda": lam, "n": len(sel), "p1": _mean_p1(sel),
                          "p2": statistics.fmean(r.get("p2", 1 - r["p1"]) for r in sel)})
        xs, ys = [r["lambda"] for r in rows], [r["p1"] for r in rows]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        var = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var > 0 else None
        by_m.append({"fixed_last": m, "curve": curve, "slope": slope,
                     "rise": curve[-1]["p1"] - curve[0]["p1"]})
    by_distance: dict[int, list[dict]] = {}
    for r in records:
        tasks = r.get("example_tasks")
        if tasks and "1" in tasks and "2" in tasks:
            by_distance.setdefault(len(tasks) - tasks.rfind("1"), []).append(r)
    nearest = [{"distance": d, "n": len(rows), "p1": _mean_p1(rows)} for d, rows in sorted(by_distance.items())]
    return {"by_fixed_last": by_m, "by_nearest_task1": nearest}


def _changed(summary: dict) -> str:
    """A title line naming an architecture change of the model (superpose.models.columns), if it has one."""
    arch = summary.get("architecture") or ""
    return f"\n{arch.split(' + ', 1)[1]}" if " + " in arch else ""


def plot_position(summary: dict, cfg: SweepConfig, path: Path) -> Path:
    """Left: P(task 1) against λ for each m (last m examples fixed to one task), with the two
    reference rules. Right: P(task 1) against the distance of the nearest task-1 example."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pos = summary["position"]
    fixed = cfg.task1 if cfg.fixed_task == 1 else cfg.task2
    fig, (ax, ax_d) = plt.subplots(1, 2, figsize=(9.6, 4.2), dpi=150)
    colors = ["black", "#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B2"]
    for j, block in enumerate(pos["by_fixed_last"]):
        m, curve = block["fixed_last"], block["curve"]
        label = "plain sweep" if m == 0 else f"last {m} = {fixed}"
        ax.plot([c["lambda"] for c in curve], [c["p1"] for c in curve], marker="o", ms=3,
                color=colors[j % len(colors)], label=f"{label} (slope {block['slope']:.2f})"
                if block["slope"] is not None else label)
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="counts rule, m = 0")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"λ (share of {cfg.task1} among the examples not fixed)")
    ax.set_ylabel(f"mean P({cfg.task1})")
    ax.set_title(f"recency gives flat lines, aggregation follows λ\n{cfg.entry.display}, "
                 f"{cfg.n_examples} examples, {cfg.n_prompts} prompts per point{_changed(summary)}", fontsize=8)
    ax.legend(fontsize=7, frameon=False)
    near = [b for b in pos["by_nearest_task1"] if b["n"] >= 3]
    ax_d.plot([b["distance"] for b in near], [b["p1"] for b in near], marker="o", ms=3, color="#4C72B0")
    ax_d.set_xlabel(f"examples back to the nearest {cfg.task1} example (1 = the last)")
    ax_d.set_ylabel(f"mean P({cfg.task1}), mixed prompts")
    ax_d.set_ylim(-0.02, 1.02)
    ax_d.set_title("prompts holding both tasks, all m and λ pooled (points with n ≥ 3)", fontsize=8)
    return save_figure(fig, path)


def plot_sweep(summary: dict, records: list[dict], cfg: SweepConfig, path: Path) -> Path:
    """Left: stacked areas of P(task 1), P(task 2) and the rest against λ, with the diagonal.
    Right: P(task 1) of every prompt, which tells a split inside each prompt (points near the
    mean) from a choice of one answer per prompt (points at 0 and 1)."""
    import random

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = summary["curve"]
    lams = [c["lambda"] for c in curve]
    fig, (ax, ax_each) = plt.subplots(1, 2, figsize=(9.6, 4.4), dpi=150, gridspec_kw={"width_ratios": [1.2, 1]})
    jitter = random.Random(0)  # fixed: the figure is a function of the records
    ax_each.scatter([r["lambda"] + jitter.uniform(-0.025, 0.025) for r in records], [r["p1"] for r in records],
                    s=6, alpha=min(0.6, 5 / cfg.n_prompts ** 0.5), color="#4C72B0", linewidths=0)
    ax_each.plot(lams, [c["p1"] for c in curve], color="black", lw=1, marker="_", ms=10, label="mean")
    if all(c.get("p1_lo") is not None for c in curve):  # folders from before intervals have no band
        level = f"{cfg.ci_level:.0%}"
        ax_each.fill_between(lams, [c["p1_lo"] for c in curve], [c["p1_hi"] for c in curve], color="black",
                             alpha=0.15, linewidth=0, label=f"mean's {level} CI")
        ax.fill_between(lams, [c["p1_lo"] for c in curve], [c["p1_hi"] for c in curve], facecolor="none",
                        edgecolor="black", hatch="///", linewidth=0, label=f"P({cfg.task1}) {level} CI")
    ax_each.set_xlim(-0.05, 1.05)
    ax_each.set_ylim(-0.03, 1.03)
    ax_each.set_xlabel("λ")
    ax_each.set_ylabel(f"P({cfg.task1}) in each prompt")
    note = ""
    if "split_within_prompt" in summary:
        note = f"within-prompt split {summary['split_within_prompt']:.2f} (1 = even)"
        if "follows_last_example" in summary:
            note += f"\nfavours the last example's task: {summary['follows_last_example']:.0%}"
    ax_each.set_title(note, fontsize=7)
    ax_each.legend(loc="upper left", fontsize=7, frameon=False)
    ax.stackplot(lams, [c["p1"] for c in curve], [c["p2"] for c in curve],
                 [c["other"] for c in curve], colors=["#4C72B0", "#DD8452", "#BBBBBB"], alpha=0.85,
                 labels=[f"P({cfg.task1})", f"P({cfg.task2})", "other"])
    ax.plot([0, 1], [0, 1], color="black", ls="--", lw=1, label="y = λ")
    if "reference" in summary:
        ax.plot(DEFAULT_LAMBDAS, summary["reference"]["p1"], color="black", marker="o", ms=3, lw=1,
                label=f"study ({cfg.reference}_k, from scratch)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"λ (share of {cfg.task1} examples, {cfg.counts} counts)")
    ax.set_ylabel("probability of the answer")
    name = Path(cfg.entry.display)
    shown = f"{name.parent.name}/{name.name}" if name.name == "model" else name.name
    ax.set_title(f"{shown}: {cfg.task1} vs {cfg.task2}, {cfg.n_examples} examples, "
                 f"{cfg.n_prompts} prompts per λ{_changed(summary)}", fontsize=8)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=7, frameon=False)
    return save_figure(fig, path)
