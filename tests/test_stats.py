"""Bootstrap intervals, paired intervals and the sign test (superpose.stats): coverage on simulated
prompts with a known mean, degenerate samples, and agreement with a direct scipy call."""

import numpy as np
import pytest
from scipy import stats as sps

from superpose.metrics import control_statistics, task_statistics
from superpose.stats import generator, interval, paired_interval, ratio_interval, sign_test


def test_95_percent_interval_covers_a_known_mean_in_90_to_99_percent_of_200_sets():
    # per-prompt probabilities from Beta(0.6, 2.4): skewed towards 0, true mean 0.2, as P(answer) often is
    sim = np.random.default_rng(2026)
    rng = generator(0, "coverage")
    covered = 0
    for _ in range(200):
        values = sim.beta(0.6, 2.4, size=40)
        lo, hi = interval(values, rng)
        covered += lo <= 0.2 <= hi
    assert 180 <= covered <= 198, f"coverage {covered / 200:.1%}"


def test_an_interval_that_ignores_the_spread_would_fail_coverage():
    # the coverage check is not vacuous: a 50 % interval of the same sets covers far less often
    sim, rng = np.random.default_rng(1), generator(0, "narrow")
    covered = sum(lo <= 0.2 <= hi for lo, hi in (interval(sim.beta(0.6, 2.4, size=40), rng, level=0.5)
                                                 for _ in range(100)))
    assert covered < 80


def test_degenerate_samples():
    rng = generator(0)
    assert interval([0.3], rng) is None  # one prompt: no interval
    assert interval([0.25, 0.25, 0.25], rng) == (0.25, 0.25)  # all equal: every resample agrees
    assert interval([0.0, 0.0], rng) == (0.0, 0.0)
    x = np.array([0.1, 0.4, 0.2, 0.3])
    assert paired_interval(x, x - 0.05, rng) == pytest.approx((0.05, 0.05))  # constant difference
    stats = task_statistics(["a", "b"], np.log([[0.5, 0.2]]), np.array([[0.5, 0.5]]))
    assert stats["tasks"]["a"]["mean_lo"] is None and stats["kl_hi"] is None


def test_intervals_are_seeded_and_match_a_direct_scipy_call():
    values = np.random.default_rng(3).beta(0.6, 2.4, size=30)
    assert interval(values, generator(5, "m")) == interval(values, generator(5, "m"))
    ours = interval(values, generator(5, "m"))
    direct = sps.bootstrap((values,), np.mean, n_resamples=9999, method="BCa", rng=np.random.default_rng(11))
    width = direct.confidence_interval.high - direct.confidence_interval.low
    assert ours[0] == pytest.approx(direct.confidence_interval.low, abs=0.05 * width)
    assert ours[1] == pytest.approx(direct.confidence_interval.high, abs=0.05 * width)


def test_paired_interval_sees_a_shift_that_unpaired_spread_hides():
    base = np.random.default_rng(4).uniform(0, 1, size=30)
    shifted = base + 0.02 + np.random.default_rng(5).normal(0, 0.005, size=30)
    lo, hi = paired_interval(shifted, base, generator(0))
    assert 0 < lo < 0.02 < hi < 0.03  # paired: the shift is clear although the values spread over [0, 1]
    assert sign_test(shifted - base) == {"n_above": 30, "n_below": 0, "p_value": pytest.approx(2 * 0.5 ** 30)}
    lo, hi = ratio_interval(base * 2, base, generator(0))
    assert lo == pytest.approx(2.0) and hi == pytest.approx(2.0)


def test_in_context_effect_and_verdict():
    rng = np.random.default_rng(6)
    n = 25
    mixed = np.log(np.column_stack([rng.uniform(0.3, 0.5, n), rng.uniform(0.01, 0.03, n)]))  # [N, 2]
    # without task 0's examples its answer drops to ~0.05; task 1's answer is as likely without its examples
    without0 = np.log(np.column_stack([rng.uniform(0.03, 0.07, n), rng.uniform(0.01, 0.03, n)]))
    without1 = mixed.copy()
    single = [np.log(np.full((n, 2), 0.9)), np.log(np.full((n, 2), 0.9))]
    out = control_statistics(["a", "b"], mixed, [without0, without1], single, generator(0))
    assert out["a"]["superposed"] is True and out["a"]["effect_lo"] > 0.2
    assert out["b"]["superposed"] is False and out["b"]["effect"] == 0.0  # no effect: not superposed
    assert out["a"]["ratio_to_single"] == pytest.approx(np.exp(mixed[:, 0]).mean() / 0.9)
