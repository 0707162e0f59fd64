import math

import numpy as np
import pytest

from superpose.metrics import kl_to_shares, normalize_logp, task_statistics


def test_kl_matches_the_definition_and_is_zero_at_the_shares():
    shares = np.array([[0.5, 0.5]])
    p = np.array([[0.2, 0.3]])
    expected = 0.5 * math.log(0.5 / 0.2) + 0.5 * math.log(0.5 / 0.3)
    assert kl_to_shares(shares, np.log(p))[0] == pytest.approx(expected)
    assert kl_to_shares(shares, np.log(shares))[0] == pytest.approx(0.0, abs=1e-12)


def test_kl_stays_finite_for_probabilities_that_underflow():
    logp = np.array([[-2000.0, -0.1]])  # exp(-2000) is 0 in float64
    kl = kl_to_shares(np.array([[0.5, 0.5]]), logp)[0]
    assert math.isfinite(kl) and kl > 900
    assert kl_to_shares(np.array([[0.0, 1.0]]), logp)[0] == pytest.approx(0.1)  # zero share: no term


def test_summarize_reports_each_statistic():
    tasks = ["a", "b"]
    logp = np.log(np.array([[0.6, 0.2], [0.1, 0.5], [0.3, 0.3]]))
    shares = np.full((3, 2), 0.5)
    s = task_statistics(tasks, logp, shares)
    assert s["tasks"]["a"]["mean"] == pytest.approx(1.0 / 3)
    assert s["tasks"]["b"]["median"] == pytest.approx(0.3)
    assert s["tasks"]["a"]["variance"] == pytest.approx(np.var([0.6, 0.1, 0.3], ddof=1))  # the study's
    assert s["tasks"]["a"]["variance_biased"] == pytest.approx(np.var([0.6, 0.1, 0.3]))
    one = task_statistics(tasks, logp[:1], shares[:1])
    assert one["tasks"]["a"]["variance"] is None and one["tasks"]["a"]["variance_biased"] == 0.0
    assert s["other_mean"] == pytest.approx(np.mean([0.2, 0.4, 0.4]))
    assert s["sorted_means"] == pytest.approx([np.mean([0.6, 0.5, 0.3]), np.mean([0.2, 0.1, 0.3])])
    # ties go to the first task, as argmax does
    assert s["tasks"]["a"]["top1_rate"] == pytest.approx(2 / 3)
    norm = np.exp(normalize_logp(logp))
    assert norm.sum(axis=1) == pytest.approx([1, 1, 1])
    assert s["tasks"]["a"]["mean_normalized"] == pytest.approx(norm[:, 0].mean())
    assert s["kl_normalized"] < s["kl"]


def test_summarize_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        task_statistics(["a", "b"], np.zeros((3, 2)), np.zeros((3, 3)))
