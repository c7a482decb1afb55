"""SGD training: the original's constant-lr protocol and better schedules, picked by config.

The loop follows torchvision's references (`train_one_epoch`, `evaluate`); the data side follows
airbench: uint8 tensors, batched augmentation on the device, channels_last, and bf16 autocast
where a profile asks for it (`precision: bf16`; fp32 otherwise, `use_bf16` says why).
"""
from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from . import convgrad
from . import data
from . import models
from .config import CONSTANT, COSINE, ONECYCLE, ConfigError, TrainConfig


def pick_device(name: str = "auto") -> torch.device:
    """The device a profile's `device` (config.DEVICES) trains on; refused where it is CUDA
    and this machine has none."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA device is available; valid: auto, cpu")
    return torch.device(device_type(name) if name == "auto" else name)


def device_type(name: str = "auto") -> str:
    """The device type `name` trains on, as records and dry runs name it ("cpu", "cuda"),
    without `pick_device`'s refusal of a CUDA this machine lacks (a run needing no training
    then still runs)."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name).type  # a caller's "cuda:1" too


def use_bf16(precision: str, device: torch.device, model: nn.Module) -> bool:
    """Whether to autocast to bf16: only when asked (`precision: bf16`); auto is fp32.

    Measured slower where this study trains (batch 128, benchmarks/gpu_train.py and
    train_throughput.py): on an H200 at 32×32, ResNet-18 15,556 → 12,241 img/s and MobileNetV2
    6,365 → 5,373 (the steps are too small to pay for the casts); on a 2-core Xeon with
    AMX-BF16, ResNet-18 572 → 533 and MobileNetV2 811 → 443. It pays for large images on a GPU:
    ResNet-18 at 224×224 on the H200 7,953 → 10,484 img/s (MobileNetV3-Small: 6,063 → 4,945).
    """
    return precision == "bf16"


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def _constant(opt: torch.optim.Optimizer, cfg: TrainConfig, steps: int):
    """The original's: the lr throughout."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)


def _onecycle(opt: torch.optim.Optimizer, cfg: TrainConfig, steps: int):
    """Linear one-cycle: from lr / 10 up to lr over `warmup` of the steps, then down to
    lr / 1000."""
    return torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=steps, pct_start=max(cfg.warmup, 1e-3),
        anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0,
        base_momentum=cfg.momentum, max_momentum=cfg.momentum)


def _cosine(opt: torch.optim.Optimizer, cfg: TrainConfig, steps: int):
    """Cosine to zero after a linear warm-up over `warmup` of the steps."""
    warm = int(cfg.warmup * steps)

    def factor(s: int) -> float:
        if s < warm:
            return (s + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm)))
    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


SCHEDULERS = {CONSTANT: _constant, ONECYCLE: _onecycle, COSINE: _cosine}  # config.SCHEDULES


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps: int):
    """Per-step schedule `cfg.schedule` (`SCHEDULERS`); the constant one where there is no step
    (OneCycleLR refuses zero steps)."""
    return SCHEDULERS[CONSTANT if steps == 0 else cfg.schedule](opt, cfg, steps)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 500,
            device: torch.device | str = "cpu") -> torch.Tensor:
    """Predicted class per image (int64, CPU) for a uint8 image tensor; the model's mode is
    left as it was."""
    device = torch.device(device)
    out = []
    with models.evaluating(model):
        for i in range(0, len(x), batch_size):
            xb = data.to_float(x[i:i + batch_size].to(device))
            out.append(model(xb).argmax(1).cpu())
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, **kw) -> float:
    if len(y) == 0 or len(x) != len(y):  # the mean of nothing read NaN without a word
        raise ValueError(f"accuracy of {len(x)} images with {len(y)} labels")
    return share(predict(model, x, **kw) == y)


def share(right: torch.Tensor) -> float:
    """The share of true entries, exactly (count ÷ n in float64): float32's mean put 765 of
    1,000 into results.csv as 0.7649999856948853, which a spreadsheet filter for 0.765 does
    not find (a reader of results.csv, 2026-12-08)."""
    return int(right.sum()) / len(right) if len(right) else float("nan")


def validation_passes(epochs: int, select_from: int = 1) -> int:
    """How many validation passes `train` makes: one per eligible epoch, or none when a single
    epoch is eligible (it is kept whatever it scores)."""
    eligible = max(0, epochs - select_from + 1)
    return eligible if eligible > 1 else 0


def epoch_size(n: int, cfg: TrainConfig) -> int:
    """Images one epoch draws from a training split of `n` (`cfg.epoch_fraction` of it, at
    least one)."""
    return n if cfg.epoch_fraction is None else max(1, round(n * cfg.epoch_fraction))


def steps_per_epoch(n: int, cfg: TrainConfig) -> int:
    """Optimizer steps of one epoch over a training split of `n`: the last batch may be short,
    but not of one image, which is left out (BatchNorm cannot train on one image: 33 images
    at batch 32 stopped with torch's "Expected more than 1 value per channel", 2026-12-07)."""
    size = epoch_size(n, cfg)
    return size // cfg.batch_size + (size % cfg.batch_size > 1)


def optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    """SGD over every parameter: the original applies weight decay to all of them (BatchNorm
    included), and so do we."""
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                           nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)


def _epoch_line(desc: str, epochs: int, h: dict) -> str:
    """One epoch of `train`'s history as the progress output prints it."""
    val = "–" if h["val_acc"] is None else f"{h['val_acc']:.3f}"
    return (f"{desc} epoch {h['epoch']}/{epochs}: loss {h['train_loss']:.3f} "
            f"train {h['train_acc']:.3f} val {val} ({h['img_per_s']:.0f} img/s)")


def train(model: nn.Module, splits: data.Splits, cfg: TrainConfig, device: str = "auto",
          desc: str = "train", progress: bool = True,
          after_step: Callable[[nn.Module], None] | None = None,
          select_from: int = 1, teacher: nn.Module | None = None) -> tuple[nn.Module, list[dict]]:
    """Train, evaluate on the validation split after each epoch, return the best-validation model.

    The original kept the epoch with the best *test* accuracy; picking on the test set inflates the
    reported number, so we pick on the validation split and report the test split once.
    `after_step(model)` runs after every optimizer step (pruning re-applies its masks there).
    Only epochs `select_from` (1-based) onwards are eligible (gradual pruning reaches its final
    sparsity there). With `cfg.kd_alpha` set, the loss distils from `teacher` (`distillation`).
    Returns the model (on the CPU, fp32) and a per-epoch history. `model` itself is trained (on
    the CPU it is the returned object): pass a copy to keep the original.
    """
    if len(splits.train_y) == 0:  # it ended in a ZeroDivisionError
        raise ValueError("no training images to train on")
    dev = pick_device(device)
    seed_everything(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)  # order + augmentation: one CPU stream
    model = model.to(dev).to(memory_format=torch.channels_last)
    if cfg.bn_momentum is not None:  # not part of the state dict: set for this training
        set_bn_momentum_(model, cfg.bn_momentum)
    bf16 = use_bf16(cfg.precision, dev, model)
    opt = optimizer(model, cfg)
    n, size = len(splits.train_y), epoch_size(len(splits.train_y), cfg)
    per_epoch = steps_per_epoch(n, cfg)
    sched = make_scheduler(opt, cfg, cfg.epochs * per_epoch)
    loss_fn = criterion(cfg, teacher, dev)
    train_x, train_y = splits.train_x.to(dev), splits.train_y.to(dev)

    best_acc, best_state, history = -1.0, None, []
    if cfg.epochs and select_from > cfg.epochs:
        raise ValueError(f"select_from={select_from} is past the last epoch ({cfg.epochs})")
    if cfg.epochs == 0:
        best_state = copy.deepcopy(model.state_dict())
    step = functools.partial(_step, model, opt, sched, loss_fn, cfg, gen, bf16, after_step)
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(n, generator=gen)[:size].to(dev)  # a fresh subset each epoch
        batches = (order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
                   for i in range(per_epoch))
        bar = tqdm(batches, total=per_epoch, desc=f"{desc} {epoch + 1}/{cfg.epochs}",
                   disable=not progress, leave=False, mininterval=1.0)
        loss_sum, correct, secs = _epoch(step, train_x, train_y, bar, progress)
        eligible = epoch + 1 >= select_from
        # No validation pass where it cannot change the pick (issue 19: a 1-epoch fine-tuning
        # is kept whatever it scores; an epoch before `select_from` is never kept). The
        # evaluation step measures the kept model's validation accuracy all the same.
        decided = not eligible or (best_state is None and epoch + 1 == cfg.epochs)
        val_acc = None if decided else accuracy(model, splits.val_x, splits.val_y, device=dev)
        history.append({"epoch": epoch + 1, "train_loss": loss_sum / size,
                        "train_acc": correct / size, "val_acc": val_acc,
                        "lr_end": opt.param_groups[0]["lr"], "seconds": secs,
                        "img_per_s": size / secs})
        if progress:
            tqdm.write(_epoch_line(desc, cfg.epochs, history[-1]))
        if eligible and (decided or val_acc > best_acc):
            best_acc = best_acc if val_acc is None else val_acc
            best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return model.cpu().to(memory_format=torch.contiguous_format), history


def set_bn_momentum_(model: nn.Module, momentum: float) -> None:
    """Every BatchNorm's running-statistics momentum (fused QAT modules' too)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = momentum


def criterion(cfg: TrainConfig, teacher: nn.Module | None, device: torch.device):
    """The training loss as `loss(logits, labels, inputs)`: cross-entropy, or with
    `cfg.kd_alpha` set Hinton's distillation from `teacher` (run frozen, in eval mode)."""
    ce = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    if cfg.kd_alpha is None:
        return lambda logits, y, x: ce(logits, y)
    if teacher is None:
        raise ValueError("kd_alpha is set but no teacher was given")
    teacher = copy.deepcopy(teacher).to(device).eval().requires_grad_(False)

    def loss(logits, y, x):
        with torch.no_grad():
            target = teacher(x).float()
        return ((1 - cfg.kd_alpha) * ce(logits, y)
                + cfg.kd_alpha * distillation(logits, target, cfg.kd_temperature))
    return loss


def distillation(student: torch.Tensor, teacher: torch.Tensor, temperature: float
                 ) -> torch.Tensor:
    """KL(teacher ‖ student) of the softened distributions, times T² so that its gradients keep
    their scale as T changes (Hinton et al., 2015)."""
    t = temperature
    return nn.functional.kl_div(nn.functional.log_softmax(student / t, 1),
                                nn.functional.log_softmax(teacher / t, 1),
                                reduction="batchmean", log_target=True) * t * t


def _epoch(step, train_x, train_y, batches, progress: bool) -> tuple[float, float, float]:
    """One pass over `batches` (index tensors); returns (summed loss, correct count, seconds).

    The sums stay on the device: reading them every step (`.item()`) would stall a GPU's queue,
    so the progress bar reads them every 50 steps only.
    """
    dev = train_x.device
    seen, correct, loss_sum = 0, torch.zeros((), device=dev), torch.zeros((), device=dev)
    t0 = time.perf_counter()
    for i, idx in enumerate(batches):
        loss, right = step(train_x[idx], train_y[idx])
        seen += len(idx)
        loss_sum += loss * len(idx)
        correct += right
        if progress and i % 50 == 0:
            batches.set_postfix(loss=f"{loss_sum.item() / seen:.3f}",
                                acc=f"{correct.item() / seen:.3f}", refresh=False)
    loss_sum, correct = loss_sum.item(), correct.item()  # waits for the last step
    return loss_sum, correct, time.perf_counter() - t0


def _step(model, opt, sched, loss_fn, cfg: TrainConfig, gen, bf16: bool, after_step,
          x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a uint8 batch; returns the (detached) loss and the correct count."""
    xb = data.augment(x, cfg.crop_padding, cfg.flip, gen)
    xb = data.to_float(xb).contiguous(memory_format=torch.channels_last)
    with torch.autocast(xb.device.type, dtype=torch.bfloat16, enabled=bf16), \
            convgrad.FastWeightGrads():
        logits = model(xb)
        loss = loss_fn(logits.float(), y, xb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if after_step is not None:
        after_step(model)
    sched.step()
    return loss.detach(), (logits.argmax(1) == y).sum()
