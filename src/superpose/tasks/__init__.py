"""Task registry. Built-in families: arithmetic (``A@B=``, ``A@B@C->``, ``x->``, ``x,y``), digits
(``d->``), lists (the i-th element), numerals (``A+B->``), countries (``Country->``), words
(``word->``), characters (scratch training); user tasks come from YAML/CSV/JSONL files.
``superpose tasks`` prints :func:`catalogue` grouped by family."""

from superpose.tasks.base import (InputSpace, Task, check_mixable, common_space, get_task, list_tasks,
                                  register, register_family)
from superpose.tasks.catalogue import catalogue, render_catalogue
from superpose.tasks.user import load_task_file, load_task_files

__all__ = ["InputSpace", "Task", "check_mixable", "common_space", "get_task", "list_tasks", "register",
           "register_family", "load_task_file", "load_task_files", "catalogue", "render_catalogue"]
