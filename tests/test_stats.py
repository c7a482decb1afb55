import numpy as np
import pytest

from approxlib import stats


def test_mcnemar_exact_on_known_counts():
    y = np.zeros(30, dtype=int)
    a = np.zeros(30, dtype=int)          # right everywhere
    b = a.copy()
    b[:10] = 1                           # wrong on 10 images where a is right, never the reverse
    r = stats.mcnemar(y, a, b)
    assert (r["only_a"], r["only_b"]) == (10, 0)
    assert r["p_value"] == pytest.approx(2 * 0.5 ** 10)  # two-sided exact binomial
    assert stats.mcnemar(y, a, a)["p_value"] == 1.0       # identical predictions: no evidence
    balanced = b.copy()
    balanced[10:20] = 1
    assert stats.mcnemar(y, b, np.where(np.arange(30) < 10, 0, balanced))["p_value"] == 1.0


def test_paired_lower_bound_on_known_counts():
    # 1000 images: the reference alone right on 30, the other alone on 10: delta = -0.02,
    # var = (0.04 - 0.0004) / 1000, one-sided 95%: -0.02 - 1.6449 * 0.0062929 = -0.030351
    ref = np.ones(1000, dtype=int)
    other = ref.copy()
    other[:30] = 0
    ref[30:40] = 0
    r = stats.paired_lower_bound(ref, other)
    assert r["delta"] == pytest.approx(-0.02)
    assert r["lo"] == pytest.approx(-0.030351, abs=1e-6)
    assert stats.paired_lower_bound(ref, ref)["lo"] == 0.0  # the same answers: no doubt
    # the same delta with more disagreement is less certain
    noisy = other.copy()
    noisy[100:200], ref2 = 0, ref.copy()
    ref2[200:300] = 0
    assert stats.paired_lower_bound(ref2, noisy)["lo"] < r["lo"]
    with pytest.raises(ValueError, match="unequal"):
        stats.paired_lower_bound(ref, ref[:10])


def test_wilson_interval_known_values():
    lo, hi = stats.wilson(50, 100)
    assert (lo, hi) == pytest.approx((0.4038, 0.5962), abs=1e-4)  # the textbook Wilson interval
    lo, hi = stats.wilson(0, 10)
    assert lo == 0 and hi == pytest.approx(0.2775, abs=1e-4)


def test_mean_ci_on_known_samples():
    # mean 2, sd 1, n 3: half-width t(0.975, 2) * 1 / sqrt(3) = 4.3027 / 1.7321 = 2.4841
    r = stats.mean_ci([1.0, 2.0, 3.0])
    assert (r["n"], r["mean"], r["sd"]) == (3, 2.0, 1.0)
    assert (r["lo"], r["hi"]) == pytest.approx((2 - 2.4841, 2 + 2.4841), abs=1e-4)
    assert stats.within_noise(r)
    assert not stats.within_noise(stats.mean_ci([1.0, 1.1, 0.9, 1.05]))  # clearly above 0
    one = stats.mean_ci([0.5])
    assert one["mean"] == 0.5 and np.isnan(one["sd"]) and np.isnan(one["lo"])
    assert stats.within_noise(one)  # one seed is never evidence of a difference
    below = stats.mean_ci([-1.0, -1.1, -0.9])
    assert [stats.interval_words(x) for x in (r, one, below)] == [
        "within noise", "no interval", "beyond noise"]
    assert [stats.no_interval(x) for x in (r, one, stats.mean_ci([0.2, 0.2]))] == [
        None, "one seed", "2 seeds with the same difference"]
    assert [stats.direction(x) for x in (r, one, below, stats.mean_ci([1.0, 1.1, 0.9]))] == [
        0, 0, -1, 1]
    # two seeds that agree exactly: no spread estimated, no zero-width interval calling it real
    same = stats.mean_ci([0.012, 0.012])
    assert same["mean"] == 0.012 and same["sd"] == 0 and np.isnan(same["lo"]) and np.isnan(same["hi"])
    assert stats.within_noise(same)
    assert np.isnan(stats.mean_ci([0.3 - 0.2, 0.2 - 0.1])["lo"])  # equal but for rounding


def test_a_paired_test_is_worded_at_the_5_percent_level():
    assert stats.verdict_words(0.05) == "within test-image noise"
    assert stats.verdict_words(0.049) == "beyond test-image noise"


def test_a_p_value_below_floats_range_is_never_printed_as_zero():
    """Exact binomial tails of thousands of discordant images underflow to 0.0: the report
    printed "McNemar p = 0"."""
    y = np.zeros(5000, dtype=int)
    p = stats.mcnemar(y, y, np.ones(5000, dtype=int))["p_value"]
    assert stats.p_words(p) == "p < 1e-300" and stats.p_text(p) == "< 1e-300"
    assert stats.p_words(0.01234) == "p = 0.0123" and stats.p_words(0.01234, 2) == "p = 0.012"
    from approxlib import analysis
    assert analysis._points(-0.0004) == "+0.0"  # the findings said "(mean -0.0)"


def test_differences_equal_to_the_image_have_no_interval_as_float32_accuracies():
    """Accuracies are float32 means (k / test images): 702/1000 − 700/1000 and 704/1000 −
    702/1000 differ by 6e-8, and a 1e-9 rule gave those two seeds, two images apart each, a
    zero-width interval called "beyond noise" (a referee, 2026-12-07)."""
    def acc(k):
        return float(np.float32(k) / np.float32(1000))
    same = stats.mean_ci([acc(702) - acc(700), acc(704) - acc(702)])
    assert np.isnan(same["lo"]) and stats.interval_words(same) == "no interval"
    assert not np.isnan(stats.mean_ci([acc(702) - acc(700), acc(705) - acc(702)])["lo"])


def test_a_p_value_is_never_rounded_across_the_significance_level():
    """0.049983 printed "p = 0.05" beside "a real difference", 0.050016 "p = 0.05" beside
    "within noise" (a referee, 2026-12-07)."""
    for p in (0.049983, 0.050016, 0.0499996, 0.05, 0.0123, 0.9):
        text = stats.p_text(p)
        assert stats.significant(float(text)) == stats.significant(p), (p, text)
    assert stats.p_text(0.0123) == "0.0123" and stats.p_text(0.049983) == "0.04998"


def test_timing_verdict_known_values_and_too_few_rounds():
    """Noise is the larger of the two quartile ranges summed (relative to the base) and 3%,
    25% with fewer than 5 rounds of turns (smoke's 3 rounds of 0.05 s called a dense
    control, the baseline's architecture, 16% slower than the baseline)."""
    assert stats.timing_verdict(10, 0.1, 10.25, 0.1) == stats.TIMING_NOISE  # 2.5% < 3% floor
    assert stats.timing_verdict(10, 0.1, 10.4, 0.1) == "slower"  # 4% > 3% and > 2%
    assert stats.timing_verdict(10, 0.3, 10.4, 0.2) == stats.TIMING_NOISE  # 4% < 5% of IQRs
    assert stats.timing_verdict(10, 0.1, 9.5, 0.1, rounds=8) == "faster"
    assert stats.timing_verdict(10, 0.01, 11.6, 0.01, rounds=3) == stats.TIMING_NOISE  # < 25%
    assert stats.timing_verdict(10, 0.01, 11.6, 0.01, rounds=stats.MIN_ROUNDS) == "slower"
    assert stats.timing_verdict(10, 0.01, 2.5, 0.01, rounds=3) == "faster"  # 4× is no noise
    with pytest.raises(ValueError):
        stats.timing_verdict(0, 0, 1, 0)


def test_chance_level_is_the_most_frequent_class_share():
    assert stats.chance_level([0, 1, 1, 2]) == 0.5
    assert stats.chance_level(np.repeat(np.arange(10), 3)) == pytest.approx(0.1)
    assert np.isnan(stats.chance_level([]))


def test_balanced_accuracy_is_the_mean_recall_of_the_test_classes():
    y = np.array([0] * 8 + [1] * 2)
    # always the frequent class: 80% top-1, half the classes
    assert stats.balanced_accuracy(y, np.zeros(10)) == pytest.approx(0.5)
    # 6/8 of class 0 and 1/2 of class 1 right: (0.75 + 0.5) / 2
    pred = np.array([0] * 6 + [1] * 2 + [1, 0])
    assert stats.balanced_accuracy(y, pred) == pytest.approx(0.625)
    # a class no test image has counts only as a miss of the class named wrongly
    assert stats.balanced_accuracy(y, np.full(10, 7)) == 0.0
    assert stats.balanced_accuracy(y, y) == 1.0
    assert stats.balanced_chance(y) == 0.5 and stats.balanced_chance(np.arange(10)) == 0.1
