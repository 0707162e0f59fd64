"""The task-vector experiment: extract -> layers -> project -> interpolate -> steer, in one run folder.

Each step reads what the earlier steps left in the run folder and writes its own JSON and figure:

    vectors.safetensors   per-prompt separator states of every group (extract)
    layers.json           P(correct answer) per task and layer, the chosen layer (layers)
    projection.json       2-D coordinates of every prompt's vector, mixture positions (project)
    interpolation.json    P(each answer) along the λ grid and after real mixed prompts (interpolate)
    steering.json         P(each answer) against α per steering target (steer)
    figures/vectors_{layers,projection,interpolation,steering}.png
    summary.json, summary.md  the headline numbers, once every step is done

A step asked for explicitly is recomputed; a step another one needs is computed only when its output
is missing, so ``superpose vectors --resume RUN_FOLDER`` resumes an interrupted run.
:func:`run_vectors` runs every step; :func:`open_vectors` opens the run for one step at a time.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from superpose.errors import SuperposeError
from superpose.experiments.base import open_run
from superpose.backends import check_model, load_backend
from superpose.backends.devices import resolve_device
from superpose.backends.base import Residual, capable
from superpose.display.console import console
from superpose.runs import DEFAULT_ROOT, RunFolder
from superpose.vectors import figures
from superpose.vectors.config import VectorsConfig
from superpose.vectors.extract import VECTORS_FILE, VectorStore, extract_prompts, group_prompts
from superpose.vectors.interpolate import (interpolate, interpolation_vectors, lambda_grid, monotonicity,
                                           real_mixture_curve)
from superpose.vectors.layers import best_layer, layer_sweep
from superpose.vectors.project import affine_coordinates, fit_projection
from superpose.vectors.queries import zero_shot_queries
from superpose.vectors.steer import STEER_PROMPT_OFFSET, steer

STEPS = ("extract", "layers", "project", "interpolate", "steer")
OUTPUTS = {"layers": "layers.json", "project": "projection.json", "interpolate": "interpolation.json",
           "steer": "steering.json"}


def run_vectors(config: VectorsConfig | None, *, root: str | Path = DEFAULT_ROOT, resume: str | Path | None = None,
                backend: Residual | None = None, progress: bool = True) -> tuple[RunFolder, dict]:
    """Run (or resume) every step not yet done; returns the run folder and its summary.

    ``backend``: ``config.model`` already loaded (notebooks, tests); by default it loads on first need.
    """
    exp = open_vectors(config, root=root, resume=resume, backend=backend)
    return exp.run, exp.run_all()


def open_vectors(config: VectorsConfig | None, *, root: str | Path = DEFAULT_ROOT, resume: str | Path | None = None,
                 backend: Residual | None = None) -> "VectorsExperiment":
    """A new run folder for ``config``, or (``resume``) the existing one; its steps run on demand."""
    if resume is None:
        assert config is not None
        resolve_device(config.device)
        check_model(config.model, needs=("residual",), purpose="superpose vectors")
    elif config is not None and config.layers.layer is not None:  # a layer that was not extracted: refused
        extracted = VectorStore(Path(resume) / VECTORS_FILE).layers  # before config.yaml records it
        if extracted and config.layers.layer not in extracted:
            raise SuperposeError(f"layer {config.layers.layer} was not extracted (extracted: {extracted})")
    run, config = open_run("vectors", VectorsConfig, config, root, resume)
    console.print(f"{'resuming' if resume is not None else 'run folder:'} [bold]{run.path}[/bold]")
    return VectorsExperiment(run, config, backend)


def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd)


class VectorsExperiment:
    """One task-vector run: its folder, config, the model (loaded on first need) and the stored vectors."""

    def __init__(self, run: RunFolder, config: VectorsConfig, backend: Residual | None = None):
        """``backend``: an already loaded model (notebooks, tests); by default ``config.model`` loads on first need."""
        self.run, self.config = run, config
        self._lm: Residual | None = backend
        if backend is not None:
            self.run.update_config("models", {config.model: backend.provenance})
        self._store: VectorStore | None = None

    # -- shared resources ---------------------------------------------------------------------------

    @property
    def lm(self) -> Residual:
        """The model, loaded once and its provenance recorded in config.yaml."""
        if self._lm is None:
            console.print(f"loading model [bold]{self.config.model}[/bold] ({self.config.dtype})")
            backend = capable(load_backend(self.config.model, self.config.dtype, self.config.device), Residual,
                              "superpose vectors")
            self._lm = backend
            self.run.update_config("models", {self.config.model: backend.provenance})
        return self._lm

    @property
    def store(self) -> VectorStore:
        """The run's stored vectors."""
        if self._store is None:
            self._store = VectorStore(self.run.path / VECTORS_FILE)
        return self._store

    def _read(self, step: str) -> dict:
        path = self.run.path / OUTPUTS[step]
        if not path.exists():
            raise SuperposeError(f"{self.run.path}: step '{step}' has not run")
        return json.loads(path.read_text())

    def _done(self, step: str) -> bool:
        if step == "extract":
            return all(self.store.has(g.name) for g in self.config.groups())
        return (self.run.path / OUTPUTS[step]).exists()

    def _need(self, step: str) -> None:
        if not self._done(step):
            console.print(f"step '{step}' is needed first")
            self.step(step)

    def step(self, name: str) -> dict | None:
        """Run one step by name."""
        fn: dict[str, Callable[[], dict | None]] = {
            "extract": self.extract, "layers": self.choose_layer, "project": self.project,
            "interpolate": self.interpolate, "steer": self.steer}
        if name not in fn:
            raise SuperposeError(f"unknown step '{name}'; steps: {', '.join(STEPS)}")
        return fn[name]()

    def run_all(self) -> dict:
        """Every step not yet done, in order, then the summary."""
        for s in STEPS:
            if not self._done(s):
                self.step(s)
        return self.write_summary()

    # -- 1. extraction ------------------------------------------------------------------------------

    def layers_to_extract(self) -> list[int]:
        """The configured layers (checked against the model), or all of them."""
        total = self.lm.n_layers
        wanted = self.config.extract.layers
        if wanted is None:
            return list(range(total))
        bad = [x for x in wanted if x >= total]
        if bad:
            raise SuperposeError(f"extract.layers: {bad} out of range; '{self.config.model}' has {total} layers")
        return sorted(set(wanted))

    def extract(self) -> None:
        """Separator states of every group's prompts, stored group by group (resumable)."""
        cfg = self.config
        layers = self.layers_to_extract()
        for g in cfg.groups():
            if self.store.has(g.name):
                continue
            prompts = group_prompts(g, cfg.extract.n_prompts, cfg.extract.n_examples, cfg.seed, cfg.extract.counts)
            states = extract_prompts(self.lm, [p.text for p in prompts], layers, cfg.extract.batch_size,
                                     f"extract {g.name}")  # [n_prompts, n_layers, d_model]
            self.store.add(g, states, layers)
        console.print(f"vectors: {self.store.path} ({len(self.store.groups)} groups, layers "
                      f"{layers[0]}..{layers[-1]})")

    # -- 2. layer choice ----------------------------------------------------------------------------

    def choose_layer(self) -> dict:
        """Patch each layer's single-task vector into zero-shot queries; pick the best layer."""
        self._need("extract")
        cfg, store = self.config, self.store
        layers = store.layers
        queries = zero_shot_queries(cfg.tasks, cfg.layers.n_queries, cfg.seed)
        task_vectors = {t: store.means(t) for t in cfg.tasks}  # [n_layers, d_model] each
        logp = layer_sweep(self.lm, task_vectors, layers, queries)  # [T, Q, 1+L, T]
        best, correct = best_layer(logp, layers)
        baseline = np.stack([np.exp(logp[i, :, 0, i]).mean() for i in range(len(cfg.tasks))])  # [T]
        chosen = cfg.layers.layer if cfg.layers.layer is not None else best
        result = {
            "layers": layers, "tasks": cfg.tasks, "best_layer": best, "chosen_layer": chosen,
            "best_layer_per_task": {t: int(layers[int(np.argmax(correct[i]))]) for i, t in enumerate(cfg.tasks)},
            "p_correct": {t: [_r(x) for x in correct[i]] for i, t in enumerate(cfg.tasks)},
            "p_correct_zero_shot": {t: _r(baseline[i]) for i, t in enumerate(cfg.tasks)},
            "p_correct_at_chosen": {t: _r(correct[i][layers.index(chosen)]) for i, t in enumerate(cfg.tasks)},
            "queries": [q.text for q in queries],
            "logprobs": logp.round(5).tolist(),  # [task vector, query, 1 + layer (0: none), answer]
        }
        self.run.write_json(OUTPUTS["layers"], result)
        figures.plot_layers(layers, correct, baseline, cfg.tasks, chosen, self.run.figure_path("vectors_layers"),
                            f"{cfg.model}: task vector patched into {len(queries)} zero-shot queries")
        console.print(f"best layer {best} (mean P(correct) {correct.mean(axis=0).max():.3f}); using layer {chosen}")
        return result

    def layer(self) -> int:
        """The layer the later steps use: the configured one, or the one chosen by the layers step."""
        if self.config.layers.layer is not None:
            if self.config.layers.layer not in self.store.layers and self.store.layers:
                raise SuperposeError(f"layers.layer={self.config.layers.layer} was not extracted "
                                     f"(extracted: {self.store.layers})")
            return self.config.layers.layer
        self._need("layers")
        return int(self._read("layers")["chosen_layer"])

    # -- 3. projection ------------------------------------------------------------------------------

    def project(self) -> dict:
        """2-D projection fitted on single-task vectors; mixtures projected in and located."""
        self._need("extract")
        cfg, store = self.config, self.store
        layer = self.layer()
        groups = cfg.groups()
        single = [g.name for g in groups if g.single]
        x = torch.cat([store.states(t, layer) for t in single]).numpy()  # [sum n, d_model]
        labels = [i for i, t in enumerate(single) for _ in range(store.states(t, layer).shape[0])]
        proj = fit_projection(x, labels, cfg.project.method, cfg.seed)
        points = {g.name: proj.transform(store.states(g.name, layer).numpy()) for g in groups}  # [n, 2] each
        centroid_2d = {t: points[t].mean(axis=0) for t in single}
        centroid_full = {t: store.mean(t, layer).double().numpy() for t in single}
        positions = {}
        for g in groups:
            if g.single:
                continue
            c2, r2 = affine_coordinates(points[g.name].mean(axis=0), np.stack([centroid_2d[t] for t in g.tasks]))
            cf, rf = affine_coordinates(store.mean(g.name, layer).double().numpy(),
                                        np.stack([centroid_full[t] for t in g.tasks]))
            positions[g.name] = {
                "tasks": g.tasks, "weights": g.weights,
                "coordinates_2d": [_r(v) for v in c2], "residual_2d": _r(r2),
                "between_2d": bool(np.all((c2 > 0) & (c2 < 1))),
                "coordinates_full": [_r(v) for v in cf], "residual_full": _r(rf),
                "between_full": bool(np.all((cf > 0) & (cf < 1))),
            }
        axis_names = ("LD1", "LD2" if len(single) > 2 else "PC1 of the rest") if proj.method == "lda" else ("PC1", "PC2")
        result = {"layer": layer, "method": proj.method, "axis_names": list(axis_names),
                  "centroids": {g.name: [_r(v) for v in points[g.name].mean(axis=0)] for g in groups},
                  "points": {k: v.round(4).tolist() for k, v in points.items()},
                  "labels": {g.name: g.label for g in groups}, "mixture_positions": positions}
        self.run.write_json(OUTPUTS["project"], result)
        figures.plot_projection(points, result["labels"], single, self.run.figure_path("vectors_projection"),
                                axis_names, f"{cfg.model}, layer {layer}: {proj.method.upper()} of task vectors "
                                f"(fitted on single-task prompts)")
        for name, p in positions.items():
            console.print(f"{name}: affine coordinates 2-D {p['coordinates_2d']} (between: {p['between_2d']}), "
                          f"full {p['coordinates_full']} (between: {p['between_full']})")
        return result

    # -- 4. interpolation ---------------------------------------------------------------------------

    def interpolate(self) -> dict:
        """P(each answer) along v(λ), in one batch per query, beside real mixed prompts."""
        self._need("extract")
        cfg, store = self.config, self.store
        layer = self.layer()
        t1, t2 = cfg.pair()
        lambdas = lambda_grid(cfg.interpolate.n_points)
        v1, v2 = store.mean(t1, layer), store.mean(t2, layer)
        # Mixed-prompt vectors of exactly this pair ride along as extra rows of the same batch.
        mixes = [g for g in cfg.groups() if not g.single and set(g.tasks) == {t1, t2}]
        extra = [store.mean(g.name, layer) for g in mixes]
        vectors = torch.cat([interpolation_vectors(v1, v2, lambdas), *(e[None] for e in extra)])  # [n+m, d_model]
        queries = zero_shot_queries(cfg.tasks, cfg.interpolate.n_queries, cfg.seed)
        answer_tasks = [t1, t2] + [t for t in cfg.tasks if t not in (t1, t2)]
        logp = interpolate(self.lm, queries, answer_tasks, layer, vectors)  # [Q, n+m, K]
        probs = np.exp(logp).mean(axis=0)  # [n+m, K]
        curve = probs[: len(lambdas)]
        mix_points = []
        for i, g in enumerate(mixes):
            lam = g.weights[g.tasks.index(t2)]
            mix_points.append({"group": g.name, "lambda": lam, "probs": [_r(v) for v in probs[len(lambdas) + i, :2]]})
        result = {
            "layer": layer, "pair": [t1, t2], "answer_tasks": answer_tasks, "lambdas": lambdas,
            "p_patched": {t: [_r(v) for v in curve[:, k]] for k, t in enumerate(answer_tasks)},
            "p_rest_patched": [_r(v) for v in 1 - curve[:, :2].sum(axis=1)],
            "monotonicity": {t1: monotonicity(curve[:, 0]), t2: monotonicity(curve[:, 1])},
            "patched_mixture_vectors": mix_points, "queries": [q.text for q in queries],
        }
        real = None
        if cfg.interpolate.n_prompts > 0:
            rl = cfg.interpolate.real_lambdas
            real_logp = real_mixture_curve(self.lm, t1, t2, rl, cfg.interpolate.n_prompts, cfg.extract.n_examples,
                                           cfg.seed, cfg.extract.counts)  # [n_real, P, 2]
            real = np.exp(real_logp).mean(axis=1)  # [n_real, 2]
            result["real"] = {"lambdas": rl, "p": {t: [_r(v) for v in real[:, k]] for k, t in enumerate([t1, t2])},
                              "p_rest": [_r(v) for v in 1 - real.sum(axis=1)]}
        self.run.write_json(OUTPUTS["interpolate"], result)
        figures.plot_interpolation(lambdas, curve[:, :2], [t1, t2], self.run.figure_path("vectors_interpolation"),
                                   cfg.interpolate.real_lambdas if real is not None else None, real,
                                   [(m["lambda"], np.array(m["probs"])) for m in mix_points], layer)
        m = result["monotonicity"][t1]
        console.print(f"P({t1}) along λ: {curve[0, 0]:.3f} -> {curve[-1, 0]:.3f}, {m['direction']}, "
                      f"{m['steps_against']} steps against (monotone: {m['monotone']})")
        return result

    # -- 5. steering --------------------------------------------------------------------------------

    def steer(self) -> dict:
        """Add α (v_target − v_mixture) at the separator of held-out mixed prompts."""
        self._need("extract")
        cfg, store = self.config, self.store
        layer = self.layer()
        g = cfg.steer_group()
        targets = list(cfg.steer.targets or g.tasks)
        v_mix = store.mean(g.name, layer)
        directions = torch.stack([store.mean(t, layer) - v_mix for t in targets])  # [n_targets, d_model]
        prompts = group_prompts(g, cfg.steer.n_prompts, cfg.extract.n_examples, cfg.seed, cfg.extract.counts,
                                offset=STEER_PROMPT_OFFSET)
        logp = steer(self.lm, prompts, layer, directions, cfg.steer.alphas)  # [P, n_targets, A, K]
        probs = np.exp(logp).mean(axis=0)  # [n_targets, A, K]
        result = {
            "layer": layer, "mixture": g.name, "mixture_tasks": g.tasks, "targets": targets,
            "alphas": cfg.steer.alphas,
            "p": {tg: {t: [_r(v) for v in probs[i, :, k]] for k, t in enumerate(g.tasks)} for i, tg in enumerate(targets)},
            "p_rest": {tg: [_r(v) for v in 1 - probs[i].sum(axis=1)] for i, tg in enumerate(targets)},
            "direction_norms": {t: _r(directions[i].norm().item(), 3) for i, t in enumerate(targets)},
        }
        self.run.write_json(OUTPUTS["steer"], result)
        figures.plot_steering(cfg.steer.alphas, probs, targets, g.tasks, self.run.figure_path("vectors_steering"),
                              f"{cfg.model}, layer {layer}: steering mixed prompts ({g.label})")
        for i, tg in enumerate(targets):
            k = g.tasks.index(tg) if tg in g.tasks else None
            if k is not None:
                console.print(f"steer toward {tg}: P({tg}) {probs[i, 0, k]:.3f} (α=0) -> "
                              f"{probs[i, -1, k]:.3f} (α={cfg.steer.alphas[-1]})")
        return result

    # -- summary ------------------------------------------------------------------------------------

    def write_summary(self) -> dict:
        """Headline numbers of every finished step into summary.json / summary.md; marks the run complete."""
        s: dict = {"config": self.config.name, "model": self.config.model}
        if self._done("layers"):
            lay = self._read("layers")
            s["layers"] = {k: lay[k] for k in ("best_layer", "chosen_layer", "best_layer_per_task",
                                              "p_correct_at_chosen", "p_correct_zero_shot")}
        if self._done("project"):
            pr = self._read("project")
            s["projection"] = {"method": pr["method"], "layer": pr["layer"], "mixture_positions": pr["mixture_positions"]}
        if self._done("interpolate"):
            it = self._read("interpolate")
            t1 = it["pair"][0]
            s["interpolation"] = {"pair": it["pair"], "layer": it["layer"], "lambdas": it["lambdas"],
                                  "p_patched": {t: it["p_patched"][t] for t in it["pair"]},
                                  "monotonicity": it["monotonicity"][t1], "real": it.get("real")}
        if self._done("steer"):
            st = self._read("steer")
            s["steering"] = {k: st[k] for k in ("mixture", "targets", "alphas", "p", "p_rest")}
        self.run.write_text("summary.md", summary_markdown(s))
        if all(self._done(x) for x in STEPS):
            self.run.finish(s)
        else:
            self.run.write_json("summary.json", s)
        return s

    def close(self) -> None:
        """Drop the model."""
        self._lm = None
        gc.collect()


def summary_markdown(s: dict) -> str:
    """The summary as Markdown."""
    out = [f"# Task vectors `{s['config']}` on {s['model']}\n"]
    if "layers" in s:
        lay = s["layers"]
        out.append(f"## Layer choice\n\nbest layer **{lay['best_layer']}** (used: {lay['chosen_layer']}); "
                   f"per task {lay['best_layer_per_task']}\n")
        out.append("| task | P(correct), zero-shot | P(correct), patched at chosen layer |\n|---|---|---|")
        for t, p in lay["p_correct_at_chosen"].items():
            out.append(f"| {t} | {lay['p_correct_zero_shot'][t]:.3f} | {p:.3f} |")
        out.append("")
    if "projection" in s:
        pr = s["projection"]
        out.append(f"## Projection ({pr['method'].upper()}, layer {pr['layer']})\n")
        out.append("| mixture | weights | affine coords (2-D) | between (2-D) | affine coords (d_model) | residual (d_model) | between (d_model) |")
        out.append("|---|---|---|---|---|---|---|")
        for name, p in pr["mixture_positions"].items():
            out.append(f"| {name} | {[round(w, 2) for w in p['weights']]} | {p['coordinates_2d']} | {p['between_2d']} "
                       f"| {p['coordinates_full']} | {p['residual_full']:.3f} | {p['between_full']} |")
        out.append("")
    if "interpolation" in s:
        it = s["interpolation"]
        t1, t2 = it["pair"]
        out.append(f"## Interpolation (layer {it['layer']})\n\n| λ | P({t1}) | P({t2}) |\n|---|---|---|")
        for i, lam in enumerate(it["lambdas"]):
            out.append(f"| {lam:.2f} | {it['p_patched'][t1][i]:.3f} | {it['p_patched'][t2][i]:.3f} |")
        m = it["monotonicity"]
        out.append(f"\nP({t1}) {m['direction']}, steps against the direction: {m['steps_against']} "
                   f"(largest {m['largest_step_against']:.4f}), Spearman ρ with λ {m['spearman_rho']:.3f}\n")
        if it.get("real"):
            out.append(f"| real prompts λ | P({t1}) | P({t2}) |\n|---|---|---|")
            for i, lam in enumerate(it["real"]["lambdas"]):
                out.append(f"| {lam:.2f} | {it['real']['p'][t1][i]:.3f} | {it['real']['p'][t2][i]:.3f} |")
            out.append("")
    if "steering" in s:
        st = s["steering"]
        out.append(f"## Steering mixed prompts ({st['mixture']})\n")
        for tg in st["targets"]:
            out.append(f"toward **{tg}**:\n\n| α | " + " | ".join(f"P({t})" for t in st["p"][tg]) + " | rest |")
            out.append("|---|" + "---|" * (len(st["p"][tg]) + 1))
            for i, a in enumerate(st["alphas"]):
                out.append(f"| {a:g} | " + " | ".join(f"{v[i]:.3f}" for v in st["p"][tg].values())
                           + f" | {st['p_rest'][tg][i]:.3f} |")
            out.append("")
    return "\n".join(out)
