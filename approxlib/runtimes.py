"""The runtimes a variant runs in, each one registered entry: its key (the `runtime` column of
`results.csv`), its names, its style in figures, and whether it runs the model exported to ONNX
(then the recipe exports it: `pipeline.quant_steps`). The export and the sessions themselves are
`runtime.py`'s; this is the light list the planner, the analysis, the names and the figures read,
so that none of them tests a runtime's name. A new runtime is an entry here and, for its
models, a step that builds them.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import quants


@dataclass(frozen=True)
class Runtime:
    key: str
    label: str  # in text and legends: "ONNX Runtime"
    short: str  # in tables and section G's variant names: "ORT"
    exported: bool  # runs the model exported to ONNX (`runtime.export_onnx`), not the module
    quantizer: str  # whose post-training static INT8 its INT8 models are
    markers: str  # its points in figures (matplotlib): float32, static INT8, QAT INT8
    line: str  # its lines in figures

    def marker(self, quant: str = quants.NONE.key) -> str:
        """Its points' marker for a precision (`quant`); float32's for any other."""
        order = quants.PRECISIONS
        return self.markers[order.index(quant)] if quant in order else self.markers[0]


EAGER = Runtime("pytorch", "PyTorch", "eager", False, "PyTorch FX", "osP", "-")
ORT = Runtime("onnxruntime", "ONNX Runtime", "ORT", True, "ONNX Runtime", "^DX", "--")
RUNTIMES: dict[str, Runtime] = {r.key: r for r in (EAGER, ORT)}
# Where every speed-up, size ratio and accuracy difference starts: its dense float32 model
REFERENCE = EAGER.key


def of(key: str) -> Runtime:
    return RUNTIMES[key]


def label(key) -> str:
    """A runtime's name in text; an unknown key as it is spelled."""
    return RUNTIMES[key].label if key in RUNTIMES else str(key)


def short(key) -> str:
    """A runtime's name in tables and section G's variant names; an unknown key as spelled."""
    return RUNTIMES[key].short if key in RUNTIMES else str(key)
