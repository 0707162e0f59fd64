"""What the explorer page asks of the model: prompts, exact scores, a λ curve, top outputs, an export.

One :class:`Explorer` holds one backend, loaded once and kept warm. Every model call goes through a
single worker thread (:meth:`Explorer.submit`), so requests queue in arrival order and two never
score at once: on a CPU, two concurrent forward passes only fight over the same cores. Scores are
the backend's own (:meth:`~superpose.backends.base.Backend.score`); top outputs are the enumeration
of :mod:`superpose.enumerate`. The functions here are plain Python and raise
:class:`~superpose.errors.SuperposeError` for anything the user can fix; the web layer (app.py)
turns those into HTTP 4xx answers.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from superpose.backends import Backend, ScoreRequest
from superpose.backends.base import Enumerating, capable
from superpose.config import config_from_dict, format_validation_error
from superpose.errors import SuperposeError
from superpose.metrics import control_statistics
from superpose.prompts import MixtureSpec, build_controls, build_prompt
from superpose.runs import RUN_NAME
from superpose.tasks import catalogue

SEPARATOR = "\n"  # between examples, and before the query (MixtureSpec's default template)
LAMBDAS = [round(i / 10, 1) for i in range(11)]
MAX_QUEUE = 8  # model calls queued or running at once; one more is refused (HTTP 429), not queued for an hour
# Example lines one /api/sweep or /api/controls may score (λ values x prompts x examples): the page's largest request,
# 1 λ x 10 prompts x 400 examples. A 150-byte request must not buy an hour of the worker's time.
MAX_SWEEP_EXAMPLES = 4000


class QueueFull(SuperposeError):
    """The worker has MAX_QUEUE calls queued or running: the web layer answers 429."""


class Cancelled(Exception):
    """The client that asked for a model call went away: the call was skipped or stopped part-way."""


class Setting(BaseModel):
    """The generator of a prompt: a mixture (tasks, weights, examples) and a seed."""

    model_config = ConfigDict(extra="forbid")
    tasks: list[str] = Field(min_length=1, max_length=8)
    weights: list[float] | None = None  # None: equal shares; normalised to sum 1 otherwise
    n_examples: int = Field(30, ge=1, le=400)
    seed: int = Field(0, ge=0)


class PromptRequest(Setting):
    """A setting, and the examples of one task moved to the start or the end (the position view)."""

    move: Literal["none", "first", "last"] = "none"
    move_task: int = Field(0, ge=0)  # index into tasks


class ScoreBody(BaseModel):
    """A prompt text (as shown, possibly edited) and every task's answer to its query."""

    model_config = ConfigDict(extra="forbid")
    prompt: str
    answers: list[str] = Field(min_length=1, max_length=8)


class OutputsBody(ScoreBody):
    """A prompt, the answers to mark, and how many outputs to list."""

    tasks: list[str] = Field(min_length=1, max_length=8)
    max_outputs: int = Field(10, ge=1, le=50)


class SweepBody(Setting):
    """Two tasks and the λ values (task 1's share) to score the prompt family at."""

    lambdas: list[float] = Field(default_factory=lambda: list(LAMBDAS), min_length=1, max_length=21)
    n_prompts: int = Field(1, ge=1, le=10)  # prompts per λ (prompt i has the same inputs at every λ)

    @model_validator(mode="after")
    def _bounded_cost(self) -> "SweepBody":
        n_lambdas = len(set(self.lambdas))
        cost = n_lambdas * self.n_prompts * self.n_examples
        if cost > MAX_SWEEP_EXAMPLES:
            raise ValueError(f"lambdas x n_prompts x n_examples = {n_lambdas} x {self.n_prompts} x "
                             f"{self.n_examples} = {cost:,} example lines, over the limit of "
                             f"{MAX_SWEEP_EXAMPLES:,} for one request; ask for fewer")
        return self


class ControlsBody(Setting):
    """The setting the page drew its prompt (prompt 0) with: its controls are built from it."""

    @model_validator(mode="after")
    def _bounded_cost(self) -> "ControlsBody":
        cost = (2 * len(self.tasks) + 1) * self.n_examples  # the prompt and its 2K controls
        if cost > MAX_SWEEP_EXAMPLES:  # the same bound as a sweep: a small request, a bounded wait
            raise ValueError(f"(2 x {len(self.tasks)} tasks + 1) prompts x {self.n_examples} examples = {cost:,} "
                             f"example lines, over the limit of {MAX_SWEEP_EXAMPLES:,} for one request; ask for "
                             "fewer examples or tasks")
        return self


class ExportBody(Setting):
    """A setting, and how many prompts the exported probe draws."""

    n_prompts: int = Field(20, ge=1, le=10000)
    name: str = Field("explore", pattern=RUN_NAME.pattern, max_length=100)  # `superpose run` makes a folder of it


def mixture(setting: Setting) -> MixtureSpec:
    """The :class:`MixtureSpec` of a setting (weights normalised), or a SuperposeError naming the field."""
    weights = setting.weights
    if weights is not None:
        if len(weights) != len(setting.tasks) or any(not math.isfinite(w) or w < 0 for w in weights) \
                or max(weights) <= 0:
            raise SuperposeError(f"weights: expected {len(setting.tasks)} finite non-negative numbers, not all 0; "
                                 f"got {weights}")
        scaled = [w / max(weights) for w in weights]  # first to [0, 1]: the sum of [1e308, 1e308] overflows
        weights = [w / math.fsum(scaled) for w in scaled]
    try:
        return MixtureSpec(tasks=setting.tasks, weights=weights, n_examples=setting.n_examples,
                           example_separator=SEPARATOR)
    except ValidationError as e:
        raise SuperposeError(format_validation_error(e, "mixture").replace("\n", "; ")) from None


def families() -> list[dict]:
    """Task families that can be mixed (two tasks or more), each task with an example line."""
    return [{"family": family, "tasks": [{"name": e.task, "example": e.example, "description": e.description}
                                         for e in entries]}
            for family, entries in catalogue().items() if len(entries) >= 2]


def make_prompt(request: PromptRequest) -> dict:
    """Prompt 0 of the setting's mixture; with ``move``, one task's examples moved to the start or end.

    Moving keeps every example line and the order within each group, so only positions change.
    """
    spec = mixture(request)
    prompt = build_prompt(spec, request.seed, 0)
    lines = prompt.text.split(SEPARATOR)
    if len(lines) != len(prompt.example_tasks) + 1:
        raise SuperposeError(f"tasks {request.tasks}: an example spans several lines; the explorer shows one "
                             "example per line")
    examples, query = list(zip(lines[:-1], prompt.example_tasks)), lines[-1]
    if request.move != "none":
        if request.move_task >= len(request.tasks):
            raise SuperposeError(f"move_task: {request.move_task} is not an index into tasks "
                                 f"(0 .. {len(request.tasks) - 1})")
        moved = [e for e in examples if e[1] == request.move_task]
        rest = [e for e in examples if e[1] != request.move_task]
        examples = moved + rest if request.move == "first" else rest + moved
    text = SEPARATOR.join([line for line, _ in examples] + [query])
    return {"text": text, "examples": [{"line": line, "task": k} for line, k in examples], "query": query,
            "tasks": prompt.tasks, "answers": prompt.answers, "shares": prompt.in_context_distribution,
            "query_input": prompt.query_input}


class Explorer:
    """One warm backend and the single worker thread that runs every call to it."""

    def __init__(self, backend: Backend, model: str, dtype: str = "float32", device: str | None = None,
                 max_queue: int = MAX_QUEUE):
        self.backend, self.model, self.dtype, self.device = backend, model, dtype, device
        # One thread runs every model call, in arrival order: the queue is the executor's own.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="superpose-model")
        self.max_queue = max_queue
        self._lock = threading.Lock()
        self._pending = 0  # calls queued or running
        self._cancelled = 0  # calls skipped or stopped because their client went away
        self._cancel: threading.Event | None = None  # the running call's (set on the worker thread)
        # Asked once, here: a remote backend's provenance asks its server, which the event loop must not wait on.
        self._info = self._model_info()

    def submit(self, fn: Callable[..., Any], *args: Any, cancel: threading.Event | None = None) -> Future:
        """Queue ``fn(*args)`` behind every earlier model call; the result arrives as a Future. Once
        ``cancel`` is set, the call is skipped, or stopped at its next check (:meth:`check_cancelled`).
        A full queue is a :class:`QueueFull` error at once."""
        with self._lock:
            if self._pending >= self.max_queue:
                raise QueueFull(f"the model is busy: {self._pending} requests are queued or running, the limit "
                                f"is {self.max_queue}; try again when one has finished")
            self._pending += 1
        future = self._worker.submit(self._call, fn, args, cancel)
        future.add_done_callback(self._finished)
        return future

    def _call(self, fn: Callable[..., Any], args: tuple, cancel: threading.Event | None) -> Any:
        self._cancel = cancel
        try:
            self.check_cancelled()
            return fn(*args)
        finally:
            self._cancel = None

    def _finished(self, future: Future) -> None:
        with self._lock:
            self._pending -= 1
            if future.cancelled() or isinstance(future.exception(), Cancelled):
                self._cancelled += 1

    def check_cancelled(self) -> None:
        """Raise :class:`Cancelled` when the running call's client has gone (called between units of work)."""
        if self._cancel is not None and self._cancel.is_set():
            raise Cancelled("the client went away")

    def close(self) -> None:
        """Stop the worker (after the queued calls) and free the model."""
        self._worker.shutdown(wait=True)
        self.backend.close()

    def info(self) -> dict:
        """The model the page talks to, what it can do, and the queue of model calls."""
        with self._lock:
            queue = {"pending": self._pending, "limit": self.max_queue, "cancelled": self._cancelled}
        return {**self._info, "queue": queue}

    def _model_info(self) -> dict:
        p = self.backend.provenance
        return {"model": self.model, "name": self.backend.name, "dtype": self.dtype,
                "max_context": self.backend.max_context, "n_parameters": p.get("n_parameters"),
                "enumerate": "enumerate" in type(self.backend).capabilities}

    # --- model calls (run on the worker) --------------------------------------------------------

    def score(self, body: ScoreBody) -> dict:
        """Each answer's exact P after the prompt, the "other" mass and P normalised over the answers."""
        if not body.prompt.strip():
            raise SuperposeError("prompt: empty; write some examples and a query, or draw a prompt")
        if any(not a for a in body.answers) or len(set(body.answers)) != len(body.answers):
            raise SuperposeError(f"answers: expected distinct non-empty strings, got {body.answers}")
        scores = self.backend.score_one(body.prompt, body.answers)  # fails on a prompt beyond the context
        logprobs = [s.logprob for s in scores]
        probs = [math.exp(lp) for lp in logprobs]
        total = math.fsum(probs)
        return {"logprobs": logprobs, "probs": probs, "other": 1.0 - total,
                "normalized": [p / total if total > 0 else 0.0 for p in probs],
                "n_tokens": self.backend.count_tokens(body.prompt), "straddles": [s.straddles for s in scores]}

    def sweep(self, body: SweepBody) -> dict:
        """P(task 1), P(task 2) and the rest, averaged over prompts, at each λ (task 1's share)."""
        if len(body.tasks) != 2:
            raise SuperposeError(f"tasks: a λ sweep needs exactly two tasks, got {len(body.tasks)}")
        if any(not 0 <= lam <= 1 for lam in body.lambdas):
            raise SuperposeError(f"lambdas: every λ must lie in [0, 1], got {body.lambdas}")
        points = []
        for lam in sorted(set(body.lambdas)):
            self.check_cancelled()  # an abandoned sweep stops between λ points
            spec = mixture(Setting(tasks=body.tasks, weights=[lam, 1 - lam], n_examples=body.n_examples))
            prompts = [build_prompt(spec, body.seed, i) for i in range(body.n_prompts)]
            probs = [[s.prob for s in scored] for scored in
                     self.backend.score([ScoreRequest(p.text, p.answers) for p in prompts])]  # [n_prompts, 2]
            p1 = math.fsum(p[0] for p in probs) / len(probs)
            p2 = math.fsum(p[1] for p in probs) / len(probs)
            points.append({"lambda": lam, "p1": p1, "p2": p2, "other": 1.0 - p1 - p2})
        return {"tasks": body.tasks, "points": points}

    def controls(self, body: ControlsBody) -> dict:
        """Prompt 0's in-context controls: per task, P(answer) mixed, without the task's examples (given to
        the other tasks), with every example the task's, and the in-context effect (mixed − without).

        The 2K control prompts are :func:`~superpose.prompts.build_controls`'s, the numbers
        :func:`~superpose.metrics.control_statistics`'s (one prompt: no interval), as in a probe.
        """
        if len(body.tasks) < 2:
            raise SuperposeError(f"tasks: controls need two tasks or more, got {len(body.tasks)}")
        spec = mixture(body)
        prompt = build_prompt(spec, body.seed, 0)
        controls = build_controls(spec, body.seed, 0)  # K "without", then K "single"
        prompts = [prompt] + [c.prompt for c in controls]
        logp = [[s.logprob for s in scored] for scored in
                self.backend.score([ScoreRequest(p.text, p.answers) for p in prompts])]  # [1 + 2K, K]
        n = len(spec.tasks)
        without, single = logp[1:1 + n], logp[1 + n:]
        stats = control_statistics(spec.tasks, [logp[0]], [[row] for row in without], [[row] for row in single],
                                   rng=np.random.default_rng(body.seed))
        return {"tasks": spec.tasks, "answers": prompt.answers, "text": prompt.text, "n_control_prompts": len(controls),
                "controls": [{"task": task, "mixed": math.exp(logp[0][k]), "without": stats[task]["mean_without"],
                              "single": stats[task]["mean_single"], "effect": stats[task]["effect"],
                              "ratio_to_single": stats[task]["ratio_to_single"]}
                             for k, task in enumerate(spec.tasks)]}

    def outputs(self, body: OutputsBody) -> dict:
        """The most probable complete outputs (ending at a newline), each with the task it answers, if any."""
        from superpose.enumerate import EnumerateSettings, OutputEnumerator

        if not body.prompt.strip():
            raise SuperposeError("prompt: empty; write some examples and a query, or draw a prompt")
        if len(body.tasks) != len(body.answers):
            raise SuperposeError(f"tasks and answers: expected one answer per task, got {len(body.tasks)} tasks "
                                 f"and {len(body.answers)} answers")
        # Small limits keep a click within seconds on a CPU; the page shows the mass left unexplored.
        settings = EnumerateSettings(max_outputs=body.max_outputs, max_expansions=64, max_tokens=8)
        found = OutputEnumerator(capable(self.backend, Enumerating, "top outputs"), settings).enumerate(body.prompt)
        task_of = dict(zip(body.answers, body.tasks))
        return {"outputs": [{"text": o.text, "prob": o.prob, "eos": o.ended_by == "eos",
                             "task": task_of.get(o.text) if o.ended_by == "terminator" else None}
                            for o in found.outputs],
                "covered": found.covered_mass, "unexplored": found.unexplored_mass}

    # --- no model needed ------------------------------------------------------------------------

    def export(self, body: ExportBody) -> str:
        """The setting as a probe config (YAML) that `superpose run` accepts; validated before it is returned."""
        from superpose.experiments.probe import ProbeConfig

        spec = mixture(body)
        config = {"name": body.name, "description": "written by superpose serve", "models": [self.model],
                  "dtype": self.dtype, "seed": body.seed, "n_prompts": body.n_prompts,
                  "mixtures": [{"name": "-".join(spec.tasks), "tasks": spec.tasks, "weights": spec.shares,
                                "n_examples": spec.n_examples}]}
        if self.device is not None:
            config["device"] = self.device
        config_from_dict(ProbeConfig, config, "export")  # raises on anything `superpose run` would refuse
        return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)

