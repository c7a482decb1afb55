"""The report's sections: one `Section` per notebook (tables, figures, generated text), run in
the notebook's kernel by `run_section`. `publish` executes the notebooks and renders the page.
"""
from __future__ import annotations

import html
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Image, Markdown, display

from . import data
from . import measure
from . import analysis, controls, methods, names, plots, stats
from . import pipeline
from . import quants
from . import runtime
from . import steps
from . import store
from .config import (
    CONSTANT,
    ConfigError,
    check_dataset,
    check_model,
    check_ratio,
    config_hash,
    data_config,
    expanded,
    load_profile,
    parse_value,
    profile_label,
    show,
)
from .sections import SECTIONS, parse_sections

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"

# The original study's published figures (seed README), keyed (model, dataset, ratio, quant):
# (top-1 %, size MB, latency ms); None where the README gives no unambiguous number.
PUBLISHED = {
    ("mobilenetv2", "cifar10", 0.0, quants.NONE.key): (65.3, 8.769, 4.922),
    ("mobilenetv2", "cifar10", 0.5, quants.NONE.key): (80.2, 8.770, 4.818),
    ("resnet18", "cifar10", 0.0, quants.NONE.key): (74.5, 42.73, None),
    ("resnet18", "cifar10", 0.3, quants.NONE.key): (82.5, 42.73, None),
    ("resnet18", "cifar10", 0.5, quants.NONE.key): (81.6, 42.7314, 2.438),
    ("resnet18", "cifar10", 0.5, quants.DYNAMIC.key): (81.6, 42.7288, 2.605),
    ("resnet18", "cifar10", 0.7, quants.NONE.key): (83.0, 42.73, None),
    ("resnet18", "cifar100", 0.0, quants.NONE.key): (42.9, 42.73, 2.620),
    ("resnet18", "cifar100", 0.5, quants.NONE.key): (56.4, 42.73, 2.589),
}


def _from_repo(path) -> Path:
    path = expanded(path)  # `~/models` is the home folder's, not a folder named ~ here
    return path if path.is_absolute() else REPO / path


def _store_root(models_dir) -> str | Path:
    """An artifact store: a folder (relative to the repository) or an fsspec URL, as given."""
    return str(models_dir) if store.is_url(models_dir) else _from_repo(models_dir)


def _display(*objs) -> None:
    display(*objs)


def _md(text: str) -> None:
    _display(Markdown(text))


def _table(t: pd.DataFrame, decimals: dict[str, int] | None = None, default: int = 2,
           formats: dict[str, str] | None = None) -> None:
    """Show `t` without its index, each number rounded once, at its column's decimals
    (`default` unless `decimals` names the column; whole numbers as they are; `formats` for
    anything else, e.g. percentages): rounding the columns and then printing all of them at
    one precision showed 0.0752 ms as 0.07 and 3.08 MFLOPs as 3.10."""
    fmt = {c: "{:d}" if pd.api.types.is_integer_dtype(t[c])
           else f"{{:.{(decimals or {}).get(c, default)}f}}"
           for c in t.columns if pd.api.types.is_numeric_dtype(t[c])
           and not pd.api.types.is_bool_dtype(t[c])}
    _display(t.style.hide(axis="index").format({**fmt, **(formats or {})}, na_rep="–"))


SAME_SIZE = 0.01  # files whose sizes differ by less than this fraction are as large


def _size_words(ratio: float) -> str:
    if abs(ratio - 1) < SAME_SIZE:
        return f"{ratio:.3f}×: no real change"
    return f"{ratio:.2f}× smaller" if ratio > 1 else f"{1 / ratio:.2f}× larger"


def _fmt_pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _accuracy_interval(r) -> str:
    """A row's 95% interval in percent (Wilson for one run, a t-interval over seeds cut to
    0–100%), or "–" where the seeds agree to the image and give none."""
    if r.acc_lo != r.acc_lo:
        return "–"
    return f"{100 * r.acc_lo:.1f}–{100 * r.acc_hi:.1f}"


@dataclass
class SectionRun:
    """What a section shows, computed (or read from the cache) by `run_section`: its rows, each
    row's metrics, section F's bits curves and section H's sensitivity tables. The section
    classes only format it."""
    letter: str
    p: dict
    df: pd.DataFrame
    metrics: dict  # Variant → its metrics, in the rows' order
    curves: dict  # Variant → bits-curve points (section F's gradually pruned variants)
    sensitivity: dict  # (model, pruning method) → its cached sensitivity table (section H)
    out: Path
    labels: dict  # dataset → the test labels its rows' stored predictions line up with
    seconds: float
    # this CPU's float32 matrix-multiply rate in each runtime at the profile's threads (GFLOP/s,
    # by runtime key), measured as the section ran, for a section that compares its throughputs
    # with it (`Spec.roofline`)
    peak_gflops: dict = field(default_factory=dict)


def run_section(letter: str, profile: str = "quick", model: str | None = None,
                models: list | None = None, dataset: str | None = None,
                ratio: float | None = None, ratios: list | None = None,
                overrides: dict | None = None, out: str | None = None,
                models_dir: str = "models", data_dir: str | None = None,
                threads: int | None = None) -> SectionRun:
    """Compute (or load from the cache) one section's variants.

    Parameters mirror a notebook's parameters cell; None means "the profile's value" (for
    `threads`, the torch threads of what it computes: this process's setting).
    Bad values raise ConfigError with the same message the CLI prints.
    """
    letter = parse_sections(letter)[0]
    _check_threads(threads)
    ov, chosen = _section_overrides(SECTIONS[letter], model, models, dataset, ratio, ratios,
                                    overrides)
    p = load_profile(profile, ov)
    _check_paths(out, models_dir, data_dir)
    # Relative paths are taken from the repository root, so a notebook opened in JupyterLab
    # (whose working directory is notebooks/) finds the same cache as the CLI.
    # A notebook run by hand (no `out`) never changes a published report's results.csv: it
    # writes to a folder named by its parameters. `approx report` passes `out`.
    out = _from_repo(out or Path("reports") / profile_label(profile) / "explore" / config_hash(
        letter, chosen, dataset, ov, str(models_dir), str(data_dir)))  # -p and -y alike
    artifacts = store.Store(_store_root(models_dir))
    data_dir = _from_repo(data_dir or data.default_root())
    t0 = time.perf_counter()
    with measure.num_threads(threads or torch.get_num_threads()):
        df, runner = pipeline.run(p, [letter], artifacts, out, data_dir, progress=False,
                                  models={letter: chosen} if chosen else None,
                                  on_first_compute=_announcer(letter, artifacts))
    sensitivity = {(v.model, v.prune): runner.sensitivity(st) for v in runner.metrics
                   for st in pipeline.stages(v, p) if isinstance(st.step, steps.Sensitivity)}
    seconds = time.perf_counter() - t0
    labels = {d: data.test_labels(data_config(p, d), data_dir).numpy()
              for d in dict.fromkeys(v.dataset for v in runner.metrics)}
    peak = runtime.matmul_rates(p["threads"]) if SECTIONS[letter].roofline else {}
    return SectionRun(letter, p, df, runner.metrics, runner.curves, sensitivity, out, labels,
                      seconds, peak)


def _check_threads(threads) -> None:
    from . import cli
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or not 1 <= threads <= cli.MAX_THREADS):
        raise ConfigError(f"threads must be a whole number from 1 to {cli.MAX_THREADS}, or None "
                          f"for this process's setting; got {show(threads)}")


def _announcer(letter: str, artifacts: store.Store):
    """What a notebook prints before the first entry it computes (a notebook run by hand
    trained for minutes without a word, and a mistyped models_dir made a new store in silence,
    2026-12-07); nothing where every entry is there."""
    new = not store.is_url(artifacts.url) and (
        not artifacts.root.is_dir() or not any(artifacts.root.iterdir()))

    def announce(kind: str, key: str) -> None:
        print(f"section {letter}: {kind} {key} is not in {artifacts.url}"
              + (" (an empty models folder: a new one, or a mistyped models_dir?)" if new
                 else "")
              + f"; computing it and whatever else is missing now, on "
                f"{torch.get_num_threads()} torch threads, without progress bars (`approx "
                f"report --sections {letter} --dry-run` with this profile, settings and models "
                f"folder lists them; `approx report` shows progress)", flush=True)
    return announce


def _structured(name: str, value):
    """A list or dict parameter given as YAML text, read; text that opens a list or mapping
    but is not YAML is named as such (it read "must be a dict, got '{epochs: 2'")."""
    if not isinstance(value, str):
        return value
    parsed = parse_value(value, name)
    if isinstance(parsed, str) and parsed.lstrip()[:1] in ("[", "{"):
        raise ConfigError(f"{name}: {show(value)} is not valid YAML (a list reads [0.3, "
                          f"0.5], a mapping {{epochs: 2}})")
    return parsed


def _check_paths(out, models_dir, data_dir) -> None:
    """What `approx` checks of its paths before any work, with the parameters' names: an empty
    `models_dir` made the repository root a store, and an `out` that is a file failed after
    every stage had run (a papermill user's walkthrough, 2026-12-07)."""
    from . import cli
    for name, value in (("out", out), ("models_dir", models_dir), ("data_dir", data_dir)):
        if value is not None and not str(value).strip():
            raise ConfigError(f"{name} is empty (an unset variable?); name a path, or leave it "
                              f"out for the default")
    cli.check_store(str(_store_root(models_dir)), "models_dir")
    if out is not None:
        cli.check_writable_dir(_from_repo(out), "out")
    if data_dir is not None:  # may be read-only (the data there), not a file or below one
        cli.folder_base(_from_repo(data_dir), "data_dir", data_dir)


def _section_overrides(spec, model, models, dataset, ratio, ratios, overrides
                       ) -> tuple[dict, list | None]:
    """The profile overrides a notebook's parameters make, checked, and its chosen models."""
    # `papermill -p ratios '[0, 0.5]'` passes text; list and dict parameters accept YAML text
    # (what `-y` or `--set` would give). Scalars are never re-parsed: a wrong type stays wrong.
    ratios, models, overrides = (_structured(name, x) for name, x in (
        ("ratios", ratios), ("models", models), ("overrides", overrides)))
    if overrides is not None and not isinstance(overrides, dict):
        raise ConfigError(f"overrides must be a dict of profile parameters, got {overrides!r}")
    ov = dict(overrides or {})
    if dataset is not None:
        check_dataset(dataset)
        ov[spec.dataset_key] = dataset
    if ratio is not None:
        check_ratio(ratio)
        ov["ratio"] = ratio
    if ratios is not None:
        ov["ratios"] = ratios
    chosen = None
    if model is not None or models is not None:
        chosen = [model] if model is not None else models
        if not isinstance(chosen, list) or not chosen:
            raise ConfigError(f"models must be a non-empty list, got {models!r}")
        for m in chosen:
            check_model(m)
    return ov, chosen


class Section:
    """One report section: shows what `run_section` computed (tables, figures, generated text).
    It formats and never runs the pipeline. Subclasses name the one section they show."""
    letter: str | None = None

    def __init__(self, run: SectionRun):
        if self.letter is not None and run.letter != self.letter:
            raise ConfigError(f"{type(self).__name__} shows section {self.letter}, "
                              f"not {run.letter}")
        self.letter, self.spec, self.p = run.letter, SECTIONS[run.letter], run.p
        self.out, self.labels, self.seconds = run.out, run.labels, run.seconds
        self.run = run
        self.df, self.metrics = run.df.copy(), dict(run.metrics)
        # each row carries its variant (run's rows and metrics are in one order): what tables
        # and findings look its metrics up by, never rebuilt from the row's columns
        assert len(self.metrics) == len(self.df)
        self.df["variant_id"] = list(self.metrics)
        self.df["variant"] = [names.variant_label(r) for r in self.df.itertuples()]
        ci = [stats.wilson(round(r.accuracy * r.test_images), r.test_images)
              for r in self.df.itertuples()]
        self.df["acc_lo"], self.df["acc_hi"] = [c[0] for c in ci], [c[1] for c in ci]
        self.n_seeds = 1
        if self.spec.seeds and self.df.seed.nunique() > 1:
            self._average_seeds()
        self._fig = 0
        self._tab = 0

    def _average_seeds(self) -> None:
        """Several seeds (profile `seeds`): one row per variant whose accuracy is the mean over
        seeds and whose interval is the Student-t 95% interval of that mean
        (`analysis.average_seeds`); the profile seed's run stays the one the paired tests
        (McNemar) compare."""
        self.df_seeds = self.df
        self.df = analysis.average_seeds(self.df, int(self.p["seed"]))
        self.n_seeds = int(self.df.seeds.min())
        self.metrics = {v: m for v, m in self.metrics.items() if v.seed is None}

    # ------------------------------------------------------------------------------ captions
    @property
    def dataset(self) -> str:
        return self.df.dataset.iloc[0]

    def dataset_text(self) -> str:
        name = names.dataset(self.dataset)
        orig, src = self.spec.original_dataset, data.source(self.dataset)
        if self.dataset != orig and src.builtin:
            name += f" (stand-in for the original's {names.dataset(orig)})"
        elif not src.builtin:  # your own images: what the reader cannot know otherwise
            counts = [f"{n:,} images in {part}/" for part in src.parts
                      if (n := src.count(part)) is not None]
            name += f", {src.classes} classes" + (f" ({', '.join(counts)})" if counts else "")
        return name

    def shared_data_note(self) -> str:
        """A section with a dataset key of its own (D: `dataset_d`) given the other sections'
        data trains the same models: its numbers repeat theirs, which the reader should know
        before comparing them (a review of the report found D's equal to B's)."""
        if self.spec.dataset_key == "dataset" or self.dataset != self.p["dataset"]:
            return ""
        return (f"\n\n*This profile gives section {self.letter} the other sections' dataset, so "
                f"its models are theirs (the summary's last column names the sections that "
                f"share each): its accuracies and sizes repeat theirs"
                + ("; its latencies are timed again, with this section's variants"
                   if timed_in_turns(self.df) else ", its latencies too") + ".*")

    def protocol_text(self) -> str:
        p = self.p
        return (f"{self.training_text()}; {self.variants_text()}{_fraction_words(p)}; "
                f"{names.setting('stem', p['stem'])}; test accuracy on {_test_split(self.df)}; "
                f"{latency_words(self.df, p)}")

    def training_text(self) -> str:
        """How the baselines were trained, or where their given weights came from."""
        p = self.p
        size = "all" if p["train_size"] is None else f"{p['train_size']:,}"
        given = sorted({f"{names.model(r.model)} from {_literal(r.init)}"
                        for r in self.df.itertuples()
                        if isinstance(r.init, str) and r.init})
        trained = (f"{names.count(p['epochs'], 'epoch')} SGD, "
                   + ", ".join(names.setting(k, p[k]) for k in TRAINING_SETTINGS)
                   + f"; checkpoint picked on {p['val_size']:,} validation images")
        return (f"{size} training images ({_augmentation(p)}), "
                + (f"baseline weights given ({', '.join(given)}), not trained here"
                   + self._carved_words() if given else trained))

    def _carved_words(self) -> str:
        """Given weights validated on images carved from the training part: they may have
        trained on them, so validation (which picks references and files) is optimistic."""
        if "val" in data.source(self.dataset).parts:
            return ""
        return (f" (validation: {self.p['val_size']:,} images carved from the training images, "
                f"which the given weights may have seen, so optimistic; a val/ folder avoids it)")

    def variants_text(self) -> str:
        """How this section's variants are made from the baseline (sections F, G override)."""
        p = self.p
        return (f"pruned models fine-tuned {names.count(p['finetune_epochs'], 'epoch')} at lr "
                f"{p['finetune_lr']} ({names.SCHEDULES[p['finetune_schedule']]})")

    def caption(self, kind: str, what: str) -> str:
        if kind == "Figure":
            self._fig += 1
            n = self._fig
        else:
            self._tab += 1
            n = self._tab
        # the section's header states the dataset and protocol once; a caption says what it shows
        return f"*{kind} {self.letter}{n}. {what}.*"

    # ------------------------------------------------------------------------------- content
    def header(self) -> None:
        title = self.spec.heading(dict.fromkeys(self.df.model), self.dataset)
        _md(f'<a id="section-{self.letter}"></a>\n\n## Section {self.letter}. {title}\n\n'
            f"Dataset: **{_literal(self.dataset_text())}**; profile "
            f"**{_literal(profile_label(self.p['profile']))}**"
            + (f" ({_literal(self.p['description'])})" if self.p["description"] else "")
            + f"\n\nProtocol: {self.protocol_text()}."
            + self.shared_data_note())
        # before any number that would mislead
        caution = analysis.chance_finding(self.df, "in this section")
        if caution is not None:
            _md(caution[1])
        skewed = analysis.imbalance_note(self.labels)
        if skewed is not None:
            _md(skewed)

    def table(self) -> None:
        d = self.df
        acc = ("top-1 acc. (%)" if self.n_seeds == 1
               else f"top-1 mean of {self.n_seeds} seeds (%)")
        t = pd.DataFrame({
            "variant": d.variant, acc: (d.accuracy * 100).round(2),
            "95% CI (%)": [_accuracy_interval(r) for r in d.itertuples()],
            "size (MB)": d.size_bytes / 1e6, "latency (ms)": d.latency_ms,
            f"throughput @{self.p['throughput_batch']} (img/s)":
                d.throughput_img_s.round(0).astype("Int64"),
            "params": d.params, "sparsity (%)": d.sparsity * 100,
        })
        balanced = analysis.skewed_rows(d).any()
        if balanced:
            # beside top-1, which rewards naming the frequent class (`analysis.imbalance_note`)
            t.insert(3, "balanced acc. (%)" if self.n_seeds == 1
                     else f"balanced acc., seed {self.p['seed']} (%)",
                     (d.balanced_accuracy * 100).round(2))
        if self.is_original_protocol():
            # the original had no dense control: its baseline's figures are not the control's
            pub = [None if names.is_control(r) else
                   PUBLISHED.get((r.model, r.dataset, r.prune_ratio, r.quant))
                   for r in d.itertuples()]
            t["published acc. (%)"] = [x[0] if x else None for x in pub]
            t["published size (MB)"] = [x[1] if x else None for x in pub]
            t["published latency (ms)"] = [x[2] if x else None for x in pub]
        if self.n_seeds > 1:
            t.insert(2, "sd (points)", 100 * d.acc_sd)
            t.insert(4, f"seed {self.p['seed']} (%)", 100 * d.accuracy_seed)
        _table(t, {"size (MB)": 3, "latency (ms)": 3, "published size (MB)": 3,
                   "published latency (ms)": 3})
        _md(self.caption("Table", "Every variant of this section" + (
            "" if self.n_seeds == 1 else
            f"; accuracy = mean over {self.n_seeds} seeds with its Student-t 95% interval, size "
            f"and latency those of seed {self.p['seed']}, whose run the paired tests compare")
            + (f"; {names.BALANCED} = {names.TERMS[names.BALANCED]}" if balanced else "")))

    def is_original_protocol(self) -> bool:
        return self.dataset == self.spec.original_dataset and self.p["schedule"] == CONSTANT

    def _figure(self, fig, what: str) -> None:
        """Show a figure as an embedded PNG (works under any matplotlib backend) + caption."""

        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        plt.close(fig)
        _display(Image(data=buf.getvalue(), format="png"))
        _md(self.caption("Figure", what))

    def fig_acc_vs_size(self) -> None:
        sizes = self.df.size_bytes
        if sizes.max() / sizes.min() - 1 < SAME_SIZE:  # one size: the accuracies are the figure
            lo, hi = (f"{x / 1e6:.2f}" for x in (sizes.min(), sizes.max()))
            self._figure(plots.accuracy_rows(self.df),
                         f"Top-1 accuracy (95% intervals) of each variant; every file is "
                         f"{lo if lo == hi else f'{lo}–{hi}'} MB (a pruned checkpoint stores "
                         f"its zeros)")
            return
        self._figure(plots.acc_vs_size(self.df), "Top-1 accuracy against size on disk")

    def fig_bars(self) -> None:
        self._figure(plots.metric_bars(self.df),
                     "Accuracy, batch-1 CPU latency and size on disk per variant")

    def fig_vs_ratio(self) -> None:
        self._figure(plots.vs_ratio(self.df), "Accuracy, latency and size against pruning ratio")

    def fig_models(self) -> None:
        self._figure(plots.models_side_by_side(self.df),
                     "The two architectures side by side, baseline and pruned")

    def _layers(self) -> dict[float, pd.DataFrame]:
        return {v.prune_ratio: pd.DataFrame(m["layers"]) for v, m in self.metrics.items()
                if v.quant == quants.NONE.key and v.prune_ratio > 0}

    def layer_table(self) -> None:
        layers = self._layers()
        first = next(iter(layers.values()))
        t = pd.DataFrame({"layer": first.layer, "shape": first["shape"], "weights": first.total})
        for r, d in sorted(layers.items()):
            t[f"sparsity @ {r:.0%} (%)"] = (d.sparsity * 100).values
        _table(t, default=1)
        _md(self.caption("Table", "Per-layer sparsity (zero weights / weights) at each global "
                         "pruning ratio; CSV files with the original's columns are in the "
                         "report's `sparsity/` folder"))

    def fig_layers(self) -> None:
        self._figure(plots.layer_sparsity(self._layers()),
                     "Per-layer sparsity at each global pruning ratio")

    # ------------------------------------------------------------------------------ findings
    @staticmethod
    def _variant(r) -> pipeline.Variant:
        """The variant a row of this section's tables shows."""
        return r.variant_id

    def _pred(self, v: pipeline.Variant) -> np.ndarray:
        return np.asarray(self.metrics[v]["predictions"])

    def mcnemar(self, a: pipeline.Variant, b: pipeline.Variant) -> dict:
        """McNemar's test of two variants on the test images both scored: their stored
        predictions against the labels `run_section` loaded (`stats.mcnemar`)."""
        return stats.mcnemar(self.labels[a.dataset], self._pred(a), self._pred(b))

    def paired_words(self, a: pipeline.Variant, b: pipeline.Variant) -> str:
        """"McNemar p = …, <verdict>", or "identical predictions" (no test to run)."""
        if np.array_equal(self._pred(a), self._pred(b)):
            return "identical predictions"
        p = self.mcnemar(a, b)["p_value"]
        return f"McNemar {stats.p_words(p)}, {stats.verdict_words(p)}"

    def _compare(self, base: pipeline.Variant, other: pipeline.Variant) -> str:
        mb, mo = self.metrics[base], self.metrics[other]
        test = self.mcnemar(base, other)
        delta = 100 * (mo["accuracy"] - mb["accuracy"])
        verdict = stats.verdict_words(test["p_value"])
        size_ratio = mb["size_bytes"] / mo["size_bytes"]
        lat = mo["latency_ms"] / mb["latency_ms"] - 1
        lat_verdict = stats.timing_verdict(mb["latency_ms"], mb["latency_iqr_ms"],
                                           mo["latency_ms"], mo["latency_iqr_ms"],
                                           min(mb.get("rounds", 0), mo.get("rounds", 0)))
        disagree = test["only_a"] + test["only_b"]  # none: "p = 1 on 0 images" said nothing
        paired = (f"McNemar {stats.p_words(test['p_value'])} on "
                  f"{names.count(disagree, 'image')} where they disagree: {verdict}"
                  if disagree else "identical predictions")
        return (f"- **{names.variant_label(other)}** vs **{names.variant_label(base)}**: top-1 "
                f"{self._top1(base)} → {self._top1(other)} "  # as the Δ
                f"({delta:+.2f} points; {paired}). "
                f"Size {mb['size_bytes'] / 1e6:.3f} → {mo['size_bytes'] / 1e6:.3f} MB "
                f"({_size_words(size_ratio)}). Latency {mb['latency_ms']:.3f} → "
                f"{mo['latency_ms']:.3f} ms ({100 * lat:+.1f}%, {lat_verdict}).")

    def _top1(self, v: pipeline.Variant) -> str:
        """A variant's top-1, "at chance" where it is within `analysis.CHANCE_MARGIN` of always
        naming the most frequent test class: on an imbalanced folder, models that named one
        class for every image read as small losses ("83.6% → 80.8%", a user, 2026-12-07)."""
        acc, chance = self.metrics[v]["accuracy"], stats.chance_level(self.labels[v.dataset])
        return f"{100 * acc:.2f}%" + (" (at chance)" if acc <= chance + analysis.CHANCE_MARGIN
                                      else "")

    def _drop_controls(self) -> None:
        """Sections whose tables and figures show compressed variants only (F, G): the dense
        controls stay in `metrics`, for `_control_lines`."""
        self.df = self.df[analysis.uncontrolled(self.df)].reset_index(drop=True)

    def _control_lines(self, dense: pipeline.Variant, pruned: pipeline.Variant) -> list[str]:
        """Pruned vs its equal-compute control, control vs baseline (none without a control)."""
        control = pipeline.control_of(pruned)
        if control not in self.metrics:
            return []
        lines = ["  " + self._compare(a, b) for a, b in ((control, pruned), (dense, control))]
        return lines + self._control_lost(dense, control, pruned)

    def _control_lost(self, dense: pipeline.Variant, control: pipeline.Variant,
                      pruned: pipeline.Variant) -> list[str]:
        """Where the extra training itself cost the dense model accuracy beyond noise, pruned
        vs control credits pruning with that loss: a reader took smoke's +21 points against a
        control 28 points below its baseline for pruning's doing (review, 2026-12-07)."""
        acc = {v: self.metrics[v]["accuracy"] for v in (dense, control, pruned)}
        if acc[control] >= acc[dense] or not stats.significant(
                self.mcnemar(dense, control)["p_value"]):
            return []
        return [f"  - The extra training lowered the dense model by "
                f"{100 * (acc[dense] - acc[control]):.2f} points, so pruned vs control flatters "
                f"pruning by up to that much; against the better dense model, the baseline, "
                f"the pruned model is {100 * (acc[pruned] - acc[dense]):+.2f} points "
                f"({self.paired_words(dense, pruned)})."]

    def _seed_lines(self, controlled: list) -> list[str]:
        """Pruned − control, pruned − baseline and control − baseline, paired by seed, over the
        profile's seeds (`analysis.paired_differences`)."""
        d = self.df_seeds
        out = [f"- Over {self.n_seeds} seeds ({', '.join(map(str, sorted(d.seed.unique())))}), "
               f"paired by seed (mean difference, 95% t-interval):"]
        for v in controlled:
            sel = d[(d.model == v.model) & (d.dataset == v.dataset) & (d.quant == quants.NONE.key)]
            role = analysis.roles(sel, v.prune_ratio, finetuned_only=False)
            diff = analysis.paired_differences(sel.assign(role=role))
            parts = [f"{r['difference']} {100 * r['mean']:+.2f} points ("
                     + (f"no interval: {stats.no_interval(r)})" if stats.no_interval(r) else
                        f"{100 * r['lo']:+.2f} to {100 * r['hi']:+.2f}, "
                        f"{stats.interval_words(r)})")
                     for r in diff.to_dict("records")]
            out.append(f"  - {names.variant_label(v)}: " + "; ".join(parts) + ".")
        return out

    def _baselines(self, a: pipeline.Variant, b: pipeline.Variant) -> str:
        ma, mb = self.metrics[a], self.metrics[b]
        return (f"- Baselines: {names.model(a.model)} {_fmt_pct(ma['accuracy'])} vs "
                f"{names.model(b.model)} {_fmt_pct(mb['accuracy'])}; "
                f"{names.model(a.model)} is {ma['size_bytes'] / mb['size_bytes']:.1f}× the "
                f"size and {ma['latency_ms'] / mb['latency_ms']:.2f}× the batch-1 latency of "
                f"{names.model(b.model)} on this CPU.")

    def findings(self) -> None:
        """'What the numbers say': every statement is computed from this section's rows."""
        lines = []
        for v in self.metrics:
            if v.prune_ratio == 0 and v.quant == quants.NONE.key:
                continue
            base = pipeline.Variant(v.section, v.model, v.dataset)
            lines.append(self._compare(base, v))
        int8 = [v for v in self.metrics if v.quant != quants.NONE.key]
        for v in int8:
            float_v = pipeline.Variant(v.section, v.model, v.dataset, v.prune_ratio)
            if float_v in self.metrics:
                lines.append(self._compare(float_v, v))
        lines += [f"- {quants.QUANTS[q].note}" for q in dict.fromkeys(v.quant for v in int8)
                  if q in quants.QUANTS and quants.QUANTS[q].note]
        baselines = [v for v in self.metrics
                     if v == pipeline.Variant(v.section, v.model, v.dataset)]
        for other in baselines[1:]:  # architectures side by side: each against the first
            lines.append(self._baselines(baselines[0], other))
        pruned = [v for v in self.metrics if v.prune_ratio > 0]
        controlled = [v for v in pruned if v.quant == quants.NONE.key
                      and pipeline.control_of(v) in self.metrics]
        lost_said = set()  # a control that lost to its baseline: said here too (not only in F,
        for v in controlled:  # G), once per control, which every ratio shares
            lines.append(self._compare(pipeline.control_of(v), v))
            if pipeline.control_of(v) not in lost_said:
                lost = self._control_lost(pipeline.Variant(v.section, v.model, v.dataset),
                                          pipeline.control_of(v), v)
                lost_said.update([pipeline.control_of(v)] if lost else [])
                lines += lost
        for c in dict.fromkeys(pipeline.control_of(v) for v in controlled):
            lines.append(self._compare(pipeline.Variant(c.section, c.model, c.dataset), c))
        if self.n_seeds > 1:
            lines += self._seed_lines(controlled)
        if pruned:
            p = self.p
            lines.append(
                f"- Every pruned model trained {names.count(p['finetune_epochs'], 'more epoch')} "
                f"(lr {p['finetune_lr']}, {names.SCHEDULES[p['finetune_schedule']]}) than its "
                f"baseline. "
                + ("The dense control trained the same way without pruning: pruned vs control "
                   "is what pruning itself does, control vs baseline what the extra training "
                   "does (section H, where it runs, repeats this over seeds and protocols)."
                   if controlled else
                   "Without an equal-compute dense control, an accuracy gain cannot be "
                   "credited to pruning rather than to the extra, lower-lr training (the "
                   "original's confound)."))
            same_size = all(abs(self.metrics[v]["size_bytes"] / self.metrics[
                pipeline.Variant(v.section, v.model, v.dataset)]["size_bytes"] - 1) < SAME_SIZE
                for v in pruned if v.quant == quants.NONE.key)
            if same_size:
                lines.append("- Pruned files are as large as dense ones: the checkpoint stores "
                             "every zero as a 32-bit float, as the original found.")
        if self.is_original_protocol():
            lines.append("- The published column of the table gives the original study's "
                         "numbers for the same variants.")
        _md("**What the numbers say.**\n\n" + "\n".join(lines))


# ----------------------------------------------------------------------------- orchestration

# Characters that markdown would read as markup inside a line (a `|` splits a table row, a
# backtick closes a code span, `*` and `_` emphasize, `[`…`](` links, `:` autolinks a URL), as
# character references; html.escape takes care of `<`, `>`, `&` and quotes.
_MARKDOWN = str.maketrans({c: f"&#{ord(c)};" for c in "\\`*_{}[]()+-.!|~:"})


_and = names.joined  # "A, B and C" (its home: `names`, which analysis reads too)


def _literal(value) -> str:
    """`value` as text a markdown cell shows exactly as is, on one line (issue 14: parameters
    and environment strings reach the report; none may inject markup)."""
    return html.escape(" ".join(str(value).split())).translate(_MARKDOWN)


def _test_split(results: pd.DataFrame) -> str:
    """What the accuracies were measured on, from the rows (a profile may subsample it)."""
    n = sorted(set(results.test_images)) if "test_images" in results else []
    return (f"{n[0]:,} test images" if len(n) == 1 else
            f"{n[0]:,}–{n[-1]:,} test images" if n else "the test split")


TRAINING_SETTINGS = ("schedule", "lr", "batch_size", "weight_decay")  # the protocol names them


def _augmentation(p: dict) -> str:
    kinds = ([f"random crops (padding {p['crop_padding']})"] * bool(p["crop_padding"])
             + ["random horizontal flips"] * bool(p["flip"]))
    return " and ".join(kinds) or "no augmentation"


def _fraction_words(p: dict) -> str:
    """What a fine-tuning epoch is, where it is not the whole training split."""
    f = p["finetune_fraction"]
    return ("" if f is None
            else f" (each fine-tuning epoch a fresh random {f:.0%} of the training images)")


def latency_words(rows: pd.DataFrame, p: dict) -> str:
    """What the latency of `rows` is, or that none was measured (`Spec.timed`)."""
    if rows.latency_ms.isna().all():
        return "latency not measured (the section compares accuracies)"
    return (f"latency = median batch-1 CPU time, {names.count(p['threads'], 'thread')}, "
            f"{timing_words(rows, p)}; {stats.TIMING_NOISE} = "
            f"{names.TERMS[stats.TIMING_NOISE]}")


def timed_in_turns(rows: pd.DataFrame) -> bool:
    """Whether every one of `rows` was timed in turns with its section (`latency_rounds` > 0)."""
    return bool(len(rows)) and (rows.get("latency_rounds", pd.Series([0])).fillna(0) > 0).all()


def timing_words(rows: pd.DataFrame, p: dict) -> str:
    """How the latencies of `rows` were taken, from the rows themselves (`latency_rounds`):
    timed together in turns after every stage (`pipeline.latency_groups`), or alone."""
    rounds = sorted(set(rows.get("latency_rounds", pd.Series([0])).fillna(0).astype(int)))
    if timed_in_turns(rows):
        return (f"the section's variants timed together after every stage had run, in turns "
                f"over {', '.join(map(str, rounds))} rounds ({p['latency_min_time']:g} s per "
                f"variant and batch in all): the median over rounds of each round's median "
                f"single call, so that their ratios compare like with like")
    return "each taken when its variant was evaluated"


def pruned_words(r) -> str:
    """The summary's "pruned" cell: how much and how, which control, whether distilled."""
    text = (f"{r.prune_ratio:.0%} {methods.of(r.prune_method).cell}"
            if r.prune_ratio > 0 else "–")
    if names.is_control(r):
        control = controls.label(r.control)
        epochs = getattr(r, "finetune_epochs", 0)  # the summary lists several per model
        if r.prune_ratio == 0 and epochs:
            lr = getattr(r, "control_lr", None)  # rows written before the column: none
            control += (f" (+{int(epochs)} epoch{'s' * (epochs != 1)}"
                        + ("" if lr is None or pd.isna(lr) else f" at lr {lr:g}") + ")")
        text = control if r.prune_ratio == 0 else f"{text}, {control}"
    return text + (" + KD" if r.kd else "")
