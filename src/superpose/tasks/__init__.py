"""Task registry. Built-in families: arithmetic (``A@B=``, small maps), numerals (``A+B->``),
countries (``Country->``), words (``word->``); user tasks come from YAML/CSV/JSONL files."""

from superpose.tasks.base import InputSpace, Task, check_mixable, get_task, list_tasks, register
from superpose.tasks.user import load_task_file

__all__ = ["InputSpace", "Task", "check_mixable", "get_task", "list_tasks", "register",
           "load_task_file"]
