"""The quantizations a variant's `quant` names (the profile's name, the `quant` column of
`results.csv`), each one registered entry owning how the report writes it: the words after "+"
in a results row's label and, for the precisions section G compares, its short name there. How a
model is quantized lives with the code that does it: what is stored and how it is rebuilt is a
`quantize.Method` in `quantize.METHODS`, the steps that make it (calibration, fine-tuning) a
`pipeline.Quantizing` in `pipeline.QUANTIZINGS`, both keyed by the same key. This is the light
list the profile's checks, the planner, the names, the analysis and the figures read (they import
no torch); a quantization not listed is written as it is spelled.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Quant:
    key: str
    label: str  # after "+" in a results row's label: "static INT8"
    precision: str = ""  # section G's short name ("INT8"); "": G does not compare it
    # fine-tuned as it is quantized (QAT): trained as long as its float twin
    # (`controls.QAT_FLOAT`), which joins the candidates for its equal-compute reference
    trained: bool = False
    note: str = ""  # what a reader must know to read its rows, said once where they appear

    @property
    def short(self) -> str:
        """Its name in section G's variant names: its precision, else its key."""
        return self.precision or self.key


NONE = Quant("none", "", "fp32")
DYNAMIC = Quant(  # the original's: Linear layers only, at run time
    "int8-dynamic", "INT8",
    note="INT8 here is PyTorch's dynamic quantization, as the original applied it: it converts "
         "the Linear layers only (in these models the classifier), so the convolutions, which "
         "hold nearly all weights and time, stay float32 and size and latency barely move; "
         "section G quantizes every layer (static INT8).")
KMEANS = Quant("kmeans", "k-means")  # Deep Compression's shared weights (section F)
STATIC = Quant("int8-static", "static INT8", "INT8")
QAT = Quant("int8-qat", "static INT8 (QAT)", "QAT-INT8", trained=True)
QUANTS: dict[str, Quant] = {q.key: q for q in (NONE, DYNAMIC, KMEANS, STATIC, QAT)}
# Section G's precisions, in the order of a runtime's markers and of the figures' legends
PRECISIONS = (NONE.key, STATIC.key, QAT.key)
# What section G makes of every trained model with no further training: float32 and its
# post-training INT8
POST_TRAINING = (NONE.key, STATIC.key)


def of(key) -> Quant:
    """A quantization's entry; one not listed named as it is spelled."""
    return QUANTS[key] if key in QUANTS else Quant(str(key), str(key))


def label(key) -> str:
    return of(key).label


def keys() -> tuple[str, ...]:
    """Every registered quantization's key, read when asked (an entry added after import
    counts), in the order the profile's errors list them."""
    return tuple(QUANTS)
