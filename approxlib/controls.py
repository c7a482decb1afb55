"""A variant's control: what it is compared with to tell compression's effect from training's.

Each kind is one registered class that owns its key (the `control` column of `results.csv`), its
label in tables, the words it adds to a variant's label, and what the report does with it: a
way to get the model (`candidate`, counted for "the fastest variant within 1 point"), the
equal-compute dense reference (`reference`), fine-tuned as QAT is (`qat_trained`), or trained
afresh for a budget (`budget`). `pipeline.prune_steps` / `quant_steps` ask the kind how the
variant is made, and no code branches on a control's name; code that means one particular
kind (section G pairs QAT with its float twin) names it by its constant here. A new control is
a class registered in CONTROLS and, where it is made differently, one branch of the recipe
that asks for it.
"""
from __future__ import annotations

from .config import SAME_EPOCHS, SAME_FLOPS


class Control:
    """No control: the variant itself (a compressed model, or its baseline)."""
    key = "none"
    label = ""
    candidate = True  # a way to get the model: "the fastest within 1 point" counts it
    reference = False  # the equal-compute dense model "within N points of dense" may be
    qat_trained = False  # fine-tuned as quantization-aware training is
    budget: str | None = None  # trained from scratch for as many "epochs" or "flops"

    def words(self, prune: str) -> str:
        """What it adds to a variant's label (`sections.Variant.label`); `prune`: its method."""
        return ""


class DenseControl(Control):
    """The equal-compute dense control: the baseline fine-tuned exactly as the pruned variants of
    its `prune` method are, unpruned. Never a way to get a small model; the reference."""
    key = "equal-compute"
    label = "dense control"
    candidate = False
    reference = True

    def words(self, prune: str) -> str:
        return f"dense control of {prune}"


class ScratchControl(Control):
    """Liu et al.'s control of fine-tuning: the pruned shape freshly initialized and trained for
    the epochs of baseline + fine-tuning (Scratch-E) or for their FLOPs on the dense model
    (Scratch-B). Also a way to get the small model, as the paper advises."""

    def __init__(self, key: str, label: str, budget: str):
        self.key, self.label, self.budget = key, label, budget

    def words(self, prune: str) -> str:
        return f"trained from scratch ({self.label})"


class QatTwin(Control):
    """QAT's float twin: the same fine-tuning from the same model in float32, the reference its
    INT8 model is measured against."""
    key = "qat-float"
    label = "QAT's float twin"
    candidate = False
    qat_trained = True

    def words(self, prune: str) -> str:
        return "fine-tuned as QAT, in float32"


NONE = Control()
DENSE = DenseControl()
SCRATCH_E = ScratchControl("scratch-e", "Scratch-E", SAME_EPOCHS)
SCRATCH_B = ScratchControl("scratch-b", "Scratch-B", SAME_FLOPS)
QAT_FLOAT = QatTwin()
CONTROLS: dict[str, Control] = {c.key: c for c in (NONE, DENSE, SCRATCH_E, SCRATCH_B, QAT_FLOAT)}


def scratch() -> tuple[str, ...]:
    """The kinds trained from scratch for a budget, in the order section G plans them."""
    return tuple(k for k, c in CONTROLS.items() if c.budget)


def of(key) -> Control:
    """The kind of a variant's or a results row's `control` (a missing value: none)."""
    return CONTROLS[key if isinstance(key, str) else NONE.key]


def label(key) -> str:
    """A control's name in tables, e.g. "Scratch-E"; an unknown key as it is spelled."""
    return CONTROLS[key].label if key in CONTROLS else str(key)
