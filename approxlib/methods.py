"""The pruning methods a variant's `prune` names (the profile's name, the `prune_method` column of
`results.csv`), each one registered entry owning how the report writes it: its name in text and
legends, the words of a results row's label and of a stage's, its cell in the summary table, its
per-layer CSV's suffix and its colour in section H's curves, and for the first one-shot methods,
whose names are not `<score>-<spread>`, their score and spread. How a method prunes lives with the
code that does it: a one-shot method is a score (`prune.SCORES`) and a spread (`prune.SPREADS`, read
by `prune.score_and_spread`), a method with steps of its own a `pipeline.Pruning` subclass
registered under the same key. This is the light list the planner, the names, the analysis and the
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
                 suffix="_channels", words="channels −{ratio}")
METHODS: dict[str, Method] = {m.key: m for m in (
    ONE_SHOT,
    Method("random-unstructured", "random", color="#8C8C8C", score="random", spread="global"),
    Method("l1-layerwise", "layer-wise magnitude", color="#4C72B0", score="l1",
           spread="layerwise"),
    Method("l1-sensitivity", "sensitivity-guided", color="#55A868", score="l1",
           spread="sensitivity"),
    GRADUAL, CHANNEL)}
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
