"""superpose: study task superposition in language models.

A prompt whose in-context examples come from several tasks makes a language model put probability
on every task's answer at once (Xiong et al., 2024). The pipeline is

    Task registry -> mixture prompts -> exact scoring of every task's answer -> metrics -> figures

and each stage is importable on its own::

    from superpose import get_task, MixtureSpec, build_prompts, load_backend, ScoreRequest

and a probe's results are pandas DataFrames: ``superpose.load_run(folder)`` and ``superpose.probe(...)``
(docs/python.md).
"""

__version__ = "0.1.0"

from superpose.errors import SuperposeError
from superpose.tasks import Task, get_task, list_tasks
from superpose.prompts import MixtureSpec, Prompt, build_prompts
from superpose.backends import Backend, ScoreRequest, load_backend
from superpose.notebook import ProbeResults, load_run, probe, seed_spread

__all__ = [
    "SuperposeError", "Task", "get_task", "list_tasks", "MixtureSpec", "Prompt", "build_prompts",
    "Backend", "ScoreRequest", "load_backend", "ProbeResults", "load_run", "probe", "seed_spread", "__version__",
]
