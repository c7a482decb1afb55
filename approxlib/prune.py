"""Magnitude pruning through `torch.nn.utils.prune`: one-shot global L1 as the original study
did, and gradual pruning to high sparsity (Zhu & Gupta's cubic schedule) for Deep Compression."""
from __future__ import annotations

import logging
import math

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune as tprune
from tqdm.auto import tqdm

from . import methods
from . import models
from . import train
from .config import GradualConfig, PruneConfig
from .models import prunable, weight_of

LOG = logging.getLogger("approxlib")


def smallest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Where the `k` smallest of the 1-D `scores` are (booleans), as `torch.topk(largest=False)`
    selects them for `torch.nn.utils.prune`'s L1 rule (round(amount × n) smallest), NaN last;
    of the scores tied at the k-th value, which topk takes in no stated order, the first in
    position order.

    Found with `kthvalue`, a selection rather than topk's partial sort: ranking ResNet-18's
    11.2M weights took 0.19 s against topk's 0.85 s (half pruned) and 1.35 s (90%) on this
    CPU (2026-12-05), and gradual pruning ranks them every few dozen steps."""
    where = torch.zeros_like(scores, dtype=torch.bool)
    if k <= 0:
        return where
    kth = scores.kthvalue(k).values
    torch.lt(scores, kth, out=where)
    ties = (scores == kth).nonzero().flatten()
    where[ties[:k - int(where.sum())]] = True
    if int(where.sum()) != k:  # NaN among the k (a diverged model): NaN ranks last, as in topk
        return smallest(torch.where(scores.isnan(), math.inf, scores), k)
    return where


class L1Unstructured(tprune.L1Unstructured):
    """torch's smallest-|w| pruning method (its validation, amounts and masks) with the
    selection made by `smallest`."""

    def compute_mask(self, t: torch.Tensor, default_mask: torch.Tensor) -> torch.Tensor:
        return Smallest.compute_mask(self, t.abs(), default_mask)


# How weights are scored is separate from how the sparsity is spread over layers, as
# Torch-Pruning separates `Importance` from its pruner. A score is a `torch.nn.utils.prune`
# method (torch's own extension point: its `compute_mask` ranks one tensor and masks the
# lowest `amount`); a spread decides how many weights each layer loses. A new scoring rule is
# one such class registered with `score("name")`; it is then usable as `name-global`,
# `name-layerwise` or `name-sensitivity` in the profile. A score that depends on more than
# each weight (its layer's other weights, as LAMP's does) defines `importance(weight)`, which
# every spread computes on each layer alone and masks the lowest of: torch's global ranking
# hands `compute_mask` all the layers joined into one tensor, and such a score came out as
# global magnitude (a contributor's LAMP, 2026-12-07). Its `version` (default 0) goes into
# the cache key of what it prunes once raised: raise it when its scores change.
SCORES: dict[str, type[tprune.BasePruningMethod]] = {
    "l1": L1Unstructured,  # smallest |w|
    "random": tprune.RandomUnstructured,  # uniformly at random (ShrinkBench's baseline)
}
# Scores that ignore the weights: the baselines that show whether magnitude carries information
UNINFORMED = {"random"}
# The profile's first method names (l1-unstructured, random-unstructured, …) are entries of
# `methods.METHODS`, each with its score and spread; any other is `<score>-<spread>`.


def score(name: str, informed: bool = True):
    """Register a `torch.nn.utils.prune.BasePruningMethod` subclass as a scoring rule;
    `informed=False` for one that ignores the weights (a baseline, as random pruning is)."""
    def register(cls: type[tprune.BasePruningMethod]) -> type[tprune.BasePruningMethod]:
        if name in SCORES or "-" in name:
            raise ValueError(f"score {name!r} is taken or has a '-'")
        SCORES[name] = cls
        if not informed:
            UNINFORMED.add(name)
        return cls
    return register


class Smallest(tprune.BasePruningMethod):
    """Masks the `amount` lowest of the scores it is given (a score's `importance`, computed
    layer by layer)."""
    PRUNING_TYPE = "unstructured"

    def __init__(self, amount):
        tprune._validate_pruning_amount_init(amount)
        self.amount = amount

    def compute_mask(self, t: torch.Tensor, default_mask: torch.Tensor) -> torch.Tensor:
        k = tprune._compute_nparams_toprune(self.amount, t.nelement())
        tprune._validate_pruning_amount(k, t.nelement())
        mask = default_mask.clone(memory_format=torch.contiguous_format)
        mask.view(-1)[smallest(t.reshape(-1), k)] = 0
        return mask


def _scores(layers: list, method) -> dict | None:
    """Each layer's `importance` computed on that layer alone, where the score has one."""
    importance = getattr(method, "importance", None)
    if importance is None:
        return None
    return {(m, "weight"): importance(m.weight.detach()) for _, m in layers}


class Spread:
    """How a one-shot method spreads its sparsity over the prunable layers."""
    guided = False  # takes a ratio per layer from the sensitivity scan (`sensitivity_ratios`)

    def apply(self, layers: list, method: type[tprune.BasePruningMethod], ratio: float,
              layer_ratios: dict[str, float] | None) -> None:
        ratios, scores = self.ratios(layers, ratio, layer_ratios), _scores(layers, method)
        for n, m in layers:
            if scores is None:
                method.apply(m, "weight", amount=ratios[n])
            else:
                Smallest.apply(m, "weight", amount=ratios[n],
                               importance_scores=scores[(m, "weight")])

    def ratios(self, layers, ratio, layer_ratios) -> dict[str, float]:
        return {n: ratio for n, _ in layers}


class GlobalSpread(Spread):
    """`global_unstructured` ranks all the layers' weights together and masks the
    lowest-scored round(ratio × total): the original's `l1-unstructured`."""

    def apply(self, layers, method, ratio, layer_ratios) -> None:
        scores = _scores(layers, method)
        tprune.global_unstructured([(m, "weight") for _, m in layers],
                                   pruning_method=method if scores is None else Smallest,
                                   amount=ratio, importance_scores=scores)


class SensitivitySpread(Spread):
    """Within each layer, layer `n` at `layer_ratios[n]` (`sensitivity_ratios`)."""
    guided = True

    def ratios(self, layers, ratio, layer_ratios) -> dict[str, float]:
        if layer_ratios is None or set(layer_ratios) != {n for n, _ in layers}:
            raise ValueError("a sensitivity-guided method needs a ratio for every prunable "
                             "layer")
        return {n: float(r) for n, r in layer_ratios.items()}


SPREADS: dict[str, Spread] = {
    "global": GlobalSpread(),
    "layerwise": Spread(),  # every layer at `ratio` (ShrinkBench's layer-wise baseline)
    "sensitivity": SensitivitySpread(),
}


def score_version(method: str) -> int:
    """The `version` of a one-shot method's score (0 unless raised)."""
    return getattr(SCORES[score_and_spread(method)[0]], "version", 0)


def score_and_spread(method: str) -> tuple[str, str]:
    """A one-shot method's scoring rule and spread: a listed method's (`methods.one_shot`,
    e.g. `l1-unstructured`) or `<score>-<spread>`."""
    named = methods.one_shot()
    if method in named:
        return named[method]
    name, _, spread = method.rpartition("-")
    same = next((m for m, pair in named.items() if pair == (name, spread)), None)
    if same is not None:  # one name per method: its cache key and label stay one
        raise ValueError(f"{method} is {same}: use that name")
    if name not in SCORES or spread not in SPREADS:
        raise ValueError(f"unknown pruning method {method!r}: valid are {', '.join(named)} "
                         f"and <score>-<spread> with score in {', '.join(SCORES)} and spread in "
                         f"{', '.join(SPREADS)}")
    return name, spread


def guided(method: str) -> bool:
    """Whether a one-shot method takes its layer ratios from the sensitivity scan."""
    return SPREADS[score_and_spread(method)[1]].guided


def informed(method: str) -> bool:
    """Whether a one-shot method's score reads the weights (random pruning's does not)."""
    return score_and_spread(method)[0] not in UNINFORMED


def prune_(model: nn.Module, cfg: PruneConfig, seed: int = 0,
           layer_ratios: dict[str, float] | None = None) -> nn.Module:
    """Attach pruning masks to every Conv2d and Linear weight, in place, by `cfg.method`'s score
    and spread (`SPREADS`: global, layer-wise or sensitivity-guided).

    Scores that draw random numbers draw them reproducibly from `seed`. The masks stay attached
    (weight = weight_orig × mask) so fine-tuning keeps pruned weights at zero. Call
    `make_permanent_` before saving.
    """
    if not tprune.is_pruned(model):  # pruning again within torch's masks is torch's to do
        models.require_dense_float(model, "pruning")
    name, spread = score_and_spread(cfg.method)
    layers = prunable(model)
    models.warn_uncovered(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        SPREADS[spread].apply(layers, SCORES[name], cfg.ratio, layer_ratios)
    return model


def prune_layer_(model: nn.Module, name: str, ratio: float) -> None:
    """Zero the smallest-|w| `ratio` of one layer's weight, in place; no other tensor changes."""
    m = dict(prunable(model))[name]
    L1Unstructured.apply(m, "weight", amount=ratio)
    tprune.remove(m, "weight")
    with torch.no_grad():  # w × 0 is −0.0 for negative w; store a plain +0.0
        m.weight.add_(0.0)


@torch.no_grad()
def layer_sensitivity(model: nn.Module, ratios, x: torch.Tensor, y: torch.Tensor,
                      score=None, progress: bool = False) -> list[dict]:
    """Accuracy on (x, y) with one layer at a time pruned to each ratio, the rest untouched
    (Distiller's and NNI's sensitivity analysis). Rows: layer, weights, ratio, accuracy; the
    unpruned model is the row with ratio 0 and layer None."""
    score = score or (lambda m: train.accuracy(m, x, y))
    model.eval()
    rows = [{"layer": None, "weights": 0, "ratio": 0.0, "accuracy": score(model)}]
    layers = prunable(model)
    for name, m in tqdm(layers, desc="sensitivity", disable=not progress, leave=False):
        original = m.weight.detach().clone()
        for r in ratios:
            prune_layer_(model, name, float(r))
            rows.append({"layer": name, "weights": m.weight.numel(), "ratio": float(r),
                         "accuracy": score(model)})
            m.weight.copy_(original)
    return rows


def sensitivity_ratios(rows: list[dict], target: float) -> dict[str, float]:
    """Per-layer ratios that reach overall sparsity `target` while pruning the least sensitive
    layers most.

    Each layer's accuracy drop is made non-decreasing in the ratio and interpolated linearly
    between the measured ratios (0 at ratio 0). For a tolerated drop τ a layer gets the largest
    ratio whose drop is ≤ τ (at most the largest measured ratio); τ is found by bisection so that
    the weighted mean ratio equals `target`. This is NNI's SensitivityPruner rule with the
    threshold solved for a sparsity target. Hand-written: NNI's version is tied to its own
    pruner classes and training loop.
    """
    base = next(r["accuracy"] for r in rows if r["layer"] is None)
    layers: dict[str, dict] = {}
    for r in rows:
        if r["layer"] is not None:
            d = layers.setdefault(r["layer"], {"weights": r["weights"], "pts": []})
            d["pts"].append((r["ratio"], base - r["accuracy"]))
    grid = {}
    for name, d in layers.items():
        pts = sorted(d["pts"])
        xs = np.array([0.0] + [p[0] for p in pts])
        drops = np.maximum.accumulate(np.array([0.0] + [max(0.0, p[1]) for p in pts]))
        grid[name] = (xs, drops)
    sizes = np.array([layers[n]["weights"] for n in grid], dtype=float)
    if target > float((sizes * [xs[-1] for xs, _ in grid.values()]).sum() / sizes.sum()):
        raise ValueError(f"sparsity {target} is above what the measured ratios reach; measure "
                         f"sensitivity at higher ratios")

    def ratios_at(tau: float) -> np.ndarray:
        out = []
        for xs, drops in grid.values():
            # the largest x with interpolated drop(x) ≤ tau: walk to the first segment above tau
            above = np.nonzero(drops > tau)[0]
            if len(above) == 0:
                out.append(xs[-1])
                continue
            i = above[0]  # drops[i-1] ≤ tau < drops[i] (i ≥ 1, since drops[0] = 0 ≤ tau)
            x0, x1, d0, d1 = xs[i - 1], xs[i], drops[i - 1], drops[i]
            out.append(x0 + (x1 - x0) * (tau - d0) / (d1 - d0))
        return np.array(out)

    def overall(tau: float) -> float:
        return float((sizes * ratios_at(tau)).sum() / sizes.sum())

    # overall(τ) rises with τ but jumps where a layer's drop is flat (a whole segment becomes
    # allowed at once). Bracket the target between τ_lo and τ_hi, then blend the two ratio
    # vectors linearly so that the overall sparsity is exactly the target.
    if overall(0.0) >= target:
        r_lo, r_hi = np.zeros(len(grid)), ratios_at(0.0)
    else:
        lo, hi = 0.0, max(float(d.max()) for _, d in grid.values())
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if overall(mid) < target else (lo, mid)
        r_lo, r_hi = ratios_at(lo), ratios_at(hi)
    o_lo = float((sizes * r_lo).sum() / sizes.sum())
    o_hi = float((sizes * r_hi).sum() / sizes.sum())
    lam = 1.0 if o_hi <= o_lo else (target - o_lo) / (o_hi - o_lo)
    ratios = r_lo + lam * (r_hi - r_lo)
    return {n: float(x) for n, x in zip(grid, ratios)}


def make_permanent_(model: nn.Module) -> nn.Module:
    """Fold masks into the weights and drop the re-parametrization (the original: masks removed)."""
    for _, m in prunable(model):
        if tprune.is_pruned(m) and hasattr(m, "weight_mask"):
            tprune.remove(m, "weight")
    return model


def global_sparsity(model: nn.Module) -> tuple[int, int]:
    """(zero weights, total weights) over every Conv2d and Linear weight."""
    zeros = total = 0
    for _, m in prunable(model):
        w = weight_of(m)
        zeros += int((w == 0).sum())
        total += w.numel()
    return zeros, total


def emptied(model: nn.Module) -> list[str]:
    """The layers pruning left without a non-zero weight."""
    return [n for n, m in prunable(model) if not bool(weight_of(m).any())]


def warn_emptied(model: nn.Module) -> None:
    """A warning naming every layer pruned to nothing: global magnitude pruning to 80% zeroed
    SqueezeNet's whole classifier, and the model scored 10% without a word (a new user's
    walkthrough, 2026-12-07)."""
    gone = emptied(model)
    if gone:
        LOG.warning("pruning removed every weight of %d layer%s (%s): a layer with none passes "
                    "nothing on; a lower ratio, or pruning each layer to it (layer-wise), "
                    "keeps some", len(gone), "s" * (len(gone) > 1),
                    ", ".join(gone[:3]) + (", …" if len(gone) > 3 else ""))


def sparsity_of(model: nn.Module) -> float:
    zeros, total = global_sparsity(model)
    return zeros / total if total else 0.0



def freeze_masks_(model: nn.Module) -> dict[str, torch.Tensor]:
    """Make the pruned zeros permanent now and return the masks, to re-apply after each step.

    Equivalent to fine-tuning through torch's re-parametrization (weight = weight_orig × mask):
    SGD updates each weight from its own gradient and momentum, and the forward pass sees zeros
    at pruned positions either way. It is much cheaper: the per-forward multiply through the
    pruning hooks cut MobileNetV2's training speed here from 844 to 373 img/s.
    """
    masks = {n: m.weight_mask.detach().clone() for n, m in prunable(model)
             if tprune.is_pruned(m) and hasattr(m, "weight_mask")}
    make_permanent_(model)
    apply_masks_(model, masks)  # w × 0 is −0.0 for negative w; store a plain +0.0
    return masks


def kept_of(masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each 0/1 mask as the float multiplier `zero_pruned_` applies (1 where a weight is kept).
    `zero_pruned_` moves it to its weight's device and memory layout once, on first use, rather
    than at each of the thousands of training steps that re-apply it."""
    return {n: m.float() for n, m in masks.items()}


@torch.no_grad()
def zero_pruned_(model: nn.Module, kept: dict[str, torch.Tensor]) -> None:
    """Zero each layer's weights where its `kept` multiplier (from `kept_of`) is 0, in place.

    w × keep + 0.0: the + 0.0 turns the −0.0 that w × 0 gives for w < 0 into the +0.0 that
    marks a pruned weight (compress.py reads bit patterns), and leaves every kept weight as it
    is: bit for bit what `masked_fill_` gives, for finite weights (a diverged model's NaN stays
    NaN), but for a kept −0.0, which becomes +0.0 (training never makes one: an exact zero
    is the first weight magnitude pruning removes, and SGD's updates give +0.0). Two passes in the weight's own layout take 1.2 ms for ResNet-18's largest layer
    (2.4M weights, one thread) against masked_fill_'s 14.4 ms: re-applied after every step, the
    fill was a quarter of a pruned model's fine-tuning time on smoke."""
    modules = dict(model.named_modules())
    for name, keep in kept.items():
        w = modules[name].weight
        if keep.device != w.device or keep.dtype != w.dtype or keep.stride() != w.stride():
            keep = kept[name] = torch.empty_like(w).copy_(keep)
        w.mul_(keep).add_(0.0)


def apply_masks_(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the weights where each 0/1 mask is 0, in place (once; a training loop re-applying
    the same masks keeps `kept_of(masks)` and calls `zero_pruned_`)."""
    zero_pruned_(model, kept_of(masks))


def prune_and_finetune(model: nn.Module, cfg: PruneConfig, splits, finetune, device="auto",
                       desc="fine-tune", progress=True,
                       layer_ratios: dict[str, float] | None = None, teacher=None
                       ) -> tuple[nn.Module, list[dict]]:
    """Pruning (`prune_`), then fine-tuning that keeps every pruned weight at exactly zero;
    `finetune.epochs == 0` prunes only."""
    prune_(model, cfg, finetune.seed, layer_ratios)
    kept = kept_of(freeze_masks_(model))
    warn_emptied(model)
    if finetune.epochs == 0:
        return model, []
    model, hist = train.train(model, splits, finetune, device, desc=desc, progress=progress,
                              after_step=lambda m: zero_pruned_(m, kept), teacher=teacher)
    zero_pruned_(model, kept)  # the selected state already holds them; cheap insurance
    return model, hist


# ------------------------------------------------------------------------------ gradual pruning

def _smallest_mask(scores: torch.Tensor, ratio: float) -> torch.Tensor:
    """1 everywhere but at the round(ratio × n) smallest scores (torch's own rule for `amount`)."""
    return (~smallest(scores, round(ratio * scores.numel()))).to(scores.dtype)


@torch.no_grad()
def magnitude_masks(model: nn.Module, ratio: float, scope: str = "global"
                    ) -> dict[str, torch.Tensor]:
    """Masks that zero the smallest-|w| fraction `ratio` of Conv2d/Linear weights, ranked over all
    layers together (global) or within each layer. Weights already zero rank lowest, so a rising
    ratio only ever adds to the pruned set.

    Written out rather than calling `torch.nn.utils.prune`, whose `global_unstructured` and
    `l1_unstructured` flatten with `.view(-1)` and fail on channels_last weights mid-training;
    the rule (round(ratio × n) smallest |w|, `smallest`) is the same.
    """
    layers = prunable(model)
    if scope == "layer":
        return {n: _smallest_mask(m.weight.abs().reshape(-1), ratio).view_as(m.weight)
                for n, m in layers}
    if scope != "global":
        raise ValueError(f"unknown pruning scope {scope!r}")
    scores = torch.cat([m.weight.abs().reshape(-1) for _, m in layers])
    flat, out, i = _smallest_mask(scores, ratio), {}, 0
    for n, m in layers:
        out[n] = flat[i:i + m.weight.numel()].view_as(m.weight)
        i += m.weight.numel()
    return out


def magnitude_prune_(model: nn.Module, ratio: float, scope: str = "global"
                     ) -> dict[str, torch.Tensor]:
    """Zero the weights `magnitude_masks` selects, in place; return the masks."""
    masks = magnitude_masks(model, ratio, scope)
    apply_masks_(model, masks)
    return masks


def cubic_sparsity(step: int, ramp_steps: int, final: float, initial: float = 0.0) -> float:
    """Zhu & Gupta (2017), eq. 1: s_t = s_f + (s_i − s_f)(1 − t/T)^3; fast early, gentle late."""
    frac = min(1.0, step / max(1, ramp_steps))
    return final + (initial - final) * (1.0 - frac) ** 3


class GradualPruner:
    """An `after_step` hook for `train.train`: raises the sparsity along the cubic schedule every
    `cfg.every` steps and keeps pruned weights at zero after every step."""

    def __init__(self, model: nn.Module, cfg: GradualConfig, total_steps: int):
        self.cfg, self.step = cfg, 0
        self.ramp_steps = max(1, min(total_steps, round(cfg.ramp * total_steps)))
        self.kept: dict[str, torch.Tensor] = {}  # 0 where the weights are held at zero
        if cfg.initial > 0:
            self.prune_to(model, cfg.initial)

    def prune_to(self, model: nn.Module, ratio: float) -> None:
        """Zero the smallest-|w| fraction `ratio` now, and hold those weights at zero."""
        self.kept = kept_of(magnitude_masks(model, ratio, self.cfg.scope))
        zero_pruned_(model, self.kept)

    def __call__(self, model: nn.Module) -> None:
        self.step += 1
        if self.step <= self.ramp_steps and (self.step % self.cfg.every == 0
                                             or self.step == self.ramp_steps):
            self.prune_to(model, cubic_sparsity(self.step, self.ramp_steps, self.cfg.sparsity,
                                                self.cfg.initial))
        else:
            zero_pruned_(model, self.kept)


def gradual_prune(model: nn.Module, cfg: GradualConfig, splits, finetune, device="auto",
                  desc="gradual prune", progress=True, teacher=None
                  ) -> tuple[nn.Module, list[dict]]:
    """Prune gradually while fine-tuning; the checkpoint is picked on the validation split among
    the epochs that end at the final sparsity only (an earlier, denser epoch would cheat)."""
    per_epoch = train.steps_per_epoch(len(splits.train_y), finetune)
    pruner = GradualPruner(model, cfg, per_epoch * finetune.epochs)
    first_final = math.ceil(pruner.ramp_steps / per_epoch)
    model, hist = train.train(model, splits, finetune, device, desc=desc, progress=progress,
                              after_step=pruner, select_from=max(1, first_final),
                              teacher=teacher)
    zero_pruned_(model, pruner.kept)
    warn_emptied(model)
    return model, hist
