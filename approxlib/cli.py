"""`approx`: the study from the command line.

    approx report --profile quick [--sections A,C] [--set epochs=3] [--dry-run]
    approx train --profile quick --model resnet18 --out r18.pt
    approx prune --checkpoint r18.pt --ratio 0.5 --out r18_p50.pt
    approx quantize --checkpoint r18_p50.pt --out r18_p50_int8.pt
    approx evaluate --checkpoint r18_p50_int8.pt
    approx compress --checkpoint r18.pt --out r18.apx     # Deep Compression → .apx
    approx evaluate --checkpoint r18.apx

Every user error (bad name, bad value, missing data or checkpoint) is one line on stderr and exit
status 2; nothing is written unless the command succeeds.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from .config import (DATASETS, MODELS, ConfigError, ModelConfig, PruneConfig, QuantConfig,
                     check_dataset, check_model, check_ratio, data_config, finetune_config,
                     load_profile, measure_config, parse_overrides, profile_names)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse's default prints the usage too)
        raise ConfigError(message)


def _common(p: argparse.ArgumentParser, profile_default: str = "quick") -> None:
    p.add_argument("--profile", default=profile_default,
                   help=f"parameter set from profiles.yaml ({', '.join(profile_names())})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one profile parameter (repeatable), e.g. --set epochs=3")
    p.add_argument("--models-dir", default="models",
                   help="artifact cache: a folder, or an fsspec URL every worker reaches "
                        "(s3://bucket/approx, file:///shared/approx)")
    p.add_argument("--data-dir", default=None, type=Path, help="dataset folder (default: data/)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="approx", description="Approximate computing for CNNs: pruning, "
                 "quantization, size, latency and sparsity, reproducibly.")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("report", help="compute every section's variants and write results")
    _common(r)
    r.add_argument("--out", type=Path, default=None, help="output folder (default reports/PROFILE)")
    r.add_argument("--sections", default="all", help="comma-separated subset, e.g. A,C")
    r.add_argument("--dry-run", action="store_true",
                   help="list the stages the profile needs and which are cached; compute nothing")
    r.add_argument("--no-pdf", action="store_true", help="render index.html only")
    r.add_argument("--stages-only", action="store_true",
                   help="compute results.csv without executing the notebooks")
    r.add_argument("--executor", default="local", choices=("local", "dask"),
                   help="where the stages run: this process (default), or a Dask cluster")
    r.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: Dask's "
                        "scheduler-address setting / DASK_SCHEDULER_ADDRESS, else a local "
                        "cluster on this machine)")
    r.add_argument("--workers", type=int, default=None,
                   help="worker processes of the local Dask cluster (default: CPUs / --threads)")
    r.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads per stage (default: torch's default here); results "
                        "equal across executors at equal --threads")

    t = sub.add_parser("train", help="train one baseline (cached) and copy its checkpoint")
    _common(t)
    t.add_argument("--model", required=True, help=f"one of {', '.join(MODELS)}")
    t.add_argument("--dataset", default=None, help=f"one of {', '.join(DATASETS)}")
    t.add_argument("--out", type=Path, required=True, help="checkpoint file to write")

    pr = sub.add_parser("prune", help="global L1 pruning + fine-tuning of a checkpoint")
    _common(pr)
    pr.add_argument("--checkpoint", type=Path, required=True)
    pr.add_argument("--ratio", type=float, required=True, help="fraction of weights in [0, 1)")
    pr.add_argument("--dataset", default=None, help="fine-tuning data (default: the checkpoint's)")
    pr.add_argument("--out", type=Path, required=True)

    q = sub.add_parser("quantize", help="dynamic INT8 of the Linear layers (as the original)")
    q.add_argument("--checkpoint", type=Path, required=True)
    q.add_argument("--out", type=Path, required=True)

    c = sub.add_parser("compress", help="Deep Compression of a checkpoint: gradual pruning, "
                       "k-means weight sharing, Huffman coding, written as an .apx file")
    _common(c)
    c.add_argument("--checkpoint", type=Path, required=True, help="a dense float checkpoint")
    c.add_argument("--out", type=Path, required=True, help=".apx file to write")
    c.add_argument("--sparsity", type=float, default=None,
                   help="final sparsity in [0, 1) (default: the profile's dc_sparsity)")
    c.add_argument("--dataset", default=None, help="fine-tuning data (default: the checkpoint's)")

    e = sub.add_parser("evaluate", help="accuracy, size, latency and sparsity of a checkpoint "
                       "(.pt, or .apx from `approx compress`)")
    _common(e)
    e.add_argument("--checkpoint", type=Path, required=True)
    e.add_argument("--dataset", default=None, help="test data (default: the checkpoint's)")
    e.add_argument("--model", default=None, help="fail unless the checkpoint holds this model")
    e.add_argument("--layers", action="store_true", help="print the per-layer sparsity table")

    sub.add_parser("profiles", help="list the profiles and what they are for")
    return ap


def _checkpoint_dataset(info: dict, given: str | None) -> str:
    if given is not None:
        check_dataset(given)
        return given
    for c in info["meta"].get("configs", []):
        if c.get("type") == "DataConfig":
            return c["dataset"]
    raise ConfigError("the checkpoint does not name its dataset; pass --dataset")


def cmd_report(a) -> int:
    from . import pipeline, store
    p = load_profile(a.profile, parse_overrides(a.overrides))
    sections = pipeline.parse_sections(a.sections)
    st = store.Store(a.models_dir)
    if a.dry_run:
        todo = pipeline.dry_run(p, sections, st)
        for s in todo:
            print(f"{'cached ' if s['cached'] else 'missing'}  {s['stage']:<9} {s['key']}  "
                  f"{s['label']}")
        missing = sum(not s["cached"] for s in todo)
        print(f"{len(todo)} stages, {len(todo) - missing} cached, {missing} to compute")
        return 0
    out = a.out or Path("reports") / a.profile
    cluster = _cluster_options(a)
    t0 = time.perf_counter()
    if a.stages_only:
        if a.executor == "dask":
            from . import cluster as CL
            df, runner = CL.run(p, sections, a.models_dir, out, a.data_dir,
                                progress=not a.quiet, **cluster)
        else:
            df, runner = pipeline.run(p, sections, st, out, a.data_dir, progress=not a.quiet)
        print(f"{len(df)} rows → {out / 'results.csv'}; stages done in "
              f"{time.perf_counter() - t0:.0f} s")
        return 0
    from . import report
    made = report.build(a.profile, sections, parse_overrides(a.overrides), out, a.models_dir,
                        a.data_dir, pdf=not a.no_pdf, progress=not a.quiet,
                        executor=a.executor, cluster=cluster)
    print(f"stages {made['stages_s']:.0f} s, total {made['total_s']:.0f} s → {made['index']}"
          + (f", {made['pdf']}" if "pdf" in made else "") + f", {made['results']}")
    return 0


def _cluster_options(a) -> dict:
    """--threads for either executor; --scheduler and --workers for Dask only."""
    import torch
    for name in ("workers", "threads"):
        value = getattr(a, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name} must be at least 1, got {value}")
    if a.executor == "local":
        if a.scheduler or a.workers:
            raise ConfigError("--scheduler and --workers need --executor dask")
        if a.threads:
            torch.set_num_threads(a.threads)
        return {}
    if a.scheduler and a.workers:
        raise ConfigError("--workers sizes a local cluster; a --scheduler's cluster has its own")
    return {"address": a.scheduler, "workers": a.workers, "threads": a.threads}


def cmd_train(a) -> int:
    from . import pipeline, store
    p = load_profile(a.profile, parse_overrides(a.overrides))
    check_model(a.model)
    dataset = a.dataset or p["dataset"]
    check_dataset(dataset)
    runner = pipeline.Runner(p, store.Store(a.models_dir), a.data_dir, not a.quiet)
    st = pipeline.stages(pipeline.Variant("-", a.model, dataset), p)[0]
    _copy(runner.artifact(st), a.out)
    return 0


def cmd_prune(a) -> int:
    from . import data, prune, store
    check_ratio(a.ratio)
    p = load_profile(a.profile, parse_overrides(a.overrides))
    model, info = store.load_checkpoint(a.checkpoint)
    if info["quant"] != "none":
        raise ConfigError(f"{a.checkpoint} is quantized ({info['quant']}); prune the float model")
    dataset = _checkpoint_dataset(info, a.dataset)
    splits = data.load(data_config(p, dataset), a.data_dir)
    model, hist = prune.prune_and_finetune(model, PruneConfig(a.ratio), splits,
                                           finetune_config(p), p["device"],
                                           f"fine-tune {a.ratio:.0%}", not a.quiet)
    meta = {**info["meta"], "pruned": {"ratio": a.ratio, "history": hist}}
    store.save_checkpoint(model, a.out, ModelConfig(**info["model"]), "none", meta)
    print(f"sparsity {prune.sparsity_of(model):.4f} → {a.out}")
    return 0


def cmd_quantize(a) -> int:
    from . import quantize, store
    model, info = store.load_checkpoint(a.checkpoint)
    if info["quant"] != "none":
        raise ConfigError(f"{a.checkpoint} is already quantized ({info['quant']})")
    qm = quantize.quantize(model, QuantConfig("int8-dynamic"))
    size = store.save_checkpoint(qm, a.out, ModelConfig(**info["model"]), "int8-dynamic",
                                 info["meta"])
    print(f"{size} bytes → {a.out}")
    return 0


def cmd_compress(a) -> int:
    import dataclasses

    from . import compress, data, prune, share, store
    from .config import CodecConfig, gradual_config, dc_finetune_config, share_config, \
        share_finetune_config
    p = load_profile(a.profile, parse_overrides(a.overrides))
    if a.sparsity is not None:
        check_ratio(a.sparsity, "sparsity")
    if a.out.suffix != ".apx":
        raise ConfigError(f"--out must name an .apx file, got {a.out}")
    model, info = store.load_checkpoint(a.checkpoint)
    if info["quant"] != "none":
        raise ConfigError(f"{a.checkpoint} is quantized ({info['quant']}); compress the float model")
    mc = ModelConfig(**info["model"])
    dataset = _checkpoint_dataset(info, a.dataset)
    splits = data.load(data_config(p, dataset), a.data_dir)
    gc = gradual_config(p, mc.name)
    if a.sparsity is not None:
        gc = dataclasses.replace(gc, sparsity=a.sparsity)
    model, _ = prune.gradual_prune(model, gc, splits, dc_finetune_config(p), p["device"],
                                   f"prune gradually to {gc.sparsity:.0%}", not a.quiet)
    model, _, _ = share.share_and_finetune(model, share_config(p, mc.name), splits,
                                           share_finetune_config(p), p["device"],
                                           "codebook fine-tune", not a.quiet)
    meta = {"source": str(a.checkpoint), "configs": [
        {"type": "DataConfig", **dataclasses.asdict(data_config(p, dataset))},
        {"type": "GradualConfig", **dataclasses.asdict(gc)},
        {"type": "ShareConfig", **dataclasses.asdict(share_config(p, mc.name))}]}
    compress.save(model, a.out, CodecConfig("huffman", p["dc_index_bits"]), mc, meta)
    size = a.out.stat().st_size
    print(f"sparsity {prune.sparsity_of(model):.4f}, {size} bytes "
          f"({compress.dense_state_dict_bytes(mc) / size:.1f}× smaller than dense float32) → {a.out}")
    return 0


def cmd_evaluate(a) -> int:
    from . import data, measure, pipeline, prune, train
    p = load_profile(a.profile, parse_overrides(a.overrides))
    if a.model is not None:
        check_model(a.model)
    if a.checkpoint.suffix == ".onnx":
        raise ConfigError("evaluate takes .pt and .apx files; time an .onnx file with "
                          "benchmarks/latency.py --artifact")
    model, info = pipeline.load_artifact(a.checkpoint)
    if a.model is not None and info["model"]["name"] != a.model:
        raise ConfigError(f"{a.checkpoint} holds {info['model']['name']}, not {a.model}")
    dataset = _checkpoint_dataset(info, a.dataset)
    x, y = data.load_split(dataset, False, a.data_dir)
    if x.shape[1] != info["model"]["in_channels"]:
        raise ConfigError(f"{a.checkpoint} expects {info['model']['in_channels']}-channel "
                          f"images; {dataset} has {x.shape[1]}")
    params, zeros = measure.count_params(model)
    out = {"checkpoint": str(a.checkpoint), "dataset": dataset,
           "accuracy": train.accuracy(model, x, y), "size_bytes": a.checkpoint.stat().st_size,
           "params": params, "zero_params": zeros, "sparsity": prune.sparsity_of(model),
           **measure.latency_ms(model, tuple(x.shape[1:]), measure_config(p))}
    print(json.dumps(out, indent=1))
    if a.layers:
        print(measure.layer_sparsity(model).to_csv(index=False), end="")
    return 0


def cmd_profiles(a) -> int:
    for name in profile_names():
        print(f"{name:<6} {load_profile(name)['description']}")
    return 0


def _copy(src: Path, dst: Path) -> None:
    from .store import atomic_path
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    print(f"{src} → {dst}")


COMMANDS = {"report": cmd_report, "train": cmd_train, "prune": cmd_prune,
            "quantize": cmd_quantize, "compress": cmd_compress, "evaluate": cmd_evaluate,
            "profiles": cmd_profiles}


def main(argv: list[str] | None = None) -> int:
    try:
        a = build_parser().parse_args(argv)
        return COMMANDS[a.command](a)
    except ConfigError as e:
        print(f"approx: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("approx: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
