"""Probe results as pandas DataFrames, for notebooks: from a run folder, or from a small probe run in memory.

    import superpose
    run = superpose.load_run("runs/copy-20261123-111509")       # a `superpose run` folder
    run.records()    # one row per (model, mixture, prompt, task): P, log P, share, last position, ...
    run.summary()    # one row per (model, mixture, task): mean, median, variance, top-1 rate, other, KL
    run.prompts()    # one row per (mixture, prompt): text, query, answers, tasks of the examples

    res = superpose.probe("smollm2-135m", ["copy_op1", "copy_op2"], n_examples=30, n_prompts=10)
    res.records()    # the same tables; `superpose run` with the same seed writes the same numbers

Both read the records the probe writes (:func:`superpose.experiments.probe.probe_record`), and the
summary is computed from them with :func:`superpose.metrics.task_statistics`, the function that writes
summary.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from superpose.errors import SuperposeError

if TYPE_CHECKING:
    import pandas as pd

    from superpose.backends import Backend


@dataclass
class ProbeResults:
    """A probe's records and prompts (as the run folder stores them), shown as DataFrames."""

    raw_records: list[dict]  # records.jsonl: one per (model, mixture, prompt)
    raw_prompts: list[dict] = field(default_factory=list)  # prompts.jsonl: one per (mixture, prompt)
    path: Path | None = None  # the run folder, when there is one
    seed: int = 0  # the run's seed: it seeds the bootstrap, so the intervals are summary.json's
    ci_level: float = 0.95

    def records(self) -> "pd.DataFrame":
        """One row per (model, mixture, prompt, task).

        Columns: model, mixture, prompt (its index), task, answer, share (the task's share of this
        prompt's examples), logp, p, p_normalized (P over the K answers), other (1 − ΣP of the
        prompt), top1 (the most probable of the K answers), last_position (how many examples from
        the end the task's last example is: 1 = the example right before the query; NaN when the
        prompt has none of the task's examples or prompts.jsonl is missing), n_answer_tokens, straddles,
        control ("" for a mixture prompt, "without" or "single" for a control prompt) and control_task.
        """
        import pandas as pd

        example_tasks = {(p["mixture"], p["index"]): p["example_tasks"] for p in self.raw_prompts}
        rows = []
        for r in self.raw_records:
            logp = np.asarray(r["logprobs"], dtype=np.float64)  # [K]
            p = np.exp(logp)
            normalized = np.exp(logp - np.logaddexp.reduce(logp))
            order = example_tasks.get((r["mixture"], r["index"]))
            for k, task in enumerate(r["tasks"]):
                rows.append({
                    "model": r["model"], "mixture": r["mixture"], "prompt": r["index"], "task": task,
                    "answer": r["answers"][k], "share": r["shares"][k], "logp": logp[k], "p": p[k],
                    "p_normalized": normalized[k], "other": 1.0 - p.sum(), "top1": k == int(np.argmax(logp)),
                    "last_position": _last_position(order, k), "n_answer_tokens": r["n_answer_tokens"][k],
                    "straddles": r["straddles"][k], "control": r.get("control", ""),
                    "control_task": r.get("control_task", "")})
        return pd.DataFrame(rows)

    def summary(self) -> "pd.DataFrame":
        """One row per (model, mixture, task): the statistics of summary.json with their intervals
        (``mean_lo``, ``mean_hi``, ...), the mixture's other mass and KL (and intervals) repeated on each
        of its rows, and with controls the in-context effect (``effect``, ``effect_lo``, ``effect_hi``,
        ``mean_without``, ``mean_single``, ``ratio_to_single``, ``superposed``)."""
        import pandas as pd

        from superpose.experiments.probe import mixture_statistics

        groups: dict[tuple[str, str], list[dict]] = {}
        for r in self.raw_records:
            groups.setdefault((r["model"], r["mixture"]), []).append(r)
        rows = []
        for (model, mixture), records in groups.items():
            records.sort(key=lambda r: r["index"])
            mixed = [r for r in records if "control" not in r]
            controls: dict = {}
            for r in records:
                if "control" in r:
                    controls.setdefault((r["control"], r["control_task"]), []).append(r["logprobs"])
            stats = mixture_statistics(mixed[0]["tasks"], [r["logprobs"] for r in mixed], [r["shares"] for r in mixed],
                                       controls, self.seed, model, mixture, self.ci_level)
            shared = {k: v for k, v in stats.items() if k.startswith(("other_", "kl")) and k != "kl_note"}
            for task, s in stats["tasks"].items():
                rows.append({"model": model, "mixture": mixture, "task": task, **s, "n_prompts": stats["n_prompts"],
                             **shared, **(stats.get("controls") or {}).get(task, {})})
        return pd.DataFrame(rows)

    def prompts(self) -> "pd.DataFrame":
        """One row per (mixture, prompt): text, query input, answers, each example's task index, counts."""
        import pandas as pd

        return pd.DataFrame([{
            "mixture": p["mixture"], "prompt": p["index"], "text": p["text"], "tasks": p["tasks"],
            "query_input": p["query_input"], "answers": p["answers"], "example_tasks": p["example_tasks"],
            "n_examples": len(p["example_tasks"]),
            "counts": [p["example_tasks"].count(k) for k in range(len(p["tasks"]))]} for p in self.raw_prompts])


def _last_position(example_tasks: list[int] | None, k: int) -> float:
    if example_tasks is None or k not in example_tasks:
        return float("nan")
    return float(example_tasks[::-1].index(k) + 1)


def load_run(folder: str | Path) -> ProbeResults:
    """The records and prompts of a `superpose run` folder (finished or not) as :class:`ProbeResults`."""
    from superpose.runs import RunFolder

    run = RunFolder.open(folder)
    if "mixtures" not in run.config:
        raise SuperposeError(f"{run.path}: not a probe run folder (its config has no 'mixtures'); "
                             "load_run reads folders written by `superpose run`")
    prompts = run.read_records("prompts.jsonl") if (run.path / "prompts.jsonl").is_file() else []
    return ProbeResults(run.read_records(), prompts, run.path, int(run.config.get("seed", 0)),
                        float(run.config.get("ci_level", 0.95)))


def probe(model: "str | Backend", tasks: Sequence[str], n_examples: int = 30, n_prompts: int = 10,
          weights: Sequence[float] | None = None, seed: int = 0, dtype: str = "float32",
          device: str | None = None, terminator: str = "", controls: bool = False) -> ProbeResults:
    """Run a small probe in memory (no run folder): one mixture of ``tasks``, scored on ``model``.

    ``model`` is a model string (loaded for this call) or a loaded backend (kept, for reuse). The
    prompts and numbers are those `superpose run` writes for the same mixture, seed and model; the
    mixture is named after its tasks joined by "+". ``controls`` also scores each prompt's 2K control
    prompts (leave-one-task-out, single-task), as `superpose run` with ``controls: true``.
    """
    from superpose.backends import load_backend
    from superpose.config import validate
    from superpose.experiments.probe import probe_record, requests_of
    from superpose.prompts import MixtureSpec, build_controls, build_prompts

    spec = validate(MixtureSpec, {"tasks": list(tasks), "weights": list(weights) if weights is not None else None,
                                  "n_examples": n_examples}, "probe()")
    name = "+".join(tasks)
    prompts = build_prompts(spec, n_prompts, seed)
    items = [(p, None) for p in prompts]
    if controls:
        items += [(c.prompt, c) for i in range(n_prompts) for c in build_controls(spec, seed, i)]
    backend = load_backend(model, dtype, device) if isinstance(model, str) else model
    try:
        stream = backend.stream([requests_of(p, terminator) for p, _ in items])
        label = model if isinstance(model, str) else backend.name  # as `superpose run` labels it
        records = [probe_record(label, name, items[i][0], scores) for i, scores in stream]
        for i, record in enumerate(records):
            control = items[i][1]
            if control is not None:
                record.update(control=control.kind, control_task=spec.tasks[control.task])
    finally:
        if isinstance(model, str):
            backend.close()
    return ProbeResults(records, [{"mixture": name, **p.to_dict()} for p in prompts], seed=seed)


def seed_spread(folders: Sequence[str | Path]) -> "pd.DataFrame":
    """Across sweep (or scale) run folders that differ in their seed: one row per number -- each λ's
    P(task 1), P(task 2) and other (each model's KLs and rates) -- with its mean, standard deviation,
    min and max over the seeds (:func:`superpose.metrics.seed_spread`)."""
    import json

    import pandas as pd

    from superpose.metrics import seed_spread as spread
    from superpose.runs import RunFolder, read_status

    values: dict[tuple, list[float]] = {}
    kinds, seeds = set(), []
    for folder in folders:
        run = RunFolder.open(folder)
        kind = read_status(run.path).get("kind")
        summary_path = run.path / "summary.json"
        if kind not in ("sweep", "scale") or not summary_path.is_file():
            raise SuperposeError(f"{run.path}: not a finished sweep or scale run folder")
        kinds.add(kind)
        seeds.append(run.config.get("seed"))
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        if kind == "sweep":
            for c in summary["curve"]:
                for key in ("p1", "p2", "other"):
                    values.setdefault((f"λ={c['lambda']:g}", key), []).append(c[key])
        else:
            for model, m in summary["models"].items():
                for key in ("kl", "kl_normalized", "fraction_solved", "all_solved_rate", "single_top1"):
                    if m.get(key) is not None:
                        values.setdefault((model, key), []).append(m[key])
    if len(kinds) > 1:
        raise SuperposeError(f"seed_spread: the folders mix kinds {sorted(kinds)}; give folders of one kind")
    if len(set(seeds)) != len(seeds):
        raise SuperposeError(f"seed_spread: the folders repeat a seed ({seeds}); give one folder per seed")
    return pd.DataFrame([{"where": where, "number": key, **spread(v)} for (where, key), v in values.items()])


__all__ = ["ProbeResults", "load_run", "probe", "seed_spread"]
