"""Zero-shot queries: the query line alone (``57@23=``), no examples, with every task's answer."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from superpose.errors import SuperposeError
from superpose.tasks import common_space, get_task

MAX_RESAMPLES = 1000


@dataclass
class Query:
    """One zero-shot query and each task's answer to it (answers differ across tasks)."""

    index: int
    text: str
    input: str
    answers: dict[str, str]


def zero_shot_queries(tasks: Sequence[str], n: int, seed: int) -> list[Query]:
    """Queries ``0 .. n-1``; query ``i`` comes from its own ``random.Random`` seeded by ``(seed, i)``."""
    objs = [get_task(t) for t in tasks]
    space = common_space(objs)
    queries = []
    for i in range(n):
        rng = random.Random(f"superpose-vectors:{seed}:query:{i}")
        for _ in range(MAX_RESAMPLES):
            x = rng.choice(space.queries) if space.queries is not None else space.draw_one(rng)
            answers = [t.answer(x) for t in objs]
            if len(set(answers)) == len(answers):
                break
        else:
            raise SuperposeError(f"tasks {list(tasks)} give equal answers to every query drawn")
        queries.append(Query(i, objs[0].query(x), space.render(x), dict(zip(tasks, answers))))
    return queries
