"""Is a difference real? Paired tests on test-set predictions and binomial intervals (scipy)."""
from __future__ import annotations

import warnings

import numpy as np
from scipy import stats


def mcnemar(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict:
    """Exact McNemar test of two classifiers on the same test images.

    Only the images on which exactly one model is right carry information; under "equally
    accurate" they split 50/50, so the p-value is a two-sided binomial test on that split.
    """
    y, pred_a, pred_b = np.asarray(y), np.asarray(pred_a), np.asarray(pred_b)
    if not (y.ndim == 1 and y.size and y.shape == pred_a.shape == pred_b.shape):
        # numpy broadcast one label against every prediction (a p-value of 6e-14)
        raise ValueError(f"labels and predictions of unequal or no images: {y.shape}, "
                         f"{pred_a.shape}, {pred_b.shape}")
    right_a, right_b = pred_a == y, pred_b == y
    only_a = int((right_a & ~right_b).sum())
    only_b = int((~right_a & right_b).sum())
    n = only_a + only_b
    p = 1.0 if n == 0 else stats.binomtest(min(only_a, only_b), n, 0.5).pvalue
    return {"only_a": only_a, "only_b": only_b, "p_value": float(min(1.0, p))}


def paired_lower_bound(right_ref, right_b, level: float = 0.95) -> dict:
    """How far below a reference model another one may be, from the same images: the change in
    accuracy `delta` (b − reference, fraction) and its one-sided lower confidence bound `lo`
    at `level`, with the paired standard error (Agresti, Categorical Data Analysis, 10.1.1:
    var = ((only_b + only_ref)/n − delta²)/n). Written here because scipy has no interval for
    paired proportions. The bound is per comparison, not simultaneous over many."""
    if not all(np.isin(np.asarray(r), (0, 1)).all() for r in (right_ref, right_b)):
        raise ValueError("paired_lower_bound takes whether each image was right (booleans), "
                         "not predicted classes")  # which bool() read as right but for class 0
    a, b = np.asarray(right_ref, dtype=bool), np.asarray(right_b, dtype=bool)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired correctness of unequal or no images: {a.shape} vs {b.shape}")
    n = a.size
    delta = float(b.mean() - a.mean())
    var = max(0.0, (float((a != b).mean()) - delta ** 2) / n)
    return {"delta": delta, "lo": delta - float(stats.norm.ppf(level)) * var ** 0.5, "n": n}


def wilson(correct: int, total: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of an accuracy (scipy's binomtest), from counts."""
    if float(correct) != int(correct) or float(total) != int(total):
        raise ValueError(f"wilson takes counts of images, not an accuracy: {correct}, {total}")
    ci = stats.binomtest(int(correct), int(total)).proportion_ci(level, method="wilson")
    return float(ci.low), float(ci.high)


CI_FIELDS = ("n", "mean", "sd", "lo", "hi")  # what `mean_ci` returns, in a table's order
# Samples this close are equal: accuracies are k / test images, kept as float32 means (their
# differences off by up to ~1e-7: 702/1000 − 700/1000 and 704/1000 − 702/1000 differ by 6e-8,
# and a 1e-9 rule gave two seeds two images apart a zero-width "beyond noise" interval, a
# referee found, 2026-12-07); one image of a million-image test split
SAME = 1e-6


def mean_ci(samples, level: float = 0.95) -> dict:
    """Mean, sample standard deviation and Student-t interval of the mean over seeds (scipy).

    With one sample there is no spread to estimate: sd and the interval are NaN, never zero.
    Nor is there when every sample is the same: an accuracy on a finite test split takes
    discrete values, and two seeds that agree to the image (likely on smoke's 1,000 images)
    say nothing about what a third would give, so the interval is NaN rather than the
    zero-width one the t formula gives, which would call any such difference real.
    """
    x = np.asarray(samples, dtype=float)
    if np.isnan(x).any():  # every figure would be NaN, without a word
        raise ValueError(f"mean_ci of samples holding NaN: {x.tolist()[:5]}")
    n = len(x)
    mean = float(x.mean()) if n else float("nan")
    if n < 2:
        return {"n": n, "mean": mean, "sd": float("nan"), "lo": float("nan"),
                "hi": float("nan")}
    sd = float(x.std(ddof=1))
    if np.ptp(x) <= SAME:  # equal, but for float rounding
        return {"n": n, "mean": mean, "sd": sd, "lo": float("nan"), "hi": float("nan")}
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / np.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "lo": mean - half, "hi": mean + half}


def no_interval(ci: dict) -> str | None:
    """Why `mean_ci` gave no interval ("one seed", "3 seeds with the same difference"), or None
    where it gave one."""
    if ci["lo"] == ci["lo"]:
        return None
    return "one seed" if ci["n"] < 2 else f"{int(ci['n'])} seeds with the same difference"


def within_noise(ci: dict) -> bool:
    """True when a difference's interval contains 0 (or cannot be computed: `no_interval`)."""
    return not (ci["lo"] > 0 or ci["hi"] < 0)


def direction(ci: dict) -> int:
    """+1 where a difference's interval lies above 0, -1 where below, 0 where it contains 0 (or
    cannot be computed): `within_noise` with the sign a verdict words."""
    return 1 if ci["lo"] > 0 else -1 if ci["hi"] < 0 else 0


def interval_words(ci: dict) -> str:
    """An interval's verdict as the report words it (`within_noise`); "no interval" where there
    is none to judge by (a difference then is neither shown real nor shown noise)."""
    if no_interval(ci):
        return "no interval"
    return "within noise" if within_noise(ci) else "beyond noise"


ALPHA = 0.05  # the significance level of every paired test the report calls


def significant(p_value: float) -> bool:
    """Whether a paired test's p-value calls a real difference (at `ALPHA`)."""
    return p_value < ALPHA


def chance_level(labels) -> float:
    """The top-1 of always naming the most frequent class of `labels` (results.csv's `chance`
    and `val_chance`, the report's "at chance"): what a model that learned nothing scores."""
    y = np.asarray(labels).astype(np.int64)
    return float(np.bincount(y).max() / len(y)) if len(y) else float("nan")


def balanced_accuracy(labels, predictions) -> float:
    """The mean over the test classes of the share of each named right (per-class recall,
    scikit-learn's rule): on imbalanced classes top-1 rewards naming the frequent one, while
    here always naming one class scores 1/k whatever the mix (results.csv's
    `balanced_accuracy`). A prediction of a class no test image has counts as a miss only."""
    # imported here: sklearn.metrics takes about 2 s to import, and every notebook and worker
    # imports this module
    from sklearn.metrics import balanced_accuracy_score
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true": as said above
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(np.asarray(labels), np.asarray(predictions)))


def balanced_chance(labels) -> float:
    """The balanced accuracy of always naming one class: 1/k for the k classes `labels` has
    (results.csv's `balanced_chance`; beside `chance`, how imbalanced the test images are)."""
    k = len(np.unique(np.asarray(labels)))
    return 1 / k if k else float("nan")


def p_text(p_value: float, digits: int = 3) -> str:
    """A p-value for a table: exact binomial tails below float64's range come out as 0, which
    the report must not print as "p = 0"; more digits where `digits` would round it across
    `ALPHA` (0.049983 printed "0.05" beside a verdict of a difference)."""
    if p_value < 1e-300:
        return "< 1e-300"
    text = f"{p_value:.{digits}g}"
    while significant(float(text)) != significant(p_value) and digits < 17:
        digits += 1
        text = f"{p_value:.{digits}g}"
    return text


def p_words(p_value: float, digits: int = 3) -> str:
    """"p = 0.0123", or "p < 1e-300" (`p_text`)."""
    text = p_text(p_value, digits)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def verdict_words(p_value: float) -> str:
    """A paired test's verdict as the report words it: McNemar's test covers the sampling of
    the test images, not another training run's (one run's "a real difference" claimed more
    than the test rests on, a referee of the report, 2026-12-07)."""
    return "beyond test-image noise" if significant(p_value) else "within test-image noise"


TIMING_NOISE = "within timing noise"
TIMING_FLOOR = 0.03  # a change of latency up to 3% is noise however tight the timings
# Fewer rounds of turns than MIN_ROUNDS, and their quartiles measure little noise: smoke's 3
# rounds of 0.05 s called a dense control, the baseline's architecture, 16% slower than it
# (2026-12-07); there, a change up to FEW_ROUNDS_FLOOR is noise
MIN_ROUNDS = 5
FEW_ROUNDS_FLOOR = 0.25


def timing_floor(rounds: int = 0) -> float:
    """The smallest relative change of latency a timing of `rounds` rounds of turns can call
    (0: timed alone, by blocked_autorange's blocks)."""
    return FEW_ROUNDS_FLOOR if 0 < rounds < MIN_ROUNDS else TIMING_FLOOR


def timing_verdict(base_ms: float, base_iqr: float, ms: float, iqr: float,
                   rounds: int = 0) -> str:
    """"faster", "slower" or TIMING_NOISE: a change of batch-1 latency no larger than the two
    timings' interquartile ranges over rounds (relative to the base), or than `timing_floor`
    of the `rounds` they were timed in turns over, is noise."""
    if not base_ms > 0:
        raise ValueError(f"a base latency of {base_ms} ms cannot be compared with")
    change = ms / base_ms - 1
    if abs(change) <= max((base_iqr + iqr) / base_ms, timing_floor(rounds)):
        return TIMING_NOISE
    return "faster" if change < 0 else "slower"
