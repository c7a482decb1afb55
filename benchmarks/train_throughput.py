"""approxlib's trainer vs a faithful re-implementation of the original study's training loop.

Both train ResNet-18 (ImageNet stem, as the original) on the same class-balanced Fashion-MNIST
subset in this one process, and are measured the same way:

- training images/s (data loading + forward + backward + step; evaluation excluded);
- wall time (training only) until the test accuracy first reaches --target, checked after each
  epoch. The test split is used here only to time the runs, never to pick a model.

The reference is the original's loop: torchvision DataLoader over PIL images with per-sample
RandomCrop(padding=4) + RandomHorizontalFlip + ToTensor, 2 workers, fp32, contiguous layout, SGD
lr 0.1 constant, momentum 0.9, weight decay 5e-4, batch 128. approxlib trains with the `quick`
profile's settings (uint8 tensors augmented per batch, channels_last, bf16 autocast where faster,
one-cycle lr). If the reference never reaches the target within --ref-epochs, its time is the
whole budget and the time ratio is a lower bound (`reference_reached=0`).

Last line: img_s_speedup=… time_to_accuracy_speedup=… plus the raw figures.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import datasets as tvd
from torchvision import transforms as tvt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from approxlib import cli  # noqa: E402
from approxlib import data  # noqa: E402
from approxlib import models  # noqa: E402
from approxlib import train  # noqa: E402
from approxlib.config import (ConfigError, DataConfig, ModelConfig, load_profile,  # noqa: E402
                              train_config)


def reference_run(subset_idx, root, test_x, test_y, epochs, target, threads_workers=2):
    """The original's loop, as its scripts wrote it."""
    tf = tvt.Compose([tvt.RandomCrop(28, padding=4), tvt.RandomHorizontalFlip(), tvt.ToTensor()])
    ds = Subset(tvd.FashionMNIST(root, train=True, transform=tf), subset_idx.tolist())
    loader = DataLoader(ds, batch_size=128, shuffle=True, num_workers=threads_workers)
    torch.manual_seed(0)
    model = models.build(ModelConfig("resnet18", 10, 1, "imagenet"))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    train_s, seen, reached_at, accs = 0.0, 0, None, []
    for _ in range(epochs):
        model.train()
        t0 = time.perf_counter()
        for x, y in loader:
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(y)
        train_s += time.perf_counter() - t0
        acc = train.accuracy(model, test_x, test_y)
        accs.append(round(acc, 4))
        if acc >= target and reached_at is None:
            reached_at = train_s
            break
    return {"img_s": seen / train_s, "train_s": train_s, "reached_s": reached_at, "accs": accs}


def approx_run(splits, test_x, test_y, epochs, target):
    cfg = train_config({**load_profile("quick"), "epochs": epochs})
    # Time-to-accuracy needs the test accuracy after every epoch; passing the test split as the
    # per-epoch "validation" split gets exactly that (this benchmark selects nothing).
    timed = data.Splits(splits.train_x, splits.train_y, test_x, test_y, test_x, test_y, 10, 1)
    torch.manual_seed(0)
    model, hist = train.train(models.build(ModelConfig("resnet18", 10, 1, "imagenet")), timed,
                              cfg, "cpu", desc="approxlib", progress=False)
    if hist[-1]["val_acc"] is None:  # a one-epoch run is kept unvalidated (train.train)
        hist[-1]["val_acc"] = train.accuracy(model, test_x, test_y)
    train_s, reached_at, seen = 0.0, None, 0
    for h in hist:
        train_s += h["seconds"]
        seen += h["img_per_s"] * h["seconds"]
        if h["val_acc"] >= target and reached_at is None:
            reached_at = train_s
    return {"img_s": seen / train_s, "train_s": train_s, "reached_s": reached_at,
            "accs": [round(h["val_acc"], 4) for h in hist]}


def reached(run: dict, target: float) -> str:
    return (f"reached {target} after {run['reached_s']:.1f} s" if run["reached_s"] is not None
            else f"did not reach {target} in {run['train_s']:.1f} s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train-size", type=int, default=10_000)
    ap.add_argument("--target", type=float, default=0.85, help="test accuracy to reach")
    ap.add_argument("--epochs", type=int, default=4, help="approxlib's one-cycle length")
    ap.add_argument("--ref-epochs", type=int, default=8, help="the reference's budget")
    ap.add_argument("--data-dir", default=None)
    a = ap.parse_args(argv)
    if min(a.epochs, a.ref_epochs) < 1 or not 0 < a.target <= 1:
        raise ConfigError("--epochs and --ref-epochs must be at least 1 and --target in (0, 1]")

    splits = data.load(DataConfig("fashion-mnist", a.train_size, 1000, 0), a.data_dir)
    root = a.data_dir or data.default_root()
    # The same images for the reference: recover their indices in the full training split.
    full_x, _ = data.load_split("fashion-mnist", True, a.data_dir)
    g = torch.Generator().manual_seed(0)
    full_y = tvd.FashionMNIST(root, train=True).targets
    val_idx = data.balanced_indices(full_y, 1000, g)
    idx = data.balanced_indices(full_y, a.train_size, g, exclude=val_idx)
    assert torch.equal(full_x[idx], splits.train_x), "reference and approxlib must see the same images"

    test_x, test_y = splits.test_x, splits.test_y
    ours = approx_run(splits, test_x, test_y, a.epochs, a.target)
    print(f"approxlib: {ours['img_s']:.0f} img/s, test acc per epoch {ours['accs']}, "
          f"{reached(ours, a.target)}", flush=True)
    ref = reference_run(idx, root, test_x, test_y, a.ref_epochs, a.target)
    print(f"reference: {ref['img_s']:.0f} img/s, test acc per epoch {ref['accs']}, "
          f"{reached(ref, a.target)}", flush=True)

    ref_time = ref["reached_s"] if ref["reached_s"] is not None else ref["train_s"]
    ours_time = ours["reached_s"] if ours["reached_s"] is not None else float("nan")
    print(f"img_s_speedup={ours['img_s'] / ref['img_s']:.2f} "
          f"time_to_accuracy_speedup={ref_time / ours_time:.2f} "
          f"approx_img_s={ours['img_s']:.0f} reference_img_s={ref['img_s']:.0f} "
          f"approx_time_to_acc_s={ours_time:.1f} reference_time_to_acc_s={ref_time:.1f} "
          f"reference_reached={int(ref['reached_s'] is not None)} target={a.target} "
          f"threads={torch.get_num_threads()}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.guarded("train_throughput.py", main))
