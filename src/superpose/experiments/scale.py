"""Scaling (the study's Fig. 6 and Appendix E): tasks solved at once and calibration against model size.

    superpose scale configs/scale/embedded.yaml
    superpose scale configs/scale/scratch.yaml --figures docs/figures
    superpose scale --resume runs/scale-scratch-...        # continue an interrupted run

For every model of the config -- embedded names, local folders, hub ids, and optionally a *scratch
family* the config trains itself (one recipe at several widths, so the models differ only in
size) -- every mixture's prompts (the same for every model) go through :mod:`.topk`: enumerate the
most probable complete outputs, rank each task's answer, count the tasks solved in the top K, and
measure KL(in-context task distribution ‖ P). Each model's parameter count comes from the loaded
weights. The run folder holds one record per (model, mixture, prompt), summary.json / summary.md
(tables: the scaling table, Appendix E's Table 2 per model, every mixture), figures/scale.png (KL
and tasks solved against parameters, log scale) and figures/reliability.png (P(answer) against the
task's share, per model).

Optional models (the Qwen2.5-Coder pair, or any entry marked ``optional: true``) that are not
installed or cannot be loaded are skipped with a note, and the run goes on with the others.
"""

from __future__ import annotations

import gc
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from superpose.backends import Backend, check_model, load_backend
from superpose.backends.devices import resolve_device
from superpose.backends.entry import ModelEntry, Models
from superpose.config import check_unique, load_config, validate
from superpose.enumerate import EnumerateSettings, OutputEnumerator
from superpose.errors import ModelNotAvailable, SuperposeError
from superpose.experiments.base import ExperimentConfig, open_run
from superpose.experiments.probe import Mixture, check_prompts_fit
from superpose.experiments.topk import analyse_prompt, plot_reliability, summarize_model
from superpose.models import EMBEDDED_MODELS
from superpose.prompts import MAX_PROMPTS, Prompt, build_prompts
from superpose.display.console import console
from superpose.progress import Progress, track
from superpose.runs import DEFAULT_ROOT, RunFolder
from superpose.display.figures import save_figure
from superpose.display.text import md
from superpose.stats import DEFAULT_LEVEL, fmt_key, generator


class ScratchFamily(BaseModel):
    """One training recipe at several sizes, trained by the scale run itself (CPU-sized by default)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "scratch"
    train: dict[str, Any]  # a scratch TrainConfig (configs/scratch/*.yaml) without out_dir
    sizes: list[dict[str, Any]] = Field(min_length=1)  # model fields per size (d_model, n_heads, d_mlp, ...)
    out_dir: str = "runs/scale/scratch"  # each size trains in out_dir/<label>; finished models are reused

    @field_validator("sizes")
    @classmethod
    def _labels_unique(cls, sizes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        labels = [size_label(s) for s in sizes]
        if len(set(labels)) != len(labels):
            raise ValueError(f"two sizes have the same label: {labels}; give each a distinct 'label'")
        return sizes

    def train_configs(self, source: str) -> list[tuple[str, Any]]:
        """(label, validated TrainConfig) per size; errors name the size and the field."""
        from superpose.scratch.train import TrainConfig

        out = []
        for i, size in enumerate(self.sizes):
            label = size_label(size)
            fields = {k: v for k, v in size.items() if k != "label"}
            data = {**self.train, "name": f"{self.name}-{label}",
                    "model": {**(self.train.get("model") or {}), **fields},
                    "out_dir": str(Path(self.out_dir) / label)}
            out.append((label, validate(TrainConfig, data, f"{source}: scratch.sizes[{i}] ({label})")))
        return out


def size_label(size: dict[str, Any]) -> str:
    """A size's label: its 'label', else w<d_model>."""
    return str(size.get("label") or f"w{size.get('d_model', '?')}")


class ScaleConfig(ExperimentConfig):
    """A scaling run (YAML): models, mixtures, and the output search's limits."""

    name: str = "scale"
    models: Models = Field(default_factory=list)
    scratch: ScratchFamily | None = None
    threads: int | None = Field(None, ge=1)  # torch CPU threads for scoring; None: torch's default
    resume_may_change: ClassVar[frozenset[str]] = frozenset({"threads"})  # speed only
    n_prompts: int = Field(20, ge=1, le=MAX_PROMPTS)  # per mixture
    mixtures: list[Mixture] = Field(min_length=1)
    single_task_baselines: bool = True  # add a K = 1 mixture for every task of a mixed one
    enumerate: EnumerateSettings = Field(default_factory=lambda: EnumerateSettings(
        min_prob=1e-3, max_expansions=64, max_tokens=12, max_outputs=10))
    figure_name: str = "scale"  # figures copied as <--figures DIR>/scale_<figure_name>*.png
    ci_level: float = Field(DEFAULT_LEVEL, gt=0, lt=1)  # confidence level of the curves' bands

    @model_validator(mode="after")
    def _check(self) -> "ScaleConfig":
        if not self.models and self.scratch is None:
            raise ValueError("needs models, a scratch family, or both")
        check_unique([m.name for m in self.mixtures], "mixture names")
        k_max = max(len(m.tasks) for m in self.mixtures)
        if self.enumerate.max_outputs < k_max + 1:
            raise ValueError(f"enumerate.max_outputs={self.enumerate.max_outputs} must be at least "
                             f"K + 1 = {k_max + 1} (the largest mixture has K = {k_max} tasks)")
        return self

    def all_mixtures(self) -> list[Mixture]:
        """The config's mixtures plus one single-task mixture per task (when asked for)."""
        mixtures = list(self.mixtures)
        if self.single_task_baselines:
            have = {tuple(m.tasks) for m in mixtures}
            for m in self.mixtures:
                for t in m.tasks:
                    if (t,) not in have:
                        have.add((t,))
                        mixtures.append(Mixture(name=f"{t} alone", tasks=[t], n_examples=m.n_examples, counts=m.counts,
                                                example_separator=m.example_separator, template=m.template))
        return mixtures


def load_scale_config(path: str | Path, overrides: dict | None = None) -> ScaleConfig:
    """Read and validate a scale config (the scratch family's training recipes too)."""
    cfg = load_config(ScaleConfig, path, overrides)
    if cfg.scratch is not None:
        cfg.scratch.train_configs(str(path))
    return cfg


# --- the scratch family ---------------------------------------------------------------------------

def train_scratch_family(family: ScratchFamily, source: str, progress: Progress = True) -> list[ModelEntry]:
    """Train (or reuse, or resume) every size of the family; returns one entry per trained model."""
    import json

    from superpose.scratch.train import train

    entries = []
    for label, tcfg in family.train_configs(source):
        out = Path(tcfg.out_dir)
        model_dir = out / "model"
        info = model_dir / "training.json"
        wanted = tcfg.model_dump(mode="json")
        if info.exists() and json.loads(info.read_text())["config"] == wanted:
            console.print(f"scratch {label}: reusing {model_dir}")
        else:
            if model_dir.exists():
                raise SuperposeError(f"{model_dir} holds a model trained with another recipe; "
                                     f"delete {out} or set scratch.out_dir elsewhere")
            resume = (out / "checkpoint" / "state.pt").exists()
            console.print(f"scratch {label}: {'resuming' if resume else 'training'} "
                          f"{tcfg.steps} steps in {out}")
            out.mkdir(parents=True, exist_ok=True)  # the family's own folder, reused by later scale runs
            folder = RunFolder(out, kind="train")
            folder.lock()  # a second scale run training the same size is refused
            result = train(tcfg, folder, progress=progress)
            console.print(f"scratch {label}: {result.seconds:.0f} s, last loss {result.losses[-1]:.4f}")
        entries.append(ModelEntry(name=str(model_dir), label=f"{family.name} {label}"))
    return entries


# --- running ------------------------------------------------------------------------------------

def _unavailable(entry: ModelEntry) -> str | None:
    """Why an optional entry must be skipped before loading, or None."""
    known = EMBEDDED_MODELS.get(entry.name)
    if known is not None and (entry.optional or known.optional) and not known.installed():
        return f"not installed (install with: {known.install})"
    return None


def make_prompts(config: ScaleConfig) -> dict[str, list[Prompt]]:
    """Every mixture's prompts; identical for every model."""
    return {m.name: build_prompts(m, config.n_prompts, config.seed) for m in config.all_mixtures()}


def run_scale(config: ScaleConfig | None, *, root: str | Path = DEFAULT_ROOT, resume: str | Path | None = None,
              backend: Backend | None = None, progress: Progress = True) -> tuple[RunFolder, dict]:
    """Run (or resume) a scaling run; returns the run folder and its summary.

    ``backend``: a model already loaded (tests, notebooks), used for every listed model (not a scratch
    family's) and left open. ``progress`` (superpose.progress: True, False or a callable) reports
    training and scoring.
    """
    if resume is None:
        assert config is not None
        make_prompts(config)  # tasks that agree on every input fail before a run folder exists
        resolve_device(config.device)  # so does a missing GPU
        for entry in config.models:  # type: ignore[union-attr]
            if _unavailable(entry) is None:
                check_model(entry.name, needs=("enumerate",), purpose="superpose scale")
    name = None if config is None else f"scale-{config.name}"
    run, config = open_run("scale", ScaleConfig, config, root, resume, name=name)
    console.print(f"{'resuming' if resume is not None else 'run folder:'} [bold]{run.path}[/bold]")
    prompts = make_prompts(config)
    if resume is None:
        run.write_jsonl("prompts.jsonl", ({"mixture": m, **p.to_dict()} for m, ps in prompts.items() for p in ps))

    entries: list[ModelEntry] = list(config.models)  # type: ignore[arg-type]
    if config.scratch is not None:
        entries += train_scratch_family(config.scratch, f"{run.path}/config.yaml", progress)

    done = {(r["model"], r["mixture"], r["index"]) for r in run.read_records()}
    doc = run.config_doc()
    provenance = dict(doc.get("models") or {})
    skipped = dict(doc.get("skipped") or {})
    for entry in entries:
        label = entry.display
        todo = [(m, p) for m, ps in prompts.items() for p in ps if (label, m, p.index) not in done]
        if not todo:
            continue
        why = _unavailable(entry)
        lm = backend if backend is not None and entry in config.models else None
        if why is None and lm is None:
            console.print(f"loading model [bold]{label}[/bold] ({config.dtype})")
            try:
                options = {"threads": config.threads, **entry.options} if config.threads else entry.options
                lm = load_backend(entry.name, config.dtype, config.device, **options)
            except ModelNotAvailable as e:
                if not (entry.optional or getattr(EMBEDDED_MODELS.get(entry.name), "optional", False)):
                    raise
                why = str(e).splitlines()[0]
        if lm is None:
            console.print(f"[yellow]skipping {label}: {why}[/yellow]")
            skipped[label] = why
            run.update_config("skipped", skipped)
            continue
        provenance[label] = lm.provenance
        run.update_config("models", provenance)
        check_prompts_fit(lm, prompts, config.enumerate.terminator)
        enumerator = OutputEnumerator(lm, config.enumerate)
        for mixture, prompt in track(todo, f"{label}: enumerating outputs", progress=progress):
            record = analyse_prompt(enumerator, prompt)
            run.append_record({"model": label, "mixture": mixture, "index": prompt.index, **record})
        del lm, enumerator
        gc.collect()

    summary = summarize_scale(run, config, [e.display for e in entries])
    return run, summary


# --- summarising ----------------------------------------------------------------------------------

METRICS = [  # (key, column title) of the scaling table
    ("kl", "KL(shares‖P)"), ("kl_normalized", "KL normalised"), ("n_solved", "tasks solved"),
    ("fraction_solved", "fraction solved"), ("all_solved_rate", "all K solved"),
    ("single_top1", "single-task top-1"), ("topk_exact_rate", "ranking exact"),
]


def _trend(sizes: list[float], values: list[float | None]) -> dict | None:
    pairs = [(s, v) for s, v in zip(sizes, values) if v is not None]
    if len(pairs) < 2:
        return None
    from scipy.stats import spearmanr

    x, y = zip(*pairs)
    rho = float(spearmanr(x, y).statistic) if len(pairs) >= 3 else float(np.sign((y[-1] - y[0]) * (x[-1] - x[0])))
    return {"spearman": rho, "n_models": len(pairs)}


def copy_figures(run: RunFolder, folder: str | Path) -> None:
    """Copy the run's scale and reliability figures into ``folder`` as ``scale_<figure_name>[_reliability].png``."""
    name = run.config.get("figure_name", "scale")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for figure, suffix in (("scale", ""), ("reliability", "_reliability")):
        if run.figure_path(figure).is_file():  # no figure when no model could be scored
            shutil.copy(run.figure_path(figure), folder / f"scale_{name}{suffix}.png")


def summarize_scale(run: RunFolder, config: ScaleConfig, labels: list[str]) -> dict:
    """Summary (JSON + Markdown) and figures from the run folder's records; marks the run complete."""
    doc = run.config_doc()
    provenance, skipped = doc.get("models") or {}, doc.get("skipped") or {}
    order = {m.name: i for i, m in enumerate(config.all_mixtures())}
    by_model: dict[str, dict[str, list[dict]]] = {}
    for r in sorted(run.read_records(), key=lambda r: (order.get(r["mixture"], 1 << 30), r["index"])):
        by_model.setdefault(r["model"], {}).setdefault(r["mixture"], []).append(r)
    measured = [m for m in labels if m in by_model]
    expected = config.n_prompts * len(order)
    for m in measured:
        found = sum(len(v) for v in by_model[m].values())
        if found != expected:
            raise SuperposeError(f"{run.path}: model {m} has {found} of {expected} records; "
                                 f"resume with --resume {run.path}")
    models = {}
    for m in sorted(measured, key=lambda m: provenance[m]["n_parameters"]):
        models[m] = {"n_parameters": int(provenance[m]["n_parameters"]),
                     **summarize_model(by_model[m], generator(config.seed, "scale", m), config.ci_level)}
    sizes = [v["n_parameters"] for v in models.values()]
    summary = {
        "config": config.name, "models": models, "skipped": skipped,
        "trend": {key: _trend(sizes, [v[key] for v in models.values()]) for key, _ in METRICS[:-1]},
    }
    if models:
        plot_scale(models, run.figure_path("scale"), config.name)
        points = {m: [(s, float(np.exp(lp))) for rs in by_model[m].values() for r in rs if r["K"] > 1
                      for s, lp in zip(r["shares"], r["logprobs"])] for m in models}
        plot_reliability(points, run.figure_path("reliability"),
                         f"{config.name}: P(answer) against the task's share (mixed prompts)")
    run.write_text("summary.md", summary_markdown(summary))
    run.finish(summary)
    return summary


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "–" if x is None else format(x, spec)


def _params(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def summary_markdown(summary: dict) -> str:
    """The scaling table, the trends, Table 2 per model and every mixture, as Markdown."""
    out = [f"# Scaling {md(summary['config'])}\n"]
    out.append("Mixed prompts (K > 1): KL in nats, tasks solved = answers among the K most probable "
               "complete outputs. Single-task top-1: K = 1 prompts.\n")
    out.append("| model | parameters | " + " | ".join(t for _, t in METRICS) + " |")
    out.append("|---|---:|" + "---:|" * len(METRICS))
    for m, v in summary["models"].items():
        out.append(f"| {md(m)} | {_params(v['n_parameters'])} | " + " | ".join(
            fmt_key(v, k) if v.get(k) is not None else "–" for k, _ in METRICS) + " |")
    trend = ", ".join(f"{k} ρ={t['spearman']:+.2f}" for k, t in summary["trend"].items() if t)
    if trend:
        out.append(f"\nSpearman correlation with parameter count: {trend}.\n")
    for m, why in summary["skipped"].items():
        out.append(f"- skipped **{md(m)}**: {md(why)}")
    for m, v in summary["models"].items():
        out.append(f"\n## {md(m)}: top-1 alone vs top-K mixed (Appendix E, Table 2)\n")
        out.append("| task | top-1, task alone | top-K, mixed | K | mixed prompts |")
        out.append("|---|---:|---:|---|---:|")
        for row in v["table2"]:
            out.append(f"| {md(row['task'])} | {_fmt(row['single_top1'], '.2f')} | {_fmt(row['mixed_topk'], '.2f')} "
                       f"| {','.join(map(str, row['mixed_K']))} | {row['mixed_prompts']} |")
        out.append(f"\n### {md(m)}: every mixture\n")
        out.append("| mixture | K | shares | solved rate per task | mean P per task | tasks solved | "
                   "KL | KL norm. | other | covered | exact |")
        out.append("|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|")
        for name, s in v["mixtures"].items():
            j = lambda xs: " / ".join(f"{x:.2f}" for x in xs)  # noqa: E731
            out.append(f"| {md(name)} | {s['K']} | {j(s['share'])} | {j(s['solved_rate'])} | {j(s['mean_p'])} | "
                       f"{s['n_solved_mean']:.2f} | {s['kl']:.3f} | {s['kl_normalized']:.3f} | "
                       f"{s['other_mean']:.3f} | {s['covered_mass_mean']:.3f} | {s['topk_exact_rate']:.2f} |")
    return "\n".join(out) + "\n"


def _band(ax, x: np.ndarray, models: dict[str, dict], labels: list[str], key: str, color) -> None:
    """The bootstrap interval of ``key`` as a shaded band (folders from before intervals: none)."""
    lo = np.array([np.nan if models[m].get(f"{key}_lo") is None else models[m][f"{key}_lo"] for m in labels])
    hi = np.array([np.nan if models[m].get(f"{key}_hi") is None else models[m][f"{key}_hi"] for m in labels])
    if np.isfinite(lo).any():
        ax.fill_between(x, lo, hi, color=color, alpha=0.18, linewidth=0)


def plot_scale(models: dict[str, dict], path: Path, title: str = "") -> Path:
    """KL (raw, normalised) and tasks solved (mixed top-K, single top-1) against parameters, log x;
    shaded: bootstrap intervals over prompts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    labels = list(models)
    x = np.array([models[m]["n_parameters"] for m in labels], dtype=float)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, name, marker in [("kl", "KL(shares ‖ P)", "o"), ("kl_normalized", "KL after normalising", "s")]:
        y = np.array([np.nan if models[m][key] is None else models[m][key] for m in labels])
        line, = ax1.plot(x, y, marker=marker, label=name)
        _band(ax1, x, models, labels, key, line.get_color())
    ax1.set_ylabel("KL, nats (lower = better calibrated)")
    for key, name, marker in [("fraction_solved", "mixed: fraction of K tasks in top K", "o"),
                              ("all_solved_rate", "mixed: all K tasks in top K", "^"),
                              ("single_top1", "single task: top-1 accuracy", "s")]:
        y = np.array([np.nan if models[m][key] is None else models[m][key] for m in labels])
        line, = ax2.plot(x, y, marker=marker, label=name)
        _band(ax2, x, models, labels, key, line.get_color())
    ax2.set_ylim(-0.03, 1.03)
    ax2.set_ylabel("rate")
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        # Ticks at the models' own sizes: log-axis defaults collide or vanish on short ranges.
        ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(x))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FixedFormatter([_params(int(v)) for v in x]))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("parameters")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        for xi, m in zip(x, labels):
            ax.annotate(m, (xi, ax.get_ylim()[0]), xytext=(2, 3), textcoords="offset points", fontsize=6,
                        rotation=90, va="bottom")
    return save_figure(fig, path, title)
