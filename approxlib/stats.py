"""Is a difference real? Paired tests on test-set predictions and binomial intervals (scipy)."""
from __future__ import annotations

import numpy as np
from scipy import stats


def mcnemar(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict:
    """Exact McNemar test of two classifiers on the same test images.

    Only the images on which exactly one model is right carry information; under "equally
    accurate" they split 50/50, so the p-value is a two-sided binomial test on that split.
    """
    right_a, right_b = np.asarray(pred_a) == y, np.asarray(pred_b) == y
    only_a = int((right_a & ~right_b).sum())
    only_b = int((~right_a & right_b).sum())
    n = only_a + only_b
    p = 1.0 if n == 0 else stats.binomtest(min(only_a, only_b), n, 0.5).pvalue
    return {"only_a": only_a, "only_b": only_b, "p_value": float(min(1.0, p))}


def wilson(correct: int, total: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of an accuracy (scipy's binomtest)."""
    ci = stats.binomtest(int(correct), int(total)).proportion_ci(level, method="wilson")
    return float(ci.low), float(ci.high)
