import pytest
from pydantic import ValidationError

from superpose.prompts import MixtureSpec, build_prompt, build_prompts, largest_remainder_counts
from superpose.tasks import get_task


def test_largest_remainder_counts_are_exact():
    assert largest_remainder_counts([1 / 3] * 3, 60) == [20, 20, 20]
    assert largest_remainder_counts([0.25] * 4, 80) == [20] * 4
    assert largest_remainder_counts([0.5, 0.3, 0.2], 7) == [4, 2, 1]  # quotas 3.5, 2.1, 1.4
    assert largest_remainder_counts([1.0, 0.0], 5) == [5, 0]
    assert sum(largest_remainder_counts([0.1] * 10, 13)) == 13


def test_prompt_records_tasks_answers_and_counts():
    spec = MixtureSpec(tasks=["copy_op1", "copy_op2", "op1_plus_op2"], n_examples=60)
    p = build_prompt(spec, seed=3, index=0)
    assert p.counts == [20, 20, 20]
    lines = p.text.split("\n")
    assert len(lines) == 61 and lines[-1] == p.query_input + "="
    for line, x, k in zip(lines[:-1], p.example_inputs, p.example_tasks):
        a, b = map(int, x.split("@"))
        assert line == get_task(p.tasks[k]).example((a, b))
    assert p.query_input not in p.example_inputs
    assert len(set(p.example_inputs)) == 60
    assert len(set(p.answers)) == 3
    a, b = map(int, p.query_input.split("@"))
    assert p.answers == [str(a), str(b), str(a + b)]


def test_same_seed_same_prompts_and_order_matters():
    spec = MixtureSpec(tasks=["capital", "continent", "country_upper"], n_examples=30)
    first = [p.text for p in build_prompts(spec, 5, seed=1)]
    assert first == [p.text for p in build_prompts(spec, 5, seed=1)]
    assert first != [p.text for p in build_prompts(spec, 5, seed=2)]
    # prompt i does not depend on how many prompts were drawn (resume rebuilds the same ones)
    assert build_prompt(spec, 1, 4).text == first[4]
    # task order in the prompt is random, not blocked
    assert len({tuple(p.example_tasks) for p in build_prompts(spec, 5, 1)}) == 5


def test_weights_give_exact_counts_and_iid_draws_vary():
    spec = MixtureSpec(tasks=["first_letter", "last_letter"], weights=[0.75, 0.25], n_examples=40)
    assert build_prompt(spec, 0, 0).counts == [30, 10]
    iid = spec.model_copy(update={"counts": "iid"})
    counts = {tuple(build_prompt(iid, 0, i).counts) for i in range(10)}
    assert len(counts) > 1 and all(sum(c) == 40 for c in counts)


def test_query_answers_are_distinct_even_where_tasks_often_agree():
    # identity and square agree on 0 and 1; the query must avoid them.
    spec = MixtureSpec(tasks=["identity", "square"], n_examples=90)
    for p in build_prompts(spec, 20, seed=0):
        assert p.answers[0] != p.answers[1]


@pytest.mark.parametrize("kwargs, message", [
    ({"tasks": ["copy_op1", "copy_op2"], "weights": [0.6, 0.6]}, "weights must sum to 1"),
    ({"tasks": ["copy_op1", "copy_op2"], "weights": [1.5, -0.5]}, "weights must be non-negative"),
    ({"tasks": ["copy_op1", "copy_op2"], "weights": [1.0]}, "weights has 1 entries but tasks has 2"),
    ({"tasks": ["capital", "continent"], "n_examples": 200}, "needs 201 distinct inputs .* have only 193"),
    ({"tasks": ["copy_op1", "capital"]}, "cannot be mixed in one prompt"),
    ({"tasks": ["copy_op1", "nope"]}, "unknown task 'nope'"),
    ({"tasks": ["copy_op1"], "template": "{examples}"}, "placeholders"),
])
def test_bad_mixtures_are_rejected_with_the_field(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        MixtureSpec(**kwargs)
