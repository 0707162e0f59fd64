"""The mechanism run: layer lens, leave-one-out attribution and head ablation, by task answer.

A probe-style config (models, mixtures, ``n_prompts``, seed) plus a ``mechanism:`` section choosing
the analyses and their sizes. Records go to ``records.jsonl`` one per (model, mixture, analysis,
prompt) -- the top-n head ablations one per (task, n) and the induction scores one per model -- so an
interrupted run resumes where it stopped; the summary and figures are made from the records alone.
Only the transformers backend can do this (``residual`` and ``heads`` capabilities): any other model
string is refused before a run folder exists.
"""

from __future__ import annotations

import gc
import re
from pathlib import Path
from typing import Callable, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from superpose.backends import check_model, load_backend
from superpose.backends.devices import resolve_device
from superpose.backends.base import Heads, capable
from superpose.config import load_config
from superpose.errors import SuperposeError
from superpose.experiments.base import open_run
from superpose.experiments.probe import Mixture, ProbeConfig, make_prompts
from superpose.mechanism import figures
from superpose.mechanism.attribution import attribution_record, example_lines, summarize_attribution
from superpose.mechanism.heads import ablate_set, head_record, induction_scores, top_heads, verdict
from superpose.mechanism.lens import lens_records, summarize_lens
from superpose.prompts import Prompt
from superpose.display.console import console
from superpose.display.text import md
from superpose.progress import track
from superpose.runs import DEFAULT_ROOT, RunFolder

ANALYSES = ("lens", "attribution", "heads")


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LensOptions(_Options):
    """The logit lens: how many of the mixture's prompts (None: all ``n_prompts``)."""

    n_prompts: int | None = Field(None, ge=1)


class AttributionOptions(_Options):
    """Leave-one-out attribution: prompts (each costs n_examples + 1 scored prompts), the task whose
    answer colours the example figure (index into the mixture's tasks), position bins of the recency profile."""

    n_prompts: int = Field(8, ge=1)
    task: int = Field(0, ge=0)
    bins: int = Field(6, ge=1)


class HeadsOptions(_Options):
    """Head ablation: prompts (each costs layers x heads + 1 scored copies), heads listed per task,
    top-n sets ablated together, ablated copies per forward pass, the induction probe's size."""

    n_prompts: int = Field(6, ge=1)
    top: int = Field(5, ge=1)
    ablate_top: list[int] = Field(default_factory=lambda: [1, 3, 10])
    rows_per_pass: int = Field(8, ge=1)
    induction_length: int = Field(25, ge=2)
    induction_sequences: int = Field(4, ge=1)


class MechanismOptions(_Options):
    """Which analyses run, prompts per scored batch, and each analysis's options."""

    analyses: list[Literal["lens", "attribution", "heads"]] = Field(default_factory=lambda: list(ANALYSES),
                                                                    min_length=1)
    batch_size: int = Field(4, ge=1)
    lens: LensOptions = Field(default_factory=LensOptions)
    attribution: AttributionOptions = Field(default_factory=AttributionOptions)
    heads: HeadsOptions = Field(default_factory=HeadsOptions)


class MechanismConfig(ProbeConfig):
    """A probe config with a ``mechanism:`` section."""

    mechanism: MechanismOptions = Field(default_factory=MechanismOptions)

    @field_validator("terminator")
    @classmethod
    def _no_terminator(cls, t: str) -> str:
        if t:
            raise ValueError("the mechanism run scores the answers alone; leave terminator empty")
        return t

    def sizes(self, analysis: str) -> int:
        """Prompts per mixture that ``analysis`` uses."""
        wanted = getattr(self.mechanism, analysis).n_prompts or self.n_prompts
        return min(wanted, self.n_prompts)


def load_mechanism_config(path: str | Path, overrides: dict | None = None) -> MechanismConfig:
    """Read a probe-style config for the mechanism run (a missing ``mechanism:`` section: the defaults)."""
    config = load_config(MechanismConfig, path, overrides)
    mixtures = config.mixtures
    bad = [m.name for m in mixtures if config.mechanism.attribution.task >= len(m.tasks)]
    if bad:
        raise SuperposeError(f"mechanism.attribution.task {config.mechanism.attribution.task}: not a task index of "
                             f"mixture(s) {bad}")
    return config


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def run_mechanism(config: MechanismConfig | None, *, root: str | Path = DEFAULT_ROOT, resume: str | Path | None = None,
                  backend: Heads | None = None, progress: bool = True) -> tuple[RunFolder, dict]:
    """Run (or resume) the mechanism analyses; returns the finished run folder and its summary.

    ``backend``: a model already loaded (tests, notebooks), used for every model of the config and left open.
    """
    if resume is None:
        assert config is not None
        make_prompts(config)
        resolve_device(config.device)
        for entry in config.entries:  # a vLLM or API model is refused here, before any folder or engine
            check_model(entry.name, needs=("residual", "heads"), purpose="superpose mechanism")
    run, config = open_run("mechanism", MechanismConfig, config, root, resume,
                           name=None if config is None else f"mechanism-{config.name}")
    console.print(f"{'resuming' if resume else 'run folder:'} [bold]{run.path}[/bold]")
    prompts = make_prompts(config)
    done = {_key(r) for r in run.read_records()}
    provenance = dict(run.config_doc().get("models") or {})
    for entry in config.entries:
        lm: Heads | None = None

        def model() -> Heads:
            nonlocal lm
            if lm is None:
                console.print(f"loading model [bold]{entry.name}[/bold] ({config.dtype})")
                options = {"batch_size": config.mechanism.batch_size, **entry.options}
                lm = backend or capable(load_backend(entry.name, config.dtype, config.device, **options),
                                        Heads, "superpose mechanism")
                provenance[entry.display] = lm.provenance
                run.update_config("models", provenance)
            return lm

        for mixture in config.mixtures:
            _run_mixture(run, config, entry.display, mixture, prompts[mixture.name], done, model)
        if "heads" in config.mechanism.analyses and (entry.display, "", "induction", -1) not in done:
            scores = induction_scores(model(), np.random.default_rng(config.seed), config.mechanism.heads.induction_length,
                                      config.mechanism.heads.induction_sequences)
            run.append_record({"model": entry.display, "mixture": "", "analysis": "induction", "index": -1,
                               "scores": scores.round(5).tolist()})
        if lm is not None and backend is None:
            lm.close()
        del lm
        gc.collect()
    summary = summarize_mechanism(run, config)
    console.print(f"figures: {run.path / 'figures'}\nsummary: {run.path / 'summary.md'}")
    return run, summary


def _key(r: dict) -> tuple:
    return r["model"], r["mixture"], r["analysis"], r["index"]


def _run_mixture(run: RunFolder, config: MechanismConfig, model_name: str, mixture: Mixture, prompts: list[Prompt],
                 done: set, model: Callable[[], Heads]) -> None:
    """Every chosen analysis of one (model, mixture), skipping records already written."""
    opts = config.mechanism
    base = {"model": model_name, "mixture": mixture.name}
    if "lens" in opts.analyses:
        chosen = prompts[: config.sizes("lens")]
        # Chunks are cut from the whole list, as in an uninterrupted run: batch company moves the last bits.
        chunks = [chosen[i: i + opts.batch_size] for i in range(0, len(chosen), opts.batch_size)]
        chunks = [c for c in chunks if any((model_name, mixture.name, "lens", p.index) not in done for p in c)]
        for chunk in track(chunks, f"{model_name}, {mixture.name}: lens"):
            for r in lens_records(model(), chunk):
                if (model_name, mixture.name, "lens", r["index"]) not in done:
                    run.append_record({**base, "analysis": "lens", **r})
    if "attribution" in opts.analyses:
        todo = [p for p in prompts[: config.sizes("attribution")]
                if (model_name, mixture.name, "attribution", p.index) not in done]
        for p in track(todo, f"{model_name}, {mixture.name}: leave-one-out"):
            run.append_record({**base, "analysis": "attribution", **attribution_record(model(), p, mixture)})
    if "heads" in opts.analyses:
        chosen = prompts[: config.sizes("heads")]
        todo = [p for p in chosen if (model_name, mixture.name, "heads", p.index) not in done]
        top_todo = [(k, n) for k in range(len(mixture.tasks)) for n in opts.heads.ablate_top
                    if (model_name, mixture.name, "heads_top", f"{k}:{n}") not in done]
        if todo or top_todo:
            means = model().head_means([p.text for p in chosen])  # [layers, heads, head_dim]: deterministic
            for p in track(todo, f"{model_name}, {mixture.name}: ablating each head"):
                run.append_record({**base, "analysis": "heads",
                                   **head_record(model(), p, means, opts.heads.rows_per_pass)})
            records = [r for r in run.read_records() if r["analysis"] == "heads" and r["model"] == model_name
                       and r["mixture"] == mixture.name]
            n_heads = model().head_shape[1]
            ranked = top_heads(records, n_heads, max(opts.heads.ablate_top))
            for k, n in top_todo:
                heads = [(h["layer"], h["head"]) for h in ranked[mixture.tasks[k]][:n]]
                rows = ablate_set(model(), chosen, heads, means)
                run.append_record({**base, "analysis": "heads_top", "index": f"{k}:{n}", "task": k, "n": n,
                                   "heads": heads, "prompts": rows})


def summarize_mechanism(run: RunFolder, config: MechanismConfig) -> dict:
    """Statistics, figures and summary.md from the records; marks the run complete."""
    records = run.read_records()
    opts = config.mechanism
    summary: dict = {"config": config.name, "analyses": list(opts.analyses), "models": {}}
    for mi, entry in enumerate(config.entries):
        model_name = entry.display
        mine = [r for r in records if r["model"] == model_name]
        induction = next((np.array(r["scores"]) for r in mine if r["analysis"] == "induction"), None)
        summary["models"][model_name] = {}
        for xi, mixture in enumerate(config.mixtures):
            rec = {a: sorted([r for r in mine if r["mixture"] == mixture.name and r["analysis"] == a],
                             key=lambda r: str(r["index"]).zfill(8))
                   for a in ("lens", "attribution", "heads", "heads_top")}
            tag, title = f"{_slug(model_name)}_{xi}", f"{model_name}, {mixture.name}"
            out: dict = {}
            if "lens" in opts.analyses:
                _expect(run, rec["lens"], config.sizes("lens"), "lens")
                out["lens"] = summarize_lens(rec["lens"])
                figures.plot_lens(out["lens"], run.figure_path(f"lens_{tag}"), title)
            if "attribution" in opts.analyses:
                _expect(run, rec["attribution"], config.sizes("attribution"), "attribution")
                out["attribution"] = summarize_attribution(rec["attribution"], opts.attribution.bins)
                figures.plot_matrix(out["attribution"], run.figure_path(f"attribution_matrix_{tag}"), title)
                figures.plot_recency(out["attribution"], run.figure_path(f"attribution_recency_{tag}"), title)
                first = rec["attribution"][0]
                prompt = make_prompts(config.model_copy(update={"n_prompts": 1}))[mixture.name][0]
                k = opts.attribution.task
                figures.plot_prompt(example_lines(prompt, mixture)[1], [e[k] for e in first["effect"]],
                                    mixture.tasks, first["example_tasks"], mixture.tasks[k],
                                    run.figure_path(f"attribution_prompt_{tag}"), f"{title}, prompt 0")
            if "heads" in opts.analyses:
                _expect(run, rec["heads"], config.sizes("heads"), "heads")
                out["heads"] = _summarize_heads(rec["heads"], rec["heads_top"], induction, mixture.tasks, opts)
                n_heads = induction.shape[1]
                dp = np.array(out["heads"]["delta_p"])  # [H, K]
                figures.plot_heads(dp.reshape(-1, n_heads, dp.shape[1]), induction, mixture.tasks,
                                   run.figure_path(f"heads_{tag}"), title)
            summary["models"][model_name][mixture.name] = out
    run.write_text("summary.md", summary_markdown(summary))
    for mixtures in summary["models"].values():  # the per-head arrays are in the figures and records
        for out in mixtures.values():
            if "heads" in out:
                out["heads"].pop("delta_p")
    run.finish(summary)
    return summary


def _expect(run: RunFolder, records: list, n: int, what: str) -> None:
    if len(records) != n:
        raise SuperposeError(f"{run.path}: {len(records)} of {n} {what} records; resume with --resume {run.path}")


def _summarize_heads(records: list[dict], top_records: list[dict], induction: np.ndarray, tasks: list[str],
                     opts: MechanismOptions) -> dict:
    """Top heads per task (ΔP, induction score), and what ablating each task's top n heads did."""
    n_heads = induction.shape[1]
    base = np.exp(np.array([r["logprob"] for r in records]))  # [N, K]
    after = np.exp(np.array([r["logprob"] for r in records])[:, None] + np.array([r["delta"] for r in records]))
    dp = (after - base[:, None]).mean(axis=0)  # [H, K]
    ranked = top_heads(records, n_heads, opts.heads.top)
    for heads in ranked.values():
        for h in heads:
            h["induction"] = round(float(induction[h["layer"], h["head"]]), 4)
    sets = []
    for r in sorted(top_records, key=lambda r: (r["task"], r["n"])):
        before = np.exp(np.array([p["before"] for p in r["prompts"]])).mean(axis=0)
        after_set = np.exp(np.array([p["after"] for p in r["prompts"]])).mean(axis=0)
        sets.append({"task": tasks[r["task"]], "n": r["n"], "heads": r["heads"],
                     "before": before.round(4).tolist(), "after": after_set.round(4).tolist(),
                     "verdict": verdict(before, after_set, tasks)})
    flat = induction.reshape(-1)
    return {"n_prompts": len(records), "n_heads": int(dp.shape[0]), "top": ranked, "ablate_top": sets,
            "delta_p": dp.tolist(), "mean_p": base.mean(axis=0).round(4).tolist(),
            "induction_top": [{"layer": int(i // n_heads), "head": int(i % n_heads), "score": round(float(flat[i]), 4)}
                              for i in np.argsort(-flat)[:5]]}


def _f(x, fmt: str = ".3f") -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, fmt)


def summary_markdown(summary: dict) -> str:
    """The headline numbers as Markdown: lens table, attribution matrix, recency, heads."""
    out = [f"# Mechanism {md(summary['config'])}\n"]
    for model, mixtures in summary["models"].items():
        for mixture, s in mixtures.items():
            out.append(f"## {md(model)} — {md(mixture)}\n")
            if "lens" in s:
                lens = s["lens"]
                out.append(f"### Logit lens ({lens['n_prompts']} prompts, {lens['n_layers']} layers; in "
                           f"{lens['n_prompts'] - lens['n_distinct_first']} of them two answers share a first "
                           "character, which the lens cannot tell apart)\n")
                out.append("| task | share | first layer on top | first layer in the top 10 (median rank) | mean P "
                           "at the middle layer | mean P at the last layer (lens) | exact first-token P | exact answer P |")
                out.append("|---|---|---|---|---|---|---|---|")
                mid = lens["n_layers"] // 2
                for t, v in lens["tasks"].items():
                    out.append(f"| {md(t)} | {v['share']:.3f} | {_f(v['first_layer_on_top'], 'd')} | "
                               f"{_f(v['first_layer_top10'], 'd')} | "
                               f"{v['mean_prob'][mid]:.3f} | {v['mean_prob'][-1]:.3f} | "
                               f"{v['exact_first_token_mean_prob']:.3f} | {v['exact_answer_mean_prob']:.3f} |")
                out.append("")
            if "attribution" in s:
                a = s["attribution"]
                out.append(f"### Leave-one-out attribution ({a['n_prompts']} prompts × {a['n_examples']} examples)\n")
                out.append("Mean Δ log P(answer k) when an example of task j is present rather than removed "
                           "(95% t-interval over prompts).\n")
                out.append("| examples of ↓ / answer of → | " + " | ".join(md(t) for t in a["tasks"]) + " |")
                out.append("|---" * (len(a["tasks"]) + 1) + "|")
                for j, t in enumerate(a["tasks"]):
                    cells = [f"{_f(a['matrix'][j][k], '+.4f')} [{_f(a['matrix_low'][j][k], '+.4f')}, "
                             f"{_f(a['matrix_high'][j][k], '+.4f')}]" for k in range(len(a["tasks"]))]
                    out.append(f"| {md(t)} | " + " | ".join(cells) + " |")
                out.append(f"\nRecency (own-task effect, {a['bins']} position bins, first → last):\n")
                for t, r in a["recency"].items():
                    out.append(f"- {md(t)}: " + ", ".join(_f(x, "+.3f") for x in r["mean"]))
                out.append("")
            if "heads" in s:
                h = s["heads"]
                out.append(f"### Heads ({h['n_prompts']} prompts, {h['n_heads']} heads mean-ablated one at a time)\n")
                out.append("| task | mean P | top heads (layer.head: ΔP of this task, induction score) |")
                out.append("|---|---|---|")
                for k, (t, heads) in enumerate(h["top"].items()):
                    listed = ", ".join(f"{x['layer']}.{x['head']}: {x['delta_p'][k]:+.3f} ({x['induction']:.2f})"
                                       for x in heads)
                    out.append(f"| {md(t)} | {h['mean_p'][k]:.3f} | {listed} |")
                out.append("\n| ablated together | mean P of every task before → after | verdict |")
                out.append("|---|---|---|")
                for x in h["ablate_top"]:
                    pairs = ", ".join(f"{b:.3f}→{a:.3f}" for b, a in zip(x["before"], x["after"]))
                    out.append(f"| top {x['n']} of {md(x['task'])} | {pairs} | {x['verdict']} |")
                top_ind = ", ".join(f"{x['layer']}.{x['head']} ({x['score']:.2f})" for x in h["induction_top"])
                out.append(f"\nStrongest induction heads: {top_ind}.\n")
    return "\n".join(out)
