"""Training on a GPU: speed at the `paper` profile's shapes, and its protocol run on real data.

1. Speed. CIFAR-10's shapes (45,000 training images 3×32×32, 5,000 validation, batch 128) with
   the `paper` profile's SGD settings, per model and precision (fp32, bf16 autocast). Pixels and
   labels are random: a step costs the same whatever the pixels (CIFAR cannot be downloaded on
   the machines this was written for). The second epoch is timed; the first includes cuDNN's
   autotuning. One more ResNet-18 fp32 run synchronizes after every step, as the trainer did
   before it kept its running sums on the device: the ratio is what that change bought.
2. Accuracy. The `paper` protocol (SGD lr 0.1 constant, 30 epochs, batch 128, crop + flip, fp32)
   on real Fashion-MNIST (55,000 training + 5,000 validation images): the test accuracy of the
   checkpoint picked on validation, and the wall time, so a GPU run is known to train, not only
   to be fast. Skipped for what does not fit in --budget seconds.

Writes one JSON object per measurement to stdout and, with --out, to that file.
Run: PYTHONPATH=. python3 benchmarks/gpu_train.py --out gpu_train.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from approxlib import cli  # noqa: E402
from approxlib import data  # noqa: E402
from approxlib import models  # noqa: E402
from approxlib import train  # noqa: E402
from approxlib.config import (ConfigError, DataConfig, ModelConfig, load_profile,  # noqa: E402
                              train_config)

MODELS = ("resnet18", "mobilenetv2")


def emit(row: dict, out: str | None) -> None:
    print(json.dumps(row), flush=True)
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")


def random_splits(n_train: int = 45_000, n_val: int = 5_000, classes: int = 10,
                  size: int = 32) -> data.Splits:
    g = torch.Generator().manual_seed(0)

    def part(n):
        return (torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g),
                torch.randint(0, classes, (n,), generator=g))
    (tx, ty), (vx, vy) = part(n_train), part(n_val)
    return data.Splits(tx, ty, vx, vy, vx, vy, classes, 3)


def speed(name: str, precision: str, splits: data.Splits, sync_every_step: bool = False,
          device: str = "cuda") -> dict:
    cfg = train_config({**load_profile("paper"), "epochs": 2, "precision": precision})
    model = models.build(ModelConfig(name, splits.num_classes, splits.in_channels, "imagenet"))
    hook = (lambda m: torch.cuda.synchronize()) if sync_every_step else None
    _, hist = train.train(model, splits, cfg, device, progress=False, after_step=hook)
    return {"part": "speed", "model": name, "precision": precision,
            "sync_every_step": sync_every_step, "images": len(splits.train_y),
            "image_size": splits.train_x.shape[-1],
            "epoch_s": round(hist[1]["seconds"], 3), "img_per_s": round(hist[1]["img_per_s"])}


def protocol(name: str, epochs: int, device: str = "cuda") -> dict:
    p = load_profile("paper", {"dataset": "fashion-mnist", "epochs": epochs})
    splits = data.load(DataConfig("fashion-mnist", None, p["val_size"], p["seed"]))
    model = models.build(ModelConfig(name, splits.num_classes, splits.in_channels, p["stem"]))
    t0 = time.perf_counter()
    model, hist = train.train(model, splits, train_config(p), device, progress=False)
    wall = time.perf_counter() - t0
    best = max(range(len(hist)), key=lambda i: hist[i]["val_acc"])
    return {"part": "protocol", "model": name, "dataset": "fashion-mnist", "epochs": epochs,
            "train_images": len(splits.train_y), "wall_s": round(wall, 1),
            "best_epoch": best + 1, "val_acc": round(hist[best]["val_acc"], 4),
            "test_acc": round(train.accuracy(model, splits.test_x, splits.test_y), 4),
            "median_img_per_s": round(sorted(h["img_per_s"] for h in hist)[len(hist) // 2])}


def speed_part(splits: data.Splits, out: str | None) -> list[dict]:
    rows = []
    for name in MODELS:
        for precision in ("fp32", "bf16"):
            rows.append(speed(name, precision, splits))
            emit(rows[-1], out)
    emit(speed("resnet18", "fp32", splits, sync_every_step=True), out)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out")
    ap.add_argument("--epochs", type=int, default=30, help="epochs of part 2 (paper: 30)")
    ap.add_argument("--budget", type=float, default=300, help="seconds for the whole script")
    ap.add_argument("--protocol", nargs="*", default=list(MODELS), help="models of part 2")
    ap.add_argument("--large", action="store_true",
                    help="instead of part 1: fp32 vs bf16 at 224×224 (4,096 images)")
    a = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise ConfigError("needs a CUDA GPU (torch sees none): it measures GPU training")
    if a.epochs < 2:  # the protocol's best epoch is picked on validation (one is kept unseen)
        raise ConfigError(f"--epochs must be at least 2, got {a.epochs}")
    unknown = sorted(set(a.protocol) - set(MODELS))
    if unknown:
        raise ConfigError(f"--protocol {', '.join(unknown)}: choose from {', '.join(MODELS)}")
    start = time.perf_counter()
    emit({"part": "machine", "gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
          "cudnn": torch.backends.cudnn.version()}, a.out)
    if a.large:
        big = random_splits(4096, 512, size=224)
        for name in ("resnet18", "mobilenet_v3_small"):
            for precision in ("fp32", "bf16"):
                emit(speed(name, precision, big), a.out)
        rows = [{"model": m, "epoch_s": 7.1} for m in MODELS]  # run 1: fp32 at most 7.07 s
    else:
        rows = speed_part(random_splits(), a.out)
    for name in a.protocol:
        per_epoch = max(r["epoch_s"] for r in rows if r["model"] == name) * 60 / 45
        left = a.budget - (time.perf_counter() - start)
        if per_epoch * a.epochs * 1.3 > left:  # 1.3: validation after each epoch
            emit({"part": "protocol", "model": name, "skipped": f"{left:.0f} s left"}, a.out)
            continue
        emit(protocol(name, a.epochs), a.out)
    return 0


if __name__ == "__main__":
    sys.exit(cli.guarded("gpu_train.py", main))
