"""Where a run's time goes: every entry the sections need (stages, evaluations, curves), what
computing it cost here, and what a missing one should cost.

The runner records each computed entry's wall seconds, images through a model and threads as a
`timing` entry in the store (`pipeline.Runner._account`). `table` lists them for a plan; `summary`
(a pure function, tested on known values) sums them per stage kind or section for the report's
appendix; `estimate` prices the missing entries from this store's recorded rates, for
`approx report --dry-run`.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from . import data
from . import pipeline
from . import store
from . import train
from .config import ConfigError, DataConfig, MeasureConfig, TrainConfig

COLUMNS = ["section", "kind", "model", "key", "label", "seconds", "images", "threads", "computed",
           "planned_images", "batch", "device"]


def entries(p: dict, sections: list[str]) -> list[dict]:
    """Every distinct entry of the plan, in execution order, with the section that first needs
    it (a stage several sections share is counted once, where it is first used)."""
    out = [{"section": v.section, "kind": st.kind, "model": pipeline.model_config_of(st).name,
            "key": st.key, "label": st.label, "step": st.step, "batch": st.step.train_batch()}
           for v, st in pipeline.distinct_stages(p, sections)]
    curves = {}  # after the stages, as the runner computes them
    variants = pipeline.plan(p, sections)
    for v in variants:
        if pipeline.has_curve(v):
            gradual, _, key = pipeline.curve_key(v, p)
            curves.setdefault(key, {"section": v.section, "kind": "curve", "key": key,
                                    "model": gradual.step.model.name,
                                    "label": f"bits curve of {v.label}", "step": None,
                                    "batch": 0})
    chains = [pipeline.chain(v, p) for v in variants]
    timed = {}  # sections that show the same artifacts share one timing
    for g in pipeline.latency_groups(p, variants, chains):
        timed.setdefault(g.key, {"section": g.section, "kind": "latency", "key": g.key,
                                 "model": g.model, "step": None, "batch": 0, "label":
                                 f"time section {g.section}'s {len(g.evaluations)} variants "
                                 f"in turns",
                                 "evaluations": {st.key for st in g.evaluations}})
    return out + list(curves.values()) + list(timed.values())


def derived(p: dict, sections: list[str], st: store.Store,
            remade: set[str] = frozenset()) -> list[dict]:
    """The plan's entries that are not stages (bits curves, timings in turns), listed as
    `pipeline.dry_run` lists stages, with whether the store holds them: a dry run lists and
    prices them too. Moves nothing. A timing in turns whose evaluations are in `remade` (what
    the run will compute) is taken again: it names the digests of the files it timed, as the
    metrics do."""
    return [{"stage": e["kind"], "key": e["key"], "label": e["label"],
             "cached": st.has(e["kind"], e["key"], ".json", pipeline.JSON_CHECKS[e["kind"]])
             and not e.get("evaluations", set()) & remade}
            for e in entries(p, sections) if e["step"] is None]


def table(p: dict, sections: list[str], st: store.Store, since: float | None = None,
          data_root=None, planned: bool = False) -> pd.DataFrame:
    """The plan's entries with their recorded cost; `computed`: recorded at or after `since`
    (this run), whichever process computed it (a Dask worker writes the same record; its clock
    is trusted). `planned`: also the images each will put through a model (loads the data),
    for a dry run, which reads only this machine's records and moves nothing. `batch`: the
    batch size it trains at as planned (0: it does not train)."""
    rows = []
    for e in entries(p, sections):
        t = (st.peek_json("timing", e["key"], pipeline.JSON_CHECKS["timing"]) if planned else
             st.read_json("timing", e["key"], pipeline.JSON_CHECKS["timing"],
                          pipeline.RECORDS["timing"])) or {}
        rows.append({**{k: e[k] for k in COLUMNS[:5]}, "seconds": t.get("seconds", np.nan),
                     "images": t.get("images", np.nan), "threads": t.get("threads", np.nan),
                     "computed": since is not None and t.get("finished", -1.0) >= since,
                     "planned_images": planned_images(e["step"], data_root) if planned
                     else np.nan, "batch": e["batch"],
                     "device": t.get("device", pipeline.OLD_DEVICE) if t else np.nan})
    return pd.DataFrame(rows, columns=COLUMNS)


def check_data(p: dict, sections: list[str], data_root=None) -> list[str]:
    """What a run refuses of its data before any work, refused here too (ConfigError): a
    dataset this machine lacks while downloads are off, a `train_size` or `val_size` its split
    cannot give (a dry run priced both at median seconds, exit 0, a planner found,
    2026-12-07). Returns the datasets a run would download first: a dry run prices their
    entries without their image counts."""
    absent = []
    for cfg in dict.fromkeys(pipeline.data_configs(p, pipeline.plan(p, sections))):
        try:
            data.source(cfg.dataset).labels("train", data_root, False)
        except ConfigError:
            if not data.downloads_allowed():
                raise
            absent.append(cfg.dataset)
            continue
        data.sizes(cfg, data_root)
    return sorted(set(absent))


def planned_images(step, data_root=None) -> float:
    """Images a step will put through a model, from its configs: every training config's epochs
    (`Step.planned_epochs`) over the training images and its validation passes
    (`train.validation_passes`; epoch selection from the first epoch), a measurement's test and
    validation images. NaN where its configs do not say (encoding, export, sensitivity) or the
    data is not there."""
    if step is None:
        return np.nan
    configs = [getattr(step, f.name) for f in dataclasses.fields(step)]
    data_cfg = next((c for c in configs if isinstance(c, DataConfig)), None)
    trains = [c for c in configs if isinstance(c, TrainConfig)]
    measures = [c for c in configs if isinstance(c, MeasureConfig)]
    if data_cfg is None or not (trains or measures):
        return np.nan
    try:
        n_train, n_val, n_test = data.sizes(data_cfg, data_root)
    except ConfigError:
        return np.nan
    epochs = [(step.planned_epochs(c), train.epoch_size(n_train, c)) for c in trains]
    return float(sum(e * size + train.validation_passes(e) * n_val for e, size in epochs)
                 + len(measures) * (n_test + n_val))


def summary(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """Entries, computed entries and recorded seconds per `by` (kind or section), with images
    per second where images were counted; sorted by seconds, largest first."""
    computed = df.computed.astype(bool)
    d = df.assign(computed=computed, seconds=df.seconds.fillna(0.0), images=df.images.fillna(0),
                  computed_seconds=df.seconds.fillna(0.0).where(computed, 0.0))
    g = d.groupby(by, sort=False)
    out = pd.DataFrame({"entries": g.size(), "computed": g.computed.sum(),
                        "seconds": g.seconds.sum(), "computed seconds": g.computed_seconds.sum(),
                        "images": g.images.sum()})
    out["images/s"] = (out.images / out.seconds).where(out.images > 0)
    return out.sort_values("seconds", ascending=False)


def estimate(todo: pd.DataFrame, recorded: pd.DataFrame, like: dict | None = None
             ) -> pd.DataFrame:
    """`estimate_from` the records made as the run will compute (`like`: the device and torch
    threads it will use, `Executor.setting`; an entry that trains nothing runs on the CPU
    whatever the device) where they price an entry as closely as every record does; else from
    every record, and `other_setting` says so (2 threads train about twice as fast as 1, a GPU
    several times faster than a CPU)."""
    every = estimate_from(todo, recorded)
    near = every.copy()
    trains = (todo.batch > 0).to_numpy()
    untrained = {**(like or {}), **({"device": pipeline.UNTRAINED_DEVICE}
                                    if like and "device" in like else {})}
    for part, setting in ((trains, like or {}), (~trains, untrained)):
        match = np.ones(len(recorded), dtype=bool)
        for column, value in setting.items():
            match &= (recorded[column] == value).to_numpy()
        if part.any():
            est = estimate_from(todo[part], recorded[match])
            # a few stray records (two prunes on 2 threads beside twelve on one, one of them
            # slowed 6x by other work) priced a whole kind: too few to outvote the rest
            held = recorded[match].groupby(["kind", "model"]).size()
            others = recorded[~match].groupby(["kind", "model"]).size()
            few = [held.get((k, m), 0) < MIN_RECORDS and others.get((k, m), 0) > 0
                   for k, m in zip(todo.kind[part], todo.model[part])]
            est.loc[few, "level"] = LEVELS + 1
            for column in est.columns:
                near.loc[part, column] = est[column].to_numpy()
    use = (near.level <= every.level).to_numpy()  # a rate at its batch size beats a median...
    out = every.copy()
    for column in out.columns:
        out.loc[use, column] = near.loc[use, column]
    out["other_setting"] = ~use & every.seconds.notna()
    return out.drop(columns="level")


LEVELS = 6  # `estimate_from`'s ways of pricing an entry, closest first
# records of one kind and model made as the run will compute that `estimate` prefers to others
MIN_RECORDS = 3


def estimate_from(todo: pd.DataFrame, recorded: pd.DataFrame) -> pd.DataFrame:
    """Seconds each entry of `todo` should take, from `recorded` (entries with seconds): the
    images-per-second rate of the same kind, model and training batch size times its planned
    images where both are known, else that of the same kind and model at any batch size, else
    the median seconds of the same kind, model and batch size, else of the same kind and model,
    else of the same kind; NaN when nothing like it was recorded (`level`: which of these
    six, 1 to 6). `other_model`: a training entry priced from other models, none of its own
    being recorded; `other_batch`: one priced although nothing of its kind and model was
    recorded at its batch size (fair on a CPU, which computes at much the same rate whatever
    the batch; on a GPU, whose small batches wait on kernel launches, off several-fold)."""
    rec = recorded.dropna(subset=["seconds"])
    counted = rec[rec.images > 0]
    by_batch = counted.groupby(["kind", "model", "batch"])  # NaN batches (old records) dropped
    rate_at = by_batch.images.sum() / by_batch.seconds.sum()
    rate = counted.groupby(["kind", "model"]).images.sum() / \
        counted.groupby(["kind", "model"]).seconds.sum()
    seen = set(zip(rec.kind, rec.model, rec.batch))
    at_batch = rec.groupby(["kind", "model", "batch"]).seconds.median()
    by_model = rec.groupby(["kind", "model"]).seconds.median()
    by_kind = rec.groupby("kind").seconds.median()

    def one(r) -> tuple[float, int]:
        k = (r.kind, r.model)
        if not pd.isna(r.planned_images):
            if (*k, r.batch) in rate_at.index:
                return r.planned_images / rate_at[(*k, r.batch)], 1
            if k in rate.index:
                return r.planned_images / rate[k], 2
        if (*k, r.batch) in at_batch.index:
            return at_batch[(*k, r.batch)], 3
        if k in by_model.index:
            return by_model[k], 4
        return (by_kind[r.kind], 5) if r.kind in by_kind.index else (np.nan, 6)
    priced = [one(r) for r in todo.itertuples()]
    seconds = pd.Series([s for s, _ in priced], index=todo.index, dtype=float)
    kinds = set(zip(rec.kind, rec.model))
    model = pd.Series([b > 0 and (kind, m) not in kinds
                       for kind, m, b in zip(todo.kind, todo.model, todo.batch)],
                      index=todo.index, dtype=bool)
    batch = pd.Series([b > 0 and (kind, m, b) not in seen
                       for kind, m, b in zip(todo.kind, todo.model, todo.batch)],
                      index=todo.index, dtype=bool)
    known = seconds.notna()
    return pd.DataFrame({"seconds": seconds, "other_batch": batch & ~model & known,
                         "other_model": model & known,
                         "level": pd.Series([lv for _, lv in priced], index=todo.index,
                                            dtype=int)})


def recorded(st: store.Store) -> pd.DataFrame:
    """Every timing record in a store (this machine's rates, whatever profile made them)."""
    rows = []
    folder = st.root / "timing"  # this machine's copy (a URL store: what it fetched)
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        t = st.peek_json("timing", f.stem, pipeline.JSON_CHECKS["timing"])  # its digest holds
        if t is not None:
            rows.append(t)
    df = pd.DataFrame(rows, columns=list(pipeline.TIMING_RECORD))  # batch: NaN in older records
    return df.assign(device=df.device.fillna(pipeline.OLD_DEVICE))


def write(p: dict, sections: list[str], st: store.Store, out, since: float,
          data_root=None) -> pd.DataFrame:
    """out/stages.csv: the run's entries and their cost (the report's appendix reads it)."""
    df = table(p, sections, st, since, data_root)
    store.write_text(out / "stages.csv", df.to_csv(index=False))
    return df
