"""`approx`: the study from the command line.

    approx report --profile quick [--sections A,C] [--set epochs=3] [--dry-run]
    approx train --profile quick --model resnet18 --out r18.pt
    approx prune --checkpoint r18.pt --ratio 0.5 --out r18_p50.pt
    approx quantize --checkpoint r18_p50.pt --out r18_p50_int8.pt
    approx evaluate --checkpoint r18_p50_int8.pt
    approx compress --checkpoint r18.pt --out r18.apx     # Deep Compression → .apx
    approx evaluate --checkpoint r18.apx
    approx verify --models-dir models                     # what a run would recompute

Every user error (bad name, bad value, missing data or checkpoint, an output path that cannot be
written, a full or read-only disk) is one line on stderr and exit status 2; nothing is written
unless the command succeeds. A bug still shows its traceback (exit 1).
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import select
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from . import executors
from . import quants
from .config import (MODELS, SHIPPED_CODEC, ConfigError, ModelConfig, PruneConfig,
                     QuantConfig, check_dataset, check_image_size, check_model, check_ratio,
                     data_config, default, finetune_config, for_model, load_profile,
                     measure_config, parse_overrides, printable, profile_label, profile_names,
                     recorded)

# torch, the pipeline, the store and the report are imported inside the command that needs
# them: `approx --help`, `approx profiles` and a bad argument answer in 0.1 s (this module
# imports in 46 ms), not after the seconds that importing torch takes.

MAX_THREADS = 1024  # --threads, --workers: as the profile's `threads` (config.MeasureConfig)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse's default prints the usage too)
        if len(message) > 300:  # it quotes the bad value, which may be 5000 digits long
            message = message[:299] + "…"
        raise ConfigError(message)


def named_arg(text: str) -> str:
    """A path option's value, never empty: "" (often an unset shell variable) would otherwise
    mean the working directory, which would become the store or the report folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty (an unset variable?); name a path")
    return text


def path_arg(text: str) -> Path:
    return Path(named_arg(text))


def _common(p: argparse.ArgumentParser, profile_default: str = "quick") -> None:
    p.add_argument("--profile", default=profile_default,
                   help=f"parameter set from profiles.yaml ({', '.join(profile_names())}) or "
                        f"a .yaml file of your own (`base: quick` and the keys it changes; "
                        f"without base:, the bare defaults); default {profile_default}")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one profile parameter (repeatable), e.g. --set epochs=3")
    p.add_argument("--models-dir", default="models", type=named_arg,
                   help="artifact cache: a folder, or an fsspec URL every worker reaches "
                        "(s3://bucket/approx, file:///shared/approx); default models/")
    p.add_argument("--data-dir", default=None, type=path_arg,
                   help="dataset folder (default: data/)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _data_and_model(p: argparse.ArgumentParser, data: str) -> None:
    """--dataset and --model of the commands that start from a checkpoint or a state dict."""
    p.add_argument("--dataset", default=None, help=f"{data} (default: the checkpoint's, else "
                   f"the profile's)")
    p.add_argument("--model", default=None, help="fail unless the checkpoint holds this model; "
                   "for weights saved elsewhere (a state dict, as `init` takes), their "
                   "architecture")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="approx", description="Approximate computing for CNNs: pruning, "
                 "quantization, size, latency and sparsity, reproducibly.")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _report_parser(sub)

    t = sub.add_parser("train", help="train one baseline (cached) and copy its checkpoint")
    _common(t)
    t.add_argument("--model", required=True,
                   help=f"{' or '.join(MODELS)} (the original's), or any name `approx models` lists")
    t.add_argument("--dataset", default=None,
                   help="fashion-mnist, cifar10, cifar100 or imagefolder:PATH (default: the "
                        "profile's)")
    t.add_argument("--out", type=path_arg, required=True, help="checkpoint file to write")

    pr = sub.add_parser("prune", help="global L1 pruning + fine-tuning of a checkpoint")
    _common(pr)
    pr.add_argument("--checkpoint", type=path_arg, required=True,
                    help="a float checkpoint (from approx train, or a report's models/), or "
                         "your own state dict (with --model)")
    pr.add_argument("--ratio", type=float, required=True, help="fraction of weights in [0, 1)")
    _data_and_model(pr, "fine-tuning data")
    pr.add_argument("--out", type=path_arg, required=True, help="checkpoint file to write")

    q = sub.add_parser("quantize", help="dynamic INT8 of the Linear layers (as the original)")
    _common(q)
    q.add_argument("--checkpoint", type=path_arg, required=True,
                   help="a float checkpoint, or your own state dict (with --model)")
    _data_and_model(q, "the data whose classes and channels your state dict's model takes")
    q.add_argument("--out", type=path_arg, required=True, help="checkpoint file to write")

    c = sub.add_parser("compress", help="Deep Compression of a checkpoint: gradual pruning, "
                       "k-means weight sharing, Huffman coding, written as an .apx file")
    _common(c)
    c.add_argument("--checkpoint", type=path_arg, required=True,
                   help="a dense float checkpoint, or your own state dict (with --model)")
    c.add_argument("--out", type=path_arg, required=True, help=".apx file to write")
    c.add_argument("--sparsity", type=float, default=None,
                   help="final sparsity in [0, 1) (default: the profile's dc_sparsity)")
    _data_and_model(c, "fine-tuning data")

    e = sub.add_parser("evaluate", help="accuracy, size, latency and sparsity of a checkpoint "
                       "(.pt, or .apx from `approx compress`), or of your own state dict "
                       "(with --model)")
    _common(e)
    e.add_argument("--checkpoint", type=path_arg, required=True,
                   help=".pt checkpoint, .apx file, or your own state dict (with --model)")
    _data_and_model(e, "test data")
    e.add_argument("--layers", action="store_true", help="print the per-layer sparsity table")

    _profiles_parser(sub)
    sub.add_parser("models", help="list the model names a profile's `models` may use")
    _verify_parser(sub)
    return ap


def _report_parser(sub) -> None:
    r = sub.add_parser("report", help="compute every section's variants and write results")
    _common(r)
    r.add_argument("--out", type=path_arg, default=None,
                   help="output folder (default reports/PROFILE)")
    r.add_argument("--sections", default=None,
                   help="comma-separated subset, e.g. A,C, or all (default: all; for your own "
                        "images or weights, every section but the original study's fixed "
                        "comparisons; --dry-run lists them)")
    r.add_argument("--dry-run", action="store_true",
                   help="list the stages the profile needs and which are cached; compute nothing")
    r.add_argument("--no-pdf", action="store_true", help="render index.html only")
    r.add_argument("--stages-only", action="store_true",
                   help="compute results.csv without executing the notebooks")
    r.add_argument("--executor", default=executors.LOCAL, choices=executors.EXECUTORS,
                   help="where the stages run: " + "; ".join(
                       f"{e.key}, {e.help}" for e in executors.EXECUTORS.values())
                   + f" (default {executors.LOCAL})")
    r.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: Dask's "
                        "scheduler-address setting / DASK_SCHEDULER_ADDRESS, else a local "
                        "cluster on this machine)")
    r.add_argument("--workers", type=int, default=None,
                   help="processes that compute the stages: here, this one and helpers beside "
                        "it (default 1; `make report` gives one per core, at most 4); with "
                        "--executor dask, the local cluster's (default: CPUs / --threads)")
    r.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads per stage (default: torch's default here, shared "
                        "out among --workers); results equal across executors at equal --threads")


def _profiles_parser(sub) -> None:
    pr = sub.add_parser("profiles", help="list the profiles and what they are for; with a "
                        "name, every key it runs with")
    pr.add_argument("name", nargs="?", default=None,
                    help=f"a profile ({', '.join(profile_names())}) or a .yaml file of your "
                         f"own: print every key and its value, as a run would take them (what "
                         f"each key does: the commented defaults of approxlib/profiles.yaml)")
    pr.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="KEY=VALUE", help="override one key (repeatable), as a run would")


def _verify_parser(sub) -> None:
    v = sub.add_parser("verify", help="check every entry of an artifact store against its "
                       "recorded digest; list what a run would recompute, and damaged records of a stage's "
                       "cost or a twin it would set aside (moves nothing)")
    v.add_argument("--models-dir", default="models", type=named_arg,
                   help="the artifact store: a folder or a file:// URL (another URL is "
                   "refused: give the folder of this machine's copies of it to check those)")
    v.add_argument("--all", action="store_true", help="list intact entries too")


def _recorded_data(info: dict) -> dict:
    """The data settings a checkpoint's metadata records ({} if none), checked as a profile's
    are: a file's metadata is input, and a malformed one was a traceback."""
    meta = info.get("meta")
    configs = meta.get("configs", []) if isinstance(meta, dict) else []
    if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
        raise ConfigError("the checkpoint's metadata is malformed (its configs are not a list "
                          "of settings); pass --dataset and --set image_size=...")
    found = next((c for c in configs if c.get("type") == "DataConfig"), None)
    if found is None:
        return {}
    recorded = {k: found.get(k) for k in ("dataset", "image_size")}
    # the dataset is checked where it is used: a recorded folder the user's --dataset replaces
    # was walked, and its dangling link refused the run
    if recorded["image_size"] is not None:
        check_image_size(recorded["image_size"])
    return recorded


def _checkpoint_size(p: dict, info: dict, overrides: dict, dataset: str) -> dict:
    """The profile as the checkpoint's model sees it (`for_model`), at the image size the
    checkpoint was trained at where it records its data, unless --set names one: a profile's
    own size (a folder's 40) scored a model trained at 32 without a word. Recorded as None
    (as stored), that is the recorded dataset's size when the run takes other data."""
    from . import data
    p = for_model(p, info["model"]["name"])
    recorded = _recorded_data(info)
    if "image_size" in overrides or not recorded:
        return p
    size = recorded["image_size"]
    if size is None and recorded["dataset"] not in (None, dataset):
        try:
            size = data.source(recorded["dataset"]).size
        except ConfigError:  # a folder no longer there: as the data is stored
            size = None
    return {**p, "image_size": size}


def _checkpoint_data(path: Path, info: dict, given: str | None, p: dict, overrides: dict
                     ) -> tuple[str, dict]:
    """The dataset a command runs a checkpoint on (--dataset, else the one it records) and the
    profile at its image size, refused before any work when the data does not fit the model:
    a 10-class model scored 8% on 12 classes without a word, and fine-tuning one on 100
    classes was a traceback."""
    from . import data
    dataset = _checkpoint_dataset(path, info, given, p)
    p = _checkpoint_size(p, info, overrides, dataset)
    source, model = data.source(dataset, p["image_size"]), info["model"]
    if source.classes != model["num_classes"]:
        raise ConfigError(f"{path} names {model['num_classes']} classes; {dataset} has "
                          f"{source.classes}")
    if source.channels != model["in_channels"]:
        raise ConfigError(f"{path} expects {model['in_channels']}-channel images; {dataset} "
                          f"has {source.channels}")
    _warn_other_classes(path, info, dataset, source.class_names)
    return dataset, p


def _warn_other_classes(path: Path, info: dict, dataset: str, names) -> None:
    """A model trained on other classes than the data's (as many of them) scores a number that
    means nothing: said on stderr where both sets of names are known. A warning, not an error:
    the same classes may be named otherwise (folders "0".."9" for Fashion-MNIST's)."""
    from . import data, store
    meta = info.get("meta")
    trained = data.trained_classes(meta.get("classes") if isinstance(meta, dict) else None,
                                   _recorded_data(info).get("dataset"))
    if trained is None or names is None or list(trained) == list(names):
        return
    store.LOG.warning("approx: warning: %s", printable(
        f"{path} was trained on other classes than {dataset} has "
        f"({data.differing(trained, names)}); label i is scored as the model's class i"))


def _checkpoint_dataset(path: Path, info: dict, given: str | None, p: dict) -> str:
    """--dataset, else the dataset the checkpoint records, else the profile's, said on stderr
    (a report's given weights record none: a user's profile naming their folder was ignored)."""
    from . import store
    dataset = given or _recorded_data(info).get("dataset")
    if dataset is None:
        dataset = p["dataset"]
        store.LOG.warning("approx: warning: %s", printable(
            f"{path} records no dataset; running it on the profile's, {dataset}"))
    elif given is None and dataset != p["dataset"] != default("dataset"):
        # a user's profile naming other data was passed over without a word
        store.LOG.warning("approx: note: %s", printable(
            f"{path} runs on the data it records, {dataset}, not the profile's "
            f"{p['dataset']} (--dataset chooses)"))
    check_dataset(dataset)
    return dataset


# ------------------------------------------------------------------------ output locations
# Checked at the top of each command, before any work: `--models-dir` below a file used to fail
# only after training, and a read-only --out after the whole report (issue 14).

def folder_base(folder: Path, option: str, given) -> Path:
    """The nearest existing ancestor of a folder that may not exist yet (its parents are made
    when written), which must be a folder."""
    base = folder
    while not (base.exists() or base.is_symlink()) and base.parent != base:
        base = base.parent
    if not base.is_dir():
        raise ConfigError(f"{option} {given}: {base} is a file, not a folder; "
                          f"choose another path")
    return base


def _writable_folder(folder: Path, option: str, given) -> None:
    """`folder_base`, in which we must be able to create a file; the probe file is removed at
    once."""
    base = folder
    try:
        base = folder_base(folder, option, given)
        fd, probe = tempfile.mkstemp(dir=base, prefix=".approx-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ConfigError(f"{option} {given}: cannot write in {base} ({e.strerror or e}); "
                          f"choose a folder you can write to") from None


def check_writable_dir(path, option: str = "--out") -> None:
    """A folder this command writes into: creatable, not a file, writable."""
    _writable_folder(Path(path), option, path)


def check_writable_file(path, option: str = "--out") -> None:
    """A file this command writes: not an existing folder, and its folder writable."""
    path = Path(path)
    try:
        is_dir = path.is_dir()
    except OSError as e:
        raise ConfigError(f"{option} {path}: {e.strerror or e}") from None
    if is_dir or path.name in ("", ".", ".."):
        raise ConfigError(f"{option} {path} is a folder; name the file to write")
    _writable_folder(path.parent, option, path)


def check_store(models_dir: str, option: str = "--models-dir") -> None:
    """`--models-dir`: a writable folder, or an fsspec URL whose filesystem can be built and whose
    root (or, for a new store, its parent) is reachable now rather than after training."""
    from . import store
    if not store.is_url(models_dir):
        check_writable_dir(models_dir, option)
        return
    import fsspec
    from fsspec.implementations.local import LocalFileSystem
    try:
        fs, root = fsspec.core.url_to_fs(models_dir)
        store.check_url(models_dir, fs)
        if isinstance(fs, LocalFileSystem):  # file://: a folder like any other
            _writable_folder(Path(root), option, models_dir)
        elif fs.exists(root):
            if not fs.isdir(root):
                raise ConfigError(f"{option} {models_dir} is a file, not a folder")
        elif not fs.exists(fs._parent(root)):
            raise ConfigError(f"{option} {models_dir}: neither the store nor its parent "
                              f"{fs._parent(root)} exists; create it first")
    except ConfigError:
        raise
    except (ImportError, ValueError) as e:  # unknown protocol, its package missing, a bad URL
        raise ConfigError(f"{option} {models_dir}: cannot use this store: "
                          f"{_one_line(e)}") from None
    except OSError as e:  # unreachable host, no permission, bucket missing
        raise ConfigError(f"{option} {models_dir}: cannot reach the store: "
                          f"{_one_line(e)}") from None


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


# -------------------------------------------------------------------------------- commands

def _dry_run(p: dict, sections: list[str], st, data_dir, like: dict, workers: int,
             trains_here: bool) -> int:
    """List the stages, bits curves and timings in turns and which are cached; price the missing
    ones from this store's records (those made on `like`'s device and threads first). Refuses
    what the run would refuse before its first stage: data it cannot have, CUDA it lacks."""
    from . import accounting, pipeline, train
    todo = pipeline.dry_run(p, sections, st)
    todo += accounting.derived(p, sections, st, {t["key"] for t in todo if not t["cached"]})
    missing = [s["key"] for s in todo if not s["cached"]]
    absent = accounting.check_data(p, sections, data_dir) if missing else []
    plan = accounting.table(p, sections, st, data_root=data_dir, planned=True) if missing \
        else None
    need = plan[plan.key.isin(missing)] if missing else None
    if missing and trains_here and (need.batch > 0).any():
        train.pick_device(p["device"])  # the run's refusal of a CUDA this machine lacks
        # (a scheduler's workers may have one; a local cluster's preflight asks for it)
    for s in todo:
        print(f"{'cached ' if s['cached'] else 'missing'}  {s['stage']:<9} {s['key']}  "
              f"{printable(s['label'])}")  # a folder's name is the user's, escapes and all
    if missing:
        print(_estimate(st, need, like, workers, absent))
    print(f"{len(todo)} entries, {len(todo) - len(missing)} cached, {len(missing)} to compute")
    return 0


def _estimate(st, need, like: dict, workers: int, absent: list[str]) -> str:
    """One line: what the missing entries (`need`, `accounting.table`'s rows) should take
    here, priced by `accounting.estimate`: seconds of stage time summed over the processes,
    and what `workers` processes would make of it at best."""
    from . import accounting
    if absent:
        # their entries priced from records without their image counts came to 13 min for
        # paper's CIFAR (hundreds of epochs), and an empty store named no dataset at all (a
        # GPU user, 2026-12-08)
        return (f"estimate: none: {', '.join(absent)} not on this machine yet (the run "
                f"downloads it first), so the images its entries put through a model are "
                f"unknown; with the files in place, --dry-run prices them")
    rec = accounting.recorded(st)
    if rec.empty:
        return "estimate: no timing records in this models folder to estimate from"
    est = accounting.estimate(need, rec, like)
    known = est.seconds.notna()
    total = est.seconds[known].sum()
    other, models = int(est.other_batch.sum()), int(est.other_model.sum())
    setting = int(est.other_setting.sum())
    run_on = ", ".join(f"{v} thread{'s' * (v != 1)}" if k == "threads" else str(v)
                       for k, v in like.items())
    unlike = sorted(set(need.kind[~known.to_numpy()]))
    return (f"estimate: {total / 60:.1f} min ({total:.0f} s) of stage time for "
            f"{int(known.sum())} of the {len(need)} missing entries (their stages only, not the "
            f"notebooks and rendering; summed over processes"
            + (f": with {workers} processes about {total / workers / 60:.1f} min of wall at "
               f"best)" if workers > 1 else ")")
            + f", from the {len(rec)} entries recorded in this models folder (their rates, "
            f"not scaled for another image size, precision or timing settings)"
            + (f"; {int((~known).sum())} unlike anything recorded ({', '.join(unlike)})"
               if unlike else "")
            + (f"; {models} training entries priced from other models (none of theirs "
               f"recorded)" if models else "")
            + (f"; {other} training entries priced from another or an unrecorded batch size"
               f" (on a GPU possibly off several-fold)" if other else "")
            + (f"; {setting} priced from records made on another device or thread count than"
               f" this run's ({run_on})" if setting else ""))


def _check_sections(text: str) -> None:
    """An empty --sections is a mistake (a variable left unset), not "all sections"."""
    if text is not None and not text.strip(" ,"):
        raise ConfigError(f"--sections is empty ({text!r}); name sections like A,C, or all")


def cmd_report(a) -> int:
    p = load_profile(a.profile, parse_overrides(a.overrides))
    _check_sections(a.sections)
    _check_cluster_options(a)  # before PyTorch's imports: a mistyped option answers at once
    from . import pipeline, store
    sections = pipeline.parse_sections(a.sections, p)
    out = a.out or Path("reports") / profile_label(a.profile)
    check_writable_dir(out, "--out" if a.out else "the report folder")
    check_store(a.models_dir)
    st = store.Store(a.models_dir)
    executor = executors.of(a.executor)
    options = executor.options(a)
    executor.preflight(p, sections, options)
    if a.dry_run:
        return _dry_run(p, sections, st, a.data_dir, executor.setting(p, options),
                        options.get("workers") or 1, executor.trains_here)
    t0 = time.perf_counter()
    from . import publish
    if a.stages_only:
        df, runner = publish.stages(p, sections, a.models_dir, out, a.data_dir,
                                    not a.quiet, a.executor, options)
        print(f"{len(df)} rows → {out / 'results.csv'}; stages done in "
              f"{time.perf_counter() - t0:.0f} s"
              + (f"; computed {len(runner.computed)} stages in this process"
                 if executor.counts_computed else ""))
        return 0
    made = publish.build(a.profile, sections, parse_overrides(a.overrides), out, a.models_dir,
                        a.data_dir, pdf=not a.no_pdf, progress=not a.quiet,
                        executor=a.executor, options=options)
    kept = (f" ({len(made['reused'])} of {len(sections)} notebooks reused: inputs unchanged)"
            if made["reused"] else "")
    print(f"stages {made['stages_s']:.0f} s, total {made['total_s']:.0f} s{kept} → "
          f"{made['index']}"
          + (f", {made['pdf']}" if "pdf" in made else "") + f", {made['results']}")
    return 0


def _check_cluster_options(a) -> None:
    """--threads and --workers for either executor, --scheduler for Dask only (before --dry-run
    returns: a dry run answers whether the real run would start)."""
    if a.scheduler is not None and not a.scheduler.strip():  # `--scheduler "$UNSET"`
        raise ConfigError("--scheduler is empty; give the scheduler's address (e.g. "
                          "tcp://10.0.0.5:8786), or leave it out for a local cluster")
    for name in ("workers", "threads"):
        value = getattr(a, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name} must be at least 1, got {value}")
        if value is not None and value > MAX_THREADS:
            raise ConfigError(f"--{name} must be at most {MAX_THREADS}, got {value}")
    executors.of(a.executor).check(a)
    here = (a.workers or 1) * (a.threads or 0)  # threads of this machine (no --scheduler)
    if a.scheduler is None and here > executors.cores():
        print(f"approx: warning: {here} torch threads (--workers × --threads) on this "
              f"machine's {executors.cores()} cores: each step runs slower than on fewer "
              f"(64 threads on 2 cores: 14× slower, 2026-12-07)", file=sys.stderr)


def cmd_train(a) -> int:
    from . import data, pipeline, store
    p = load_profile(a.profile, parse_overrides(a.overrides))
    check_model(a.model)
    dataset = a.dataset or p["dataset"]
    check_dataset(dataset)
    if p["init"] is not None:
        raise ConfigError("approx train trains from scratch; drop init (a report starts from "
                          "init's weights without training)")
    check_writable_file(a.out)
    check_store(a.models_dir)
    from . import train
    train.pick_device(p["device"])  # a CUDA this machine lacks is said before a missing dataset
    st = pipeline.stages(pipeline.Variant("-", a.model, dataset), p)[0]
    data.load(st.step.data, a.data_dir)  # a missing dataset fails before the store is touched
    runner = pipeline.Runner(p, store.Store(a.models_dir), a.data_dir, not a.quiet)
    _copy(runner.artifact(st), a.out)
    return 0


def cmd_prune(a) -> int:
    from . import data, prune, store
    check_ratio(a.ratio)
    p = load_profile(a.profile, parse_overrides(a.overrides))
    check_writable_file(a.out)
    model, mc, dataset, p, _ = _float_model(a, p, "prune")
    dc = data_config(p, dataset)
    splits = data.load(dc, a.data_dir)
    model, hist = prune.prune_and_finetune(model, PruneConfig(a.ratio), splits,
                                           finetune_config(p), p["device"],
                                           f"fine-tune {a.ratio:.0%}", not a.quiet)
    meta = _made(a, dc, PruneConfig(a.ratio), finetune_config(p))
    store.save_checkpoint(model, a.out, mc, quants.NONE.key, {**meta, "history": hist})
    print(f"sparsity {prune.sparsity_of(model):.4f} → {a.out}")
    return 0


def cmd_quantize(a) -> int:
    from . import quantize, store
    p = load_profile(a.profile, parse_overrides(a.overrides))
    check_writable_file(a.out)
    model, mc, _, _, meta = _float_model(a, p, "quantize", fit=False)
    qm = quantize.quantize(model, QuantConfig(quants.DYNAMIC.key))
    # what its source records (data, classes, making), and this step: no data read, none named
    meta = {**meta, "source": str(a.checkpoint),
            "quantized": recorded([QuantConfig(quants.DYNAMIC.key)])}
    size = store.save_checkpoint(qm, a.out, mc, quants.DYNAMIC.key, meta)
    print(f"{size} bytes → {a.out}")
    return 0


def cmd_compress(a) -> int:
    import dataclasses

    from . import compress, data, prune, share
    from .config import CodecConfig, gradual_config, dc_finetune_config, share_config, \
        share_finetune_config
    p = load_profile(a.profile, parse_overrides(a.overrides))
    if a.sparsity is not None:
        check_ratio(a.sparsity, "sparsity")
    if a.out.suffix != compress.CODECS[SHIPPED_CODEC].suffix:
        raise ConfigError(f"--out must name an .apx file, got {a.out}")
    check_writable_file(a.out)
    model, mc, dataset, p, _ = _float_model(a, p, "compress")
    dc = data_config(p, dataset)
    splits = data.load(dc, a.data_dir)
    gc = gradual_config(p, mc.name)
    if a.sparsity is not None:
        gc = dataclasses.replace(gc, sparsity=a.sparsity)
    fc = dc_finetune_config(p, mc.name)
    model, _ = prune.gradual_prune(model, gc, splits, fc, p["device"],
                                   f"prune gradually to {gc.sparsity:.0%}", not a.quiet)
    model, _, _ = share.share_and_finetune(model, share_config(p, mc.name), splits,
                                           share_finetune_config(p), p["device"],
                                           "codebook fine-tune", not a.quiet)
    meta = _made(a, dc, gc, fc, share_config(p, mc.name))
    compress.save(model, a.out, CodecConfig(SHIPPED_CODEC, p["dc_index_bits"]), mc, meta)
    size = a.out.stat().st_size
    print(f"sparsity {prune.sparsity_of(model):.4f}, {size} bytes "
          f"({compress.dense_state_dict_bytes(mc) / size:.1f}× smaller than dense float32) → {a.out}")
    return 0


def _made(a, *configs) -> dict:
    """What a command's output records of its making, as the pipeline's headers do: the file
    it started from, the settings it ran with (its data first), and an image folder's classes."""
    from . import data
    return {"source": str(a.checkpoint), "configs": recorded(configs),
            **data.recorded_classes(configs[0])}


def cmd_evaluate(a) -> int:
    from . import data, measure, pipeline, prune, runtime, train
    p = load_profile(a.profile, parse_overrides(a.overrides))
    if a.checkpoint.suffix == runtime.ONNX_SUFFIX:
        raise ConfigError("evaluate takes .pt and .apx files; time an .onnx file with "
                          "benchmarks/latency.py --artifact")
    model, _, dataset, p, _ = _float_model(a, p, "evaluate", load=pipeline.load_artifact)
    x, y = data.source(dataset, p["image_size"]).split(  # the images a report scores
        "test", a.data_dir, keep=lambda labels: data.test_indices(labels, p["test_size"]))
    params, zeros = measure.count_params(model)
    out = {"checkpoint": str(a.checkpoint), "dataset": dataset, "image_size": x.shape[-1],
           "test_images": len(y),
           "accuracy": train.accuracy(model, x, y), "size_bytes": a.checkpoint.stat().st_size,
           "params": params, "zero_params": zeros, "sparsity": prune.sparsity_of(model),
           **measure.latency_ms(model, tuple(x.shape[1:]), measure_config(p))}
    print(json.dumps(out, indent=1))
    if a.layers:
        print(measure.layer_sparsity(model).to_csv(index=False), end="")
    return 0


def _float_model(a, p: dict, command: str, fit: bool = True, load=None):
    """What a single-stage command starts from: (model, its ModelConfig, the dataset, the
    profile at the data's image size, the metadata it carries). Weights saved elsewhere need
    --model (their data: --dataset, else the profile's); an approxlib checkpoint runs on
    --dataset, else the data it records, else the profile's, refused before any work where the
    data does not fit it (`fit`: checked at all). `load` (an artifact reader) takes quantized
    and encoded files too; without it, a dense float checkpoint only."""
    from torch import nn
    from . import pipeline, store
    if a.model is not None:
        check_model(a.model)
    if _plain_weights(a.checkpoint):
        return _given_weights(a, p)
    if load is None and pipeline.read_by_suffix(a.checkpoint):
        raise ConfigError(f"{a.checkpoint} is an encoded file (`approx evaluate` reads it); "
                          f"{command} takes a .pt checkpoint or a state dict")
    if not fit and a.dataset is not None:
        raise ConfigError(f"{command} reads no data: --dataset only names a state dict's")
    model, info = (load or store.load_checkpoint)(a.checkpoint)
    if isinstance(model, nn.Module):  # an ONNX graph's weights are its runtime's
        store.check_weights(a.checkpoint, model)  # a diverged model scores 10% without a word
    if a.model is not None and info["model"]["name"] != a.model:
        raise ConfigError(f"{a.checkpoint} holds {info['model']['name']}, not {a.model}")
    if load is None and (info["quant"] != quants.NONE.key or info.get("shapes")):
        what = f"quantized ({info['quant']})" if info["quant"] != quants.NONE.key else \
            "channel-pruned"
        raise ConfigError(f"{a.checkpoint} is {what}; {command} a dense float model")
    meta = info.get("meta") if isinstance(info.get("meta"), dict) else {}
    if not fit:  # the command reads no data (quantize)
        return model, ModelConfig(**info["model"]), None, for_model(p, info["model"]["name"]), meta
    dataset, p = _checkpoint_data(a.checkpoint, info, a.dataset, p, parse_overrides(a.overrides))
    return model, ModelConfig(**info["model"]), dataset, p, meta


def _plain_weights(path: Path) -> bool:
    """A file holding weights saved elsewhere (as a profile's `init` takes them: .pt, .pth,
    .bin, whatever its name), not an approxlib checkpoint nor a file a codec's suffix claims."""
    from . import pipeline, store
    return (not pipeline.read_by_suffix(path) and path.is_file()
            and not store.is_checkpoint(path))


def _given_weights(a, p: dict):
    """Weights saved elsewhere, as a report starts from them: --model names the architecture,
    --dataset (else the profile's) the data it classifies; the profile as that model sees it
    (`for_model`: a per-model setting was a type error)."""
    from . import pipeline, store
    if a.model is None:
        raise ConfigError(f"{a.checkpoint} holds weights without their architecture: name it "
                          f"with --model (and its data with --dataset)")
    dataset = a.dataset or p["dataset"]
    check_dataset(dataset)
    p = for_model(p, a.model)
    mc = pipeline.model_config(p, a.model, dataset)
    model = store.load_weights(a.checkpoint, mc)
    return model, mc, dataset, p, {"configs": recorded([data_config(p, dataset)])}


def cmd_profiles(a) -> int:
    if a.name is None:
        if a.overrides:
            raise ConfigError("--set needs a profile to apply to: approx profiles NAME --set ...")
        for name in profile_names():
            print(f"{name:<6} {load_profile(name)['description']}")
        return 0
    import textwrap
    import yaml
    p = load_profile(a.name, parse_overrides(a.overrides))
    label = p.pop("profile")  # names, not keys a file may set
    p.pop("description", "")  # the profile's own words: the line names the overrides itself
    about = load_profile(a.name)["description"]
    changed = f" (with {' '.join(f'--set {o}' for o in a.overrides)})" if a.overrides else ""
    print(textwrap.fill(f"{label}{changed}: {about}" if about else label + changed, 96,
                        initial_indent="# ", subsequent_indent="# "))
    print(yaml.safe_dump(p, sort_keys=False, default_flow_style=None, width=100,
                         allow_unicode=True), end="")
    return 0


def cmd_models(a) -> int:
    from .models import available
    for name in available():
        print(name)
    return 0


def _copy(src: Path, dst: Path) -> None:
    from .store import atomic_path
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    print(f"{src} → {dst}")


def existing_store(models_dir: str, option: str = "--models-dir") -> None:
    """A models folder to read (verify, benchmarks/): one that exists and, unless empty, holds
    the folders a run writes, not a report or an image folder given in its place."""
    from . import pipeline, steps, store
    if not Path(models_dir).is_dir():
        raise ConfigError(f"{option} {models_dir} "
                          f"{'is not a folder' if Path(models_dir).exists() else 'not found'}")
    kinds = set(steps.REGISTRY) | set(pipeline.JSON_CHECKS)  # what a run writes
    held = [f for f in Path(models_dir).iterdir()
            if not f.name.startswith(".") and f.name != store.DAMAGED]
    # a kind's folder holds files only: an image folder's train/ (a kind's name) holds classes
    ours = [f for f in held if f.name in kinds and f.is_dir()
            and not any(c.is_dir() for c in f.iterdir() if not c.name.startswith("."))]
    if held and not ours:
        raise ConfigError(f"{option} {models_dir} holds none of the folders a run writes "
                          f"({', '.join(sorted(kinds)[:4])}, …): is it a report or an image "
                          f"folder? Give the models folder (default: models)")


def cmd_verify(a) -> int:
    """Exit 0 when every entry is intact, 1 when a run would recompute something or set a
    damaged record aside (`pipeline.RECORDS`: a stage's cost, a twin's lookup; not made
    again)."""
    from . import pipeline, store
    folder = a.models_dir
    if store.is_url(folder):
        folder = _url_folder(folder)
    existing_store(folder)
    entries = pipeline.verify_store(store.Store(folder))
    bad = [e for e in entries if e["problem"]]
    records = [e for e in bad if e["kind"] in pipeline.RECORDS
               and not e["problem"].startswith("missing")]  # a digest left: nothing to move
    for e in entries if a.all else bad:
        what = ("ok       " if not e["problem"] else "set aside" if e in records
                else "recompute")
        print(f"{what}  {e['path']}" + (f"  ({e['problem']}"
              + (f"; {pipeline.RECORDS[e['kind']]})" if e in records else ")")
              if e["problem"] else ""))
    print(f"{len(entries)} entries, {len(entries) - len(bad)} intact, "
          f"{len(bad) - len(records)} to recompute"
          + (f", {len(records)} damaged record{'s' * (len(records) != 1)} to set aside"
             if records else ""))
    return 1 if bad else 0


def _url_folder(url: str) -> str:
    """The folder a URL of this machine's files names (file://): verify checks the store
    itself, not this machine's copies of it (which called a store intact whose model was
    damaged on the URL, 2026-12-07)."""
    from fsspec.implementations.local import LocalFileSystem
    from . import store
    st = store.Store(url)  # ConfigError for an unknown protocol or a URL naming no folder
    if not isinstance(st.fs, LocalFileSystem):  # where its local copy is, which a user had to find
        raise ConfigError(f"--models-dir {url}: verify reads a folder (a file:// store, or "
                          f"this machine's copies of this one, {st.root}, which "
                          f"say nothing of the URL's; a run checks each file it fetches)")
    folder = st.remote
    print(f"verifying the folder {folder} (the store {url})")
    return folder


COMMANDS = {"report": cmd_report, "train": cmd_train, "prune": cmd_prune,
            "quantize": cmd_quantize, "compress": cmd_compress, "evaluate": cmd_evaluate,
            "profiles": cmd_profiles, "verify": cmd_verify, "models": cmd_models}


# What to do about the OS errors a run can meet while writing (the path comes with the error).
_OS_ADVICE = {errno.ENOSPC: "free some space or choose another --out / --models-dir",
              errno.EDQUOT: "free some space or choose another --out / --models-dir",
              errno.EROFS: "the file system is read-only: choose another --out / --models-dir",
              errno.EACCES: "choose a folder you can write to",
              errno.EPERM: "choose a folder you can write to",
              errno.ENOTDIR: "a folder on the path is a file: choose another path",
              errno.EISDIR: "a folder is in the way of a file: choose another path"}




def os_error_line(e: OSError) -> str:
    """An OSError as one line: what happened, to which path, and what to do."""
    # an OSError of another library may fill errno, strerror and filename with its own
    # arguments (distributed's WorkerStartTimeoutError(0, 1, 60) printed a TypeError)
    line = e.strerror if isinstance(e.strerror, str) and e.strerror else _one_line(e)
    paths = [os.fsdecode(p) for p in (e.filename, e.filename2) if isinstance(p, (str, bytes))]
    if paths:
        line += f": {' → '.join(paths)}"
    if e.errno in _OS_ADVICE:
        line += f" ({_unreadable(e) or _in_url_cache(paths) or _OS_ADVICE[e.errno]})"
    return printable(line)


def _in_url_cache(paths: list[str]) -> str | None:
    """The advice for a URL store's local copies, which no --out or --models-dir moves."""
    from . import store  # imported where needed: `approx --help` loads no torch
    base = store.cache_base()
    if any(Path(p).resolve().is_relative_to(base.resolve()) for p in paths):
        return f"a URL store's local copies are kept in {base}: set APPROX_CACHE to another folder"
    return None


def _unreadable(e: OSError) -> str | None:
    """The advice for a file that exists but may not be read: a permission error is not always
    one of writing (an unreadable CIFAR batch was told to choose a folder it can write to,
    attack, 2026-12-07)."""
    if e.errno in (errno.EACCES, errno.EPERM) and isinstance(e.filename, str) \
            and os.path.isfile(e.filename) and not os.access(e.filename, os.R_OK):
        return "you may not read this file: check its permissions"
    return None


def _stdout_gone() -> bool:
    """Whether stdout is a pipe whose reader has left (poll reports an error on its end)."""
    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & select.POLLERR for _, ev in poll.poll(0))
    except (OSError, ValueError, AttributeError):  # no file descriptor (a captured stdout)
        return False


@contextlib.contextmanager
def _bars_off(quiet: bool):
    """--quiet silences also the bars of code no `progress` reaches (an image folder's first
    decoding and hashing, `folder._bar`), which read TQDM_DISABLE when they start. Restored
    after, for a caller that runs main() twice. (tqdm reads it too, but once, when imported:
    every other bar here is governed by its caller's `progress`.)"""
    old = os.environ.get("TQDM_DISABLE")
    if quiet:
        os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = old


def main(argv: list[str] | None = None) -> int:
    def run() -> int:
        a = build_parser().parse_args(argv)
        with _bars_off(getattr(a, "quiet", False)):
            return COMMANDS[a.command](a)
    return guarded("approx", run)


def guarded(prog: str, run: Callable[[], int | None]) -> int:
    """`run()`'s exit status (None: 0), with what is not a bug as one line on stderr: bad
    input, a damaged or missing file (ConfigError) and what the system refused (a full disk, a
    store gone: OSError) exit 2; a bug keeps its traceback. `approx` and the scripts in
    benchmarks/ share it, so that they answer bad input alike."""
    try:
        code = run()
        sys.stdout.flush()  # a short output sits in the buffer: a closed pipe shows here
        return code or 0
    except ConfigError as e:
        print(f"{prog}: error: {printable(str(e))}", file=sys.stderr)
        return 2
    except BrokenPipeError as e:
        if not _stdout_gone():  # another pipe (a store's socket, a worker): an error
            print(f"{prog}: error: {os_error_line(e)}", file=sys.stderr)
            return 2
        # piped into `head`, which left: nothing went wrong here. As the Python docs advise,
        # what is left to flush at exit goes nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a command SIGPIPE ended
    except OSError as e:  # a disk filling up or a store going away mid-run: not a bug
        print(f"{prog}: error: {os_error_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
