"""The pruning methods a variant's `prune` names (the profile's name, the `prune_method` column of
`results.csv`), each one registered entry owning how the report writes it: its name in text and
legends, the words of a results row's label and of a stage's, its cell in the summary table, its
per-layer CSV's suffix and its colour in section H's curves, and for the first one-shot methods,
whose names are not `<score>-<spread>`, their score and spread. How a method prunes lives with the
code that does it: a one-shot method is a score (`prune.SCORES`) and a spread (`prune.SPREADS`, read
by `prune.score_and_spread`), a channel method a Torch-Pruning criterion (`structured.CRITERIA`,
named by its `criterion`; section G prunes with the profile's `channel_method`), a method with
steps of its own a `pipeline.Pruning` subclass registered under the same key. This is the light list the planner, the names, the analysis and the
figures read, so that none of them tests a method's name (they import no torch). A method not
listed, e.g. a score registered with `prune.score` and used as `name-global`, is written as it is
spelled.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    key: str
    label: str  # in text and legends: "global magnitude"
    short: str = ""  # the summary table's cell after the ratio ("one-shot"); "": the key
    adverb: str = ""  # after "pruned 50%" in a stage's variant label: " gradually"
    suffix: str | None = None  # of a per-layer CSV's name; None: "_" + the key
    color: str | None = None  # its curve in section H's figures; None: a colour of its own
    words: str = "pruned {ratio} ({label})"  # a results row's label says how much and how
    # a one-shot method's scoring rule and spread (`prune.score_and_spread`); "" for a method
    # with steps of its own (`pipeline.PRUNINGS`) or one named `<score>-<spread>` unlisted
    score: str = ""
    spread: str = ""
    # a channel method's Torch-Pruning criterion (`structured.CRITERIA`) and how the report says
    # it ranks channels ("by L1 magnitude"); "" for every other method
    criterion: str = ""
    ranks: str = ""

    @property
    def cell(self) -> str:
        """Its name in the summary table's "pruned" column."""
        return self.short or self.key

    def pruned(self, ratio: float) -> str:
        """e.g. "pruned 50% (random)", "channels −50%"."""
        return self.words.format(ratio=f"{ratio:.0%}", label=self.label)


ONE_SHOT = Method("l1-unstructured", "global magnitude", short="one-shot", suffix="",
                  color="#DD8452", words="pruned {ratio}", score="l1", spread="global")
GRADUAL = Method("gradual-l1", "gradual", short="gradual", adverb=" gradually",
                 suffix="_gradual")
CHANNEL = Method("channel-l1", "channels", short="channels", adverb=" channels",
                 suffix="_channels", words="channels −{ratio}", criterion="l1",
                 ranks="by L1 magnitude")


def _channels(criterion: str, label: str, ranks: str) -> Method:
    """Another channel criterion's entry, named after it everywhere CHANNEL's words stand."""
    key = f"channel-{criterion}"
    return Method(key, f"channels ({label})", short=f"channels ({label})", adverb=f" channels ({label})",
                  suffix=f"_channels_{criterion}", words=f"channels −{{ratio}} ({label})",
                  criterion=criterion, ranks=ranks)


METHODS: dict[str, Method] = {m.key: m for m in (
    ONE_SHOT,
    Method("random-unstructured", "random", color="#8C8C8C", score="random", spread="global"),
    Method("l1-layerwise", "layer-wise magnitude", color="#4C72B0", score="l1",
           spread="layerwise"),
    Method("l1-sensitivity", "sensitivity-guided", color="#55A868", score="l1",
           spread="sensitivity"),
    GRADUAL, CHANNEL,
    # the control of a channel criterion (Liu et al., ICLR 2019: random channels, fine-tuned,
    # often match a criterion's), network slimming's BatchNorm scale (Liu et al., ICCV 2017)
    # and the geometric median (FPGM, He et al., CVPR 2019)
    _channels("random", "random", "at random (seeded)"),
    _channels("bn-scale", "BN scale", "by the magnitude of their BatchNorm scale"),
    _channels("fpgm", "FPGM", "by their distance from the layer's geometric median (FPGM)"))}
# The pruning method every other is compared with: the original's global magnitude (L1) pruning
REFERENCE = ONE_SHOT.key
UNPRUNED = "none"  # the `prune_method` of a model nothing pruned


def of(key: str) -> Method:
    """A method's entry; an unlisted one named as it is spelled."""
    return METHODS[key] if key in METHODS else Method(str(key), str(key))


def label(key) -> str:
    return of(key).label


def one_shot() -> dict[str, tuple[str, str]]:
    """The listed one-shot methods' scoring rule and spread by name, read when asked (the first
    names are not `<score>-<spread>`, and cache keys hold them)."""
    return {m.key: (m.score, m.spread) for m in METHODS.values() if m.score}


def channel() -> list[Method]:
    """The channel methods (section G's `channel_method`), the reference first."""
    return [m for m in METHODS.values() if m.criterion]
