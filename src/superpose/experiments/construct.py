"""Build the construction, run it on random mixed prompts, and write a run folder with a figure (kind construct).

Also measures how the embedding dimension grows with the number of examples m (the
``dimension_table``): only the position code grows, by 2 coordinates each time N = 3m + 2
passes a power of two.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from pydantic import Field, ValidationError, model_validator

from superpose.construction.model import ConstructedTransformer
from superpose.construction.prompts import random_counts, sample_prompt
from superpose.construction.scoring import score_prompts
from superpose.construction.tasks import MapTask, default_tasks, parse_tasks
from superpose.construction.weights import (
    N_LAYERS,
    TOKENS_PER_EXAMPLE,
    ConstructionSpec,
    build_transformer,
    dimension_formula,
)
from superpose.errors import ConfigError, SuperposeError
from superpose.display.figures import save_figure
from superpose.display.text import md
from superpose.experiments.base import ExperimentConfig, open_run
from superpose.runs import DEFAULT_ROOT, RunFolder

TOLERANCE = 1e-3  # what the tests and the report hold the model to; the design bound is ~1e-5
DEFAULT_DIMENSION_MS = (1, 4, 16, 64, 256, 1024, 4096, 65536)


class ConstructConfig(ExperimentConfig):
    """Settings of ``superpose construct`` (YAML file or command-line flags); the model is built in float64 on the CPU."""

    name: str = "construct"
    tasks: list[str] | None = Field(default=None, description="task names; default plus_1..plus_k")
    k: int | None = Field(default=None, ge=1, description="number of tasks when tasks is not given")
    vocab: int = Field(default=10, ge=2, le=256, description="symbols 0..vocab-1 (the d of the bound)")
    examples: int = Field(default=16, ge=1, le=1024, description="examples per prompt (m)")
    noise: int = Field(default=0, ge=0, description="examples per prompt that fit no task")
    prompts: int = Field(default=60, ge=1, le=100000, description="random prompts to run")
    seed: int = 0
    dimension_ms: list[int] = Field(default=list(DEFAULT_DIMENSION_MS),
                                    description="values of m for the dimension table")
    verify_up_to: int = Field(default=256, ge=1, description="largest m of the table also run on a prompt")

    @model_validator(mode="after")
    def _check(self) -> "ConstructConfig":
        if self.noise >= self.examples:
            raise ValueError(f"noise must be smaller than examples ({self.examples}) so that some "
                             f"example fits a task; got noise={self.noise}")
        if any(m < 1 for m in self.dimension_ms):
            raise ValueError(f"dimension_ms must be positive integers; got {self.dimension_ms}")
        return self

    def resolve_tasks(self) -> tuple[MapTask, ...]:
        """The task objects this config names (explicit list, or plus_1..plus_k, default K=3)."""
        if self.tasks:
            if self.k is not None and self.k != len(self.tasks):
                raise SuperposeError(f"k={self.k} disagrees with the {len(self.tasks)} tasks given; "
                                     "give one of --tasks or --k")
            return parse_tasks(self.tasks, self.vocab)
        return default_tasks(self.k or 3, self.vocab)


def load_config(data: dict, source: str = "config") -> ConstructConfig:
    """Validate a config dict; errors name the field and the allowed values."""
    try:
        return ConstructConfig(**data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
                             for err in e.errors())
        raise ConfigError(f"{source}: {problems}") from None


def mixture_plan(k: int, total: int, n_prompts: int, rng: np.random.Generator) -> list[list[int]]:
    """Counts for each prompt: each task alone, an even split, then random mixtures."""
    plan: list[list[int]] = []
    for j in range(k):
        plan.append([total if i == j else 0 for i in range(k)])
    even = [total // k + (1 if i < total % k else 0) for i in range(k)]
    plan.append(even)
    while len(plan) < n_prompts:
        plan.append(random_counts(k, total, rng))
    return plan[:n_prompts]


def architecture_rows(model: ConstructedTransformer) -> list[dict]:
    """Per layer: its job, attention heads and MLP width."""
    rows = []
    for i, block in enumerate(model.blocks, start=1):
        rows.append({"layer": i, "job": block.job,
                     "heads": block.attn.n_heads if block.attn is not None else 0,
                     "mlp_width": block.mlp.fc.out_features if block.mlp is not None else 0})
    return rows


def dimension_table(tasks: tuple[MapTask, ...], vocab: int, ms: list[int] | tuple[int, ...],
                    rng: np.random.Generator, verify_up_to: int = 256) -> list[dict]:
    """For each m: the built model's width against d + log2(m n), and (small m) its measured error."""
    rows = []
    for m in ms:
        spec = ConstructionSpec(tasks, vocab, m)
        model = build_transformer(spec)
        bound = vocab + math.log2(m * TOKENS_PER_EXAMPLE)
        row = {"m": m, "N": spec.max_len, "log2_mn": round(math.log2(m * TOKENS_PER_EXAMPLE), 3),
               "d_plus_log2_mn": round(bound, 3), "d_model": model.d_model,
               "formula": dimension_formula(vocab, len(tasks), m),
               "ratio": round(model.d_model / bound, 3), "layers": len(model.blocks),
               "max_heads": max(r["heads"] for r in architecture_rows(model)),
               "widest_mlp": max(r["mlp_width"] for r in architecture_rows(model)),
               "max_abs_error": None}
        if m <= verify_up_to:
            counts = random_counts(len(tasks), m, rng)
            prompt = sample_prompt(tasks, counts, 0, vocab, rng)
            row["max_abs_error"] = score_prompts(model, spec, [prompt])[0]["max_abs_error"]
        rows.append(row)
    return rows


def plot(records: list[dict], task_names: list[str], dims: list[dict], title: str, path: Path) -> Path:
    """Figure: probability of each task's answer against its share, and width against m."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.6))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="probability = share")
    markers = "osD^vP*X"
    for k, name in enumerate(task_names):
        xs = [r["shares"][k] for r in records]
        ys = [r["probs"][k] for r in records]
        # Hollow markers of shrinking size, so tasks that land on the same point stay visible.
        ax.scatter(xs, ys, s=60 - 10 * (k % 5), marker=markers[k % len(markers)], facecolors="none",
                   edgecolors=f"C{k}", linewidths=1.2, label=f"task {name}")
    worst = max(r["max_abs_error"] for r in records)
    ax.set_xlabel("share of the in-context examples that follow the task")
    ax.set_ylabel("probability the model gives the task's answer")
    ax.set_title(f"{title}\nlargest |probability - share| = {worst:.1e}", fontsize=10)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.legend(fontsize=8, loc="upper left")
    ms = [r["m"] for r in dims]
    ax2.plot(ms, [r["d_model"] for r in dims], marker="o", label="embedding dimension of the model")
    ax2.plot(ms, [r["d_plus_log2_mn"] for r in dims], marker="s", label="d + log2(m n)")
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("number of in-context examples m (log scale)")
    ax2.set_ylabel("dimension")
    ax2.set_title("Embedding dimension against m\n(only the position code grows: +2 per doubling of N)",
                  fontsize=10)
    ax2.legend(fontsize=8)
    return save_figure(fig, path)


def run_construct(config: ConstructConfig | None, *, root: str | Path = DEFAULT_ROOT, resume: str | Path | None = None,
                  backend: None = None, progress: bool = True) -> tuple[RunFolder, dict]:
    """Build the model, score random mixed prompts, measure widths, write (or finish) the run folder.

    The model is built from the config, so ``backend`` is always None; ``progress`` has nothing to show.
    """
    if config is not None:
        config.resolve_tasks()  # unknown tasks fail before a folder exists
    run, config = open_run("construct", ConstructConfig, config, root, resume)
    tasks = config.resolve_tasks()
    spec = ConstructionSpec(tasks, config.vocab, config.examples)
    model = build_transformer(spec)
    rng = np.random.default_rng(config.seed)  # draws the prompts, then the dimension table's
    names = [t.name for t in tasks]
    run.update_config("resolved_tasks", names)
    plan = mixture_plan(spec.k, config.examples - config.noise, config.prompts, rng)
    prompts = [sample_prompt(tasks, counts, config.noise, config.vocab, rng) for counts in plan]
    if not (run.path / "prompts.jsonl").is_file():
        run.write_jsonl("prompts.jsonl", [{"index": i, "tokens": p.tokens(config.vocab), "labels": list(p.labels)}
                                          for i, p in enumerate(prompts)])
    # One batched pass over every prompt (they have one length, and the model is small), so a resumed
    # run's numbers are an uninterrupted run's; only the records not yet written are appended.
    done = {r["index"] for r in run.read_records()}
    for i, r in enumerate(score_prompts(model, spec, prompts)):
        if i not in done:
            run.append_record({"index": i} | r)
    records = run.read_records()
    dims = dimension_table(tasks, config.vocab, config.dimension_ms, rng, config.verify_up_to)
    run.write_json("dimension_table.json", dims)
    title = (f"Hand-built 7-layer transformer, K={spec.k} tasks, m={config.examples} examples"
             + (f" ({config.noise} noise)" if config.noise else ""))
    figure = plot(records, names, dims, title, run.figure_path("probability_vs_share"))
    arch = architecture_rows(model)
    worst = max(r["max_abs_error"] for r in records)
    bound = config.vocab + math.log2(config.examples * TOKENS_PER_EXAMPLE)
    summary = {
        "tasks": names, "k": spec.k, "vocab_d": config.vocab, "examples_m": config.examples,
        "tokens_per_example_n": TOKENS_PER_EXAMPLE, "noise_per_prompt": config.noise,
        "prompts": len(records), "layers": len(arch), "layer_limit": N_LAYERS,
        "heads_per_layer": [r["heads"] for r in arch], "mlp_widths": [r["mlp_width"] for r in arch],
        "architecture": arch, "d_model": model.d_model,
        "d_model_formula": "(2K+3)*d + 2*ceil(log2(n*m+2)) + 2K + 6",
        "d_plus_log2_mn": bound, "ratio_to_bound": model.d_model / bound,
        "bound_constant": 3 * spec.k + 8,  # d_model <= (3K + 8)(d + log2(mn)) for d >= 2, m >= 1
        "layout": {name: [s.start, s.stop] for name, s in spec.layout.slots.items()},
        "max_abs_error": worst, "mean_abs_error": float(np.mean([r["max_abs_error"] for r in records])),
        "error_bound": spec.error_bound(), "tolerance": TOLERANCE, "passed": worst < TOLERANCE,
        "dimension_table": dims, "figure": str(figure.relative_to(run.path)),
    }
    run.write_text("summary.md", construct_markdown(summary))
    run.finish(summary)
    return run, summary


def construct_markdown(s: dict) -> str:
    """summary.md of a construction run (what the command prints and the report shows): the layers, the
    embedding dimension against the bound, and the verdict."""
    out = ["# Theorem 1, built by hand\n",
           f"K={s['k']} tasks ({md(', '.join(s['tasks']))}), d={s['vocab_d']} symbols, m={s['examples_m']} "
           f"examples, n={s['tokens_per_example_n']} tokens each.\n",
           "| layer | job | heads | MLP width |", "|---|---|---|---|"]
    out += [f"| {r['layer']} | {md(r['job'])} | {r['heads']} | {r['mlp_width']} |" for r in s["architecture"]]
    out += ["", "## Embedding dimension against the bound d + log2(mn)\n",
            "| m | N = nm+2 | d + log2(mn) | d_model | d_model / (d + log2 mn) | max \\|P − share\\| |",
            "|---|---|---|---|---|---|"]
    for r in s["dimension_table"]:
        err = "not run" if r["max_abs_error"] is None else f"{r['max_abs_error']:.1e}"
        out.append(f"| {r['m']} | {r['N']} | {r['d_plus_log2_mn']:.2f} | {r['d_model']} | {r['ratio']:.2f} | {err} |")
    out += ["", f"Layers {s['layers']} (limit {s['layer_limit']}), heads per layer {s['heads_per_layer']} (at most "
                f"K={s['k']}), d_model {s['d_model']} = {s['d_model_formula'].replace('*', '·')} ≤ {s['bound_constant']} · (d + log2(mn)) "
                f"= {s['bound_constant'] * s['d_plus_log2_mn']:.1f}.\n",
            f"{s['prompts']} prompts: largest |P(answer) − share| = {s['max_abs_error']:.2e} (design bound "
            f"{s['error_bound']:.1e}, tolerance {s.get('tolerance', TOLERANCE):g}) → "
            f"**{'OK' if s['passed'] else 'FAILED'}**\n"]
    return "\n".join(out)
