"""The probe: score every task's answer after mixed-task prompts, on one or more models.

For each mixture in the config, ``n_prompts`` prompts are drawn (the same prompts for every model),
each model -- any backend (:mod:`superpose.backends`): transformers in-process, or vLLM -- scores every
task's answer to every query, and one record per (model, mixture, prompt) is appended to the run folder. The summary and figures are made from
the records, so an interrupted run resumes where it stopped (``--resume``) and its numbers are the
same as an uninterrupted run's.

With ``controls: true`` every mixture prompt also gets its 2K control prompts
(:func:`superpose.prompts.build_controls`: K leave-one-task-out, K single-task), scored the same way and
recorded with ``control`` / ``control_task``; the summary then gives each task's in-context effect.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Iterable

import numpy as np
from pydantic import Field, field_validator

from superpose.backends import (Backend, ContinuationScore, ScoreRequest, backend_class, check_model,
                               load_backend)
from superpose.backends.base import beyond_training_warning
from superpose.backends.devices import resolve_device
from superpose.backends.entry import ModelEntry, Models
from superpose.config import check_unique, load_config
from superpose.errors import PromptTooLong, SuperposeError
from superpose.experiments.base import ExperimentConfig, open_run
from superpose.metrics import control_statistics, paired_difference, task_statistics, verdict
from superpose.prompts import MAX_PROMPTS, Control, MixtureSpec, Prompt, build_controls, build_prompts
from superpose.display.console import console, warn
from superpose.display.figures import plot_controls, plot_distributions, plot_means
from superpose.display.text import md
from superpose.progress import track
from superpose.runs import DEFAULT_ROOT, RunFolder
from superpose.stats import DEFAULT_LEVEL, fmt_key, generator

DEFAULT_CONFIG_NAME = "configs/demo.yaml"  # packaged: found from any folder (config.find_config)


class Mixture(MixtureSpec):
    """A named mixture in a probe config."""

    name: str


class ProbeConfig(ExperimentConfig):
    """A probe: which models, which mixtures, how many prompts."""

    name: str = "probe"
    models: Models = Field(default_factory=lambda: ["gemma-3-270m"], min_length=1)
    n_prompts: int = Field(100, ge=1, le=MAX_PROMPTS)
    terminator: str = ""  # "" scores the answer alone (the study); "\n" scores answer + newline
    mixtures: list[Mixture] = Field(min_length=1)
    ci_level: float = Field(DEFAULT_LEVEL, gt=0, lt=1)  # confidence level of every interval
    controls: bool = False  # also score the leave-one-task-out and single-task prompts: (2K+1)x the prompts

    @property
    def entries(self) -> list[ModelEntry]:
        """The models as entries (validation has turned every string into one)."""
        return self.models  # type: ignore[return-value]

    @field_validator("mixtures")
    @classmethod
    def _unique_names(cls, mixtures: list[Mixture]) -> list[Mixture]:
        check_unique([m.name for m in mixtures], "mixture names")
        return mixtures


def load_probe_config(path: str | Path, overrides: dict | None = None) -> ProbeConfig:
    """Read a probe config; user task files are resolved relative to the config's folder."""
    return load_config(ProbeConfig, path, overrides)


def make_prompts(config: ProbeConfig) -> dict[str, list[Prompt]]:
    """The prompts of every mixture; identical for every model."""
    return {m.name: build_prompts(m, config.n_prompts, config.seed) for m in config.mixtures}


def make_controls(config: ProbeConfig) -> dict[str, list[list[Control]]]:
    """The control prompts of every mixture prompt (``[mixture][prompt] -> 2K controls``); {} without controls."""
    if not config.controls:
        return {}
    return {m.name: [build_controls(m, config.seed, i) for i in range(config.n_prompts)] for m in config.mixtures}


def requests_of(prompt: Prompt, terminator: str = "") -> ScoreRequest:
    """The prompt's text with every task's answer (plus ``terminator``) as continuations."""
    return ScoreRequest(prompt.text, [a + terminator for a in prompt.answers])


def prepare_requests(backend: Backend, prompts: Iterable[tuple[str, Prompt]], terminator: str) -> list[ScoreRequest]:
    """Each (mixture, prompt)'s request, checked and encoded once by ``backend`` (:meth:`Backend.prepare`);
    a prompt plus an answer that exceeds the model's context fails, naming the prompt, before any scoring."""
    out = []
    for mixture, p in prompts:
        try:
            out.append(backend.prepare(requests_of(p, terminator)))
        except PromptTooLong as e:
            raise PromptTooLong(f"mixture '{mixture}', prompt {p.index}: {e} (now {len(p.example_tasks)})") from None
    return out


def check_prompts_fit(backend: Backend, prompts: dict[str, list[Prompt]], terminator: str) -> None:
    """Fail before any scoring if a prompt plus an answer exceeds the model's context."""
    prepare_requests(backend, [(m, p) for m, ps in prompts.items() for p in ps], terminator)


def run_probe(config: ProbeConfig | None, *, root: str | Path = DEFAULT_ROOT, resume: str | Path | None = None,
              backend: Backend | None = None, progress: bool = True) -> tuple[RunFolder, dict]:
    """Run (or resume) a probe; returns its finished run folder and summary.

    ``backend``: a model already loaded (notebooks, tests), used for every model of the config and
    left open; by default each model loads with the config's dtype and device.
    """
    if resume is None:
        assert config is not None
        prompts = make_prompts(config)  # tasks that agree on every input fail before anything is written
        resolve_device(config.device)  # so does a missing GPU
        for entry in config.entries:  # and an unknown or missing model
            check_model(entry.name, purpose="superpose run")
            if backend_class(entry.name).remote:  # a missing key or a run over the request cap, too
                remote = load_backend(entry.name, config.dtype, config.device, **entry.options)
                remote.check_access()
                planned = remote.plan([requests_of(p, config.terminator) for ps in prompts.values() for p in ps])
                console.print(f"{entry.display}: at most {planned} requests")
    run, config = open_run("probe", ProbeConfig, config, root, resume)
    if resume is not None:
        console.print(f"resuming [bold]{run.path}[/bold]")
        prompts = make_prompts(config)
    else:
        console.print(f"run folder: [bold]{run.path}[/bold]")
    if not (run.path / "prompts.jsonl").is_file():  # written atomically; a run killed before it gets it now
        run.write_jsonl("prompts.jsonl", ({"mixture": m, **p.to_dict()} for m, ps in prompts.items() for p in ps))
    controls = make_controls(config)
    if controls and not (run.path / "controls.jsonl").is_file():
        run.write_jsonl("controls.jsonl", ({"mixture": m, **c.to_dict()} for m, cs in controls.items()
                                           for per_prompt in cs for c in per_prompt))

    done = {_record_key(r) for r in run.read_records()}
    provenance = dict(run.config_doc().get("models") or {})
    # the mixture prompts first, then their controls: without controls the records are as before
    items: list[tuple[str, Prompt, Control | None]] = [(m, p, None) for m, ps in prompts.items() for p in ps]
    items += [(m, c.prompt, c) for m, cs in controls.items() for per_prompt in cs for c in per_prompt]
    for entry in config.entries:
        model_name = entry.display
        finished = [_item_key(model_name, m, p, c) in done for m, p, c in items]
        if all(finished):
            continue
        if backend is None:
            console.print(f"loading model [bold]{entry.name}[/bold] ({config.dtype})")
        lm = backend or load_backend(entry.name, config.dtype, config.device, **entry.options)
        lm.bind_run(run.path)
        provenance[model_name] = lm.provenance
        run.update_config("models", provenance)
        requests = prepare_requests(lm, [(m, p) for m, p, _ in items], config.terminator)  # encoded once
        note = beyond_training_warning(lm, requests)
        if note:
            warn(note)
        stream = lm.stream(requests, finished)
        for i, scores in track(stream, f"{model_name}: scoring prompts", total=finished.count(False), progress=progress):
            mixture, prompt, control = items[i]
            record = probe_record(model_name, mixture, prompt, scores)
            if control is not None:
                record.update(control=control.kind, control_task=prompt.tasks[control.task])
            run.append_record(record)
        spent = lm.usage()
        if spent is not None:  # add to what earlier sessions of this run spent
            usage = dict(run.config_doc().get("usage") or {})
            before = usage.get(model_name) or {}
            usage[model_name] = {k: before.get(k, 0) + v for k, v in spent.items()}
            run.update_config("usage", usage)
        if backend is None:  # a backend handed in belongs to the caller
            lm.close()
        del lm, stream
        gc.collect()

    summary = summarize_probe(run, config)
    return run, summary


def _item_key(model: str, mixture: str, prompt: Prompt, control: Control | None) -> tuple:
    return (model, mixture, prompt.index) + ((control.kind, prompt.tasks[control.task]) if control else ())


def _record_key(r: dict) -> tuple:
    return (r["model"], r["mixture"], r["index"]) + ((r["control"], r["control_task"]) if "control" in r else ())


def probe_record(model: str, mixture: str, prompt: Prompt, scores: list[ContinuationScore]) -> dict:
    """The record of one (model, mixture, prompt): every task's answer and its exact log P."""
    return {
        "model": model, "mixture": mixture, "index": prompt.index,
        "tasks": prompt.tasks, "answers": prompt.answers,
        "shares": prompt.in_context_distribution,
        "logprobs": [s.logprob for s in scores],
        "n_answer_tokens": [s.n_tokens for s in scores],
        "straddles": [s.straddles for s in scores],
        **({"lower_bound": True, "unexplored": scores[0].unexplored} if scores[0].lower_bound else {}),
    }


def collect(records: list[dict], config: ProbeConfig | None = None) -> dict:
    """Records grouped as ``table[model][mixture] = {tasks, logp [N, K], shares [N, K]}`` in config order
    (without a config: in the order the records first name them)."""
    if config is not None:
        models = {m.display: i for i, m in enumerate(config.entries)}
        mixtures = {m.name: i for i, m in enumerate(config.mixtures)}
    else:
        models = {m: i for i, m in enumerate(dict.fromkeys(r["model"] for r in records))}
        mixtures = {m: i for i, m in enumerate(dict.fromkeys(r["mixture"] for r in records))}
    table: dict = {}
    for r in sorted(records, key=lambda r: (models[r["model"]], mixtures[r["mixture"]], r["index"])):
        entry = table.setdefault(r["model"], {}).setdefault(
            r["mixture"], {"tasks": r["tasks"], "logp": [], "shares": [], "straddles": 0, "unexplored": [],
                           "controls": {}})
        if "control" in r:  # a control prompt's record: kept apart, by (kind, task), in prompt order
            entry["controls"].setdefault((r["control"], r["control_task"]), []).append(r["logprobs"])
            continue
        entry["logp"].append(r["logprobs"])
        if r.get("lower_bound"):
            entry["unexplored"].append(r["unexplored"])
        entry["shares"].append(r["shares"])
        entry["straddles"] += sum(r["straddles"])
    return table


def mixture_statistics(tasks: list[str], logp: list, shares: list, controls: dict, seed: int, model: str,
                       mixture: str, level: float = DEFAULT_LEVEL) -> dict:
    """The statistics of one (model, mixture) with intervals, and the controls' when there are any
    (``controls[(kind, task)]`` = the control prompts' log P rows); what summary.json and the notebook show."""
    rng = generator(seed, model, mixture)
    stats = task_statistics(tasks, np.array(logp), np.array(shares), rng, level)
    if controls:
        stats["controls"] = control_statistics(
            tasks, np.array(logp), [np.array(controls[("without", t)]) for t in tasks],
            [np.array(controls[("single", t)]) for t in tasks], rng, level)
    return stats


def summarize_probe(run: RunFolder, config: ProbeConfig) -> dict:
    """Statistics, summary.md and figures from a run folder's records; marks the run complete."""
    table = collect(run.read_records(), config)
    expected = len(config.models) * config.n_prompts * sum(
        1 + (2 * len(m.tasks) if config.controls and len(m.tasks) > 1 else 0) for m in config.mixtures)
    found = sum(len(e["logp"]) + sum(map(len, e["controls"].values()))
                for mixtures in table.values() for e in mixtures.values())
    if found != expected:
        raise SuperposeError(f"{run.path}: {found} of {expected} records present; resume with --resume {run.path}")
    summary, plot_table = probe_summary(table, config, run.config_doc().get("usage"))
    plot_distributions(plot_table, run.figure_path("distributions"))
    plot_means(plot_table, run.figure_path("means"))
    plot_controls(plot_table, run.figure_path("controls"))
    run.write_text("summary.md", summary_markdown(summary, first_prompts(run.path)))
    run.finish(summary)
    return summary


def probe_summary(table: dict, config: ProbeConfig, usage: dict | None = None) -> tuple[dict, dict]:
    """summary.json's content from grouped records (:func:`collect`), and the table the figures draw."""
    summary = {"config": config.name, "models": {}}
    if usage:
        summary["usage"] = usage
    plot_table: dict = {}
    for model, mixtures in table.items():
        summary["models"][model] = {}
        plot_table[model] = {}
        for mixture, e in mixtures.items():
            stats = mixture_statistics(e["tasks"], e["logp"], e["shares"], e["controls"], config.seed, model,
                                       mixture, config.ci_level)
            stats["boundary_straddles"] = e["straddles"]
            if e["unexplored"]:  # an API search: every P is a lower bound, truth within + unexplored
                stats["lower_bound"] = True
                stats["mean_unexplored"] = float(np.mean(e["unexplored"]))
            summary["models"][model][mixture] = stats
            plot_table[model][mixture] = {
                "tasks": e["tasks"], "probs": np.exp(np.array(e["logp"])),
                "shares": np.array(e["shares"]).mean(axis=0), "stats": stats}
    comparisons = compare_models(table, config)
    if comparisons:
        summary["comparisons"] = comparisons
    return summary, plot_table


def summary_with_intervals(folder: str | Path, summary: dict) -> tuple[dict, str | None]:
    """A probe folder's summary and summary.md: as written, or -- a folder from before intervals --
    recomputed from its records (nothing written), so old folders report with intervals too."""
    mixtures = [m for mixtures in summary.get("models", {}).values() for m in mixtures.values()]
    if not mixtures or all("ci_level" in m for m in mixtures):
        return summary, None
    run = RunFolder.open(folder)
    # only the header is needed: not validated, so a folder whose user task files are gone still reports
    raw = run.config
    header = ProbeConfig.model_construct(name=str(raw.get("name", "probe")), seed=int(raw.get("seed", 0)),
                                         ci_level=float(raw.get("ci_level", DEFAULT_LEVEL)))
    fresh, _ = probe_summary(collect(run.read_records()), header, run.config_doc().get("usage"))
    return fresh, summary_markdown(fresh, first_prompts(run.path))


def compare_models(table: dict, config: ProbeConfig) -> list[dict]:
    """Each later model against the first, per mixture and task: mean P difference on the same prompts,
    its paired interval and a sign test ([] with one model)."""
    models = list(table)
    out = []
    for other in models[1:]:
        for mixture, e in table[models[0]].items():
            if mixture not in table[other]:
                continue
            p_a, p_b = np.exp(np.array(e["logp"])), np.exp(np.array(table[other][mixture]["logp"]))  # [N, K]
            rng = generator(config.seed, "compare", models[0], other, mixture)
            for k, task in enumerate(e["tasks"]):
                out.append({"model_a": models[0], "model_b": other, "mixture": mixture, "task": task,
                            **paired_difference(p_a[:, k], p_b[:, k], rng, config.ci_level)})
    return out


def _num(x: float | None, fmt: str) -> str:
    return "–" if x is None else format(x, fmt)


def first_prompts(folder: str | Path) -> dict[str, dict]:
    """The first prompt of every mixture, as prompts.jsonl holds it ({} without the file)."""
    path = Path(folder) / "prompts.jsonl"
    firsts: dict[str, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else []:
        p = json.loads(line)
        firsts.setdefault(p["mixture"], p)
    return firsts


def summary_markdown(summary: dict, examples: dict[str, dict] | None = None) -> str:
    """summary.md: the study's Figure 2 beside ours, a table per (model, mixture), the comparisons, and
    the last lines of ``examples`` (the first prompt of each mixture, :func:`first_prompts`)."""
    out = [f"# Probe {md(summary['config'])}\n", "## Beside the study (Figure 2)\n",
           "The study's Figure 2: a pretrained model given examples of K tasks puts probability on every task's "
           "answer at once. Ours, per mixture: how many tasks' answers get a mean probability of at least 0.05, "
           "the means, and the mass left for other outputs, each with its bootstrap interval over prompts.\n",
           "| model · mixture | tasks with mean P ≥ 0.05 | mean P per task [CI] | other [CI] |", "|---|---|---|---|"]
    for model, mixtures in summary["models"].items():
        for mixture, s in mixtures.items():
            tasks = s["tasks"]
            above = sum(v["mean"] >= 0.05 for v in tasks.values())
            means = ", ".join(f"{md(t)} {fmt_key(v, 'mean')}" for t, v in tasks.items())
            out.append(f"| {md(model)} · {md(mixture)} | {above} of {len(tasks)} | {means} | {fmt_key(s, 'other_mean')} |")
    out.append("")
    for model, mixtures in summary["models"].items():
        for mixture, s in mixtures.items():
            out.append(f"## {md(model)} — {md(mixture)} ({s['n_prompts']} prompts)\n")
            level = f"{s.get('ci_level', DEFAULT_LEVEL):.0%}"
            out.append(f"| task | share | mean P [{level} CI] | median P | var P (unbiased) "
                       "| mean P (normalised over tasks) | top-1 rate |")
            out.append("|---|---|---|---|---|---|---|")
            for t, v in s["tasks"].items():
                out.append(f"| {md(t)} | {v['share']:.3f} | {fmt_key(v, 'mean')} | {v['median']:.3f} "
                           f"| {_num(v['variance'], '.4f')} | {fmt_key(v, 'mean_normalized')} | {fmt_key(v, 'top1_rate', 2)} |")
            sorted_means = ", ".join(f"{x:.3f}" for x in s["sorted_means"])
            out.append(f"\nother mass {fmt_key(s, 'other_mean')} · KL(shares‖P) {fmt_key(s, 'kl')} nats · "
                       f"KL after normalising {fmt_key(s, 'kl_normalized')} · sorted means [{sorted_means}] · "
                       f"boundary straddles {s['boundary_straddles']} · intervals: {level} bootstrap over prompts\n")
            out += _controls_markdown(s)
            if s.get("lower_bound"):
                out.append(f"Every P above is a **lower bound** (API top-N search); the unseen mass per prompt "
                           f"averages {s['mean_unexplored']:.3f}, so each P lies within that above its bound.\n")
            if s.get("kl_note"):
                out.append(f"{s['kl_note']}.\n")
    if summary.get("comparisons"):
        out.append("## Models compared on the same prompts\n")
        out.append("| mixture | task | mean P(a) − P(b) [CI] | a | b | prompts a > b / a < b | sign test p |")
        out.append("|---|---|---|---|---|---|---|")
        for c in summary["comparisons"]:
            out.append(f"| {md(c['mixture'])} | {md(c['task'])} | {fmt_key(c, 'difference')} | {md(c['model_a'])} "
                       f"| {md(c['model_b'])} | {c['n_above']} / {c['n_below']} | {c['p_value']:.3g} |")
        out.append("")
    for model, u in (summary.get("usage") or {}).items():
        cost = f", cost {u['cost']:.4f}" if "cost" in u else ""
        out.append(f"{md(model)}: {u['requests']} requests sent, {u['cached']} answered from the run's cache, "
                   f"{u['prompt_tokens']} prompt and {u['completion_tokens']} completion tokens{cost}.\n")
    if examples:
        out += ["## An example prompt per mixture (its last lines)\n",
                "| mixture | prompt ends with | answer of each task |", "|---|---|---|"]
        for mixture, p in examples.items():
            ending = " ⏎ ".join(md(line) for line in p["text"].splitlines()[-3:])
            answers = ", ".join(f"{md(t)} → {md(a)}" for t, a in zip(p["tasks"], p["answers"]))
            out.append(f"| {md(mixture)} | {ending} | {answers} |")
        out.append("")
    return "\n".join(out)



def _controls_markdown(s: dict) -> list[str]:
    """The in-context effect table of one (model, mixture), or the line saying no controls ran."""
    if "controls" not in s:
        return ["No controls run (set `controls: true`): no task is called superposed.\n"]
    out = ["In-context effect: P(answer | mixed) − P(answer | the task's examples given to the other tasks), "
           "paired over prompts; mixed / single-task: mixed P over P when every example is the task's. "
           "*superposed* = the effect's interval lies above 0.\n",
           "| task | in-context effect [CI] | P without its examples [CI] | P single-task [CI] | mixed / single [CI] | verdict |",
           "|---|---|---|---|---|---|"]
    for t, c in s["controls"].items():
        out.append(f"| {md(t)} | {fmt_key(c, 'effect')} | {fmt_key(c, 'mean_without')} | {fmt_key(c, 'mean_single')} "
                   f"| {fmt_key(c, 'ratio_to_single', 2)} | {verdict(c)} |")
    out.append("")
    return out
