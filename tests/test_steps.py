"""Steps: one registered class per kind of stage; a variant's chain is a fold over its recipe."""
import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from approxlib import pipeline
from approxlib.sections import SECTIONS
from approxlib import steps
from approxlib import store as S
from approxlib.config import (ChannelConfig, DataConfig, MeasureConfig, ModelConfig, PruneConfig,
                              StaticQuantConfig, TrainConfig, load_profile)


@pytest.mark.parametrize("profile", ["smoke", "quick"])
def test_chain_is_a_fold_over_the_recipe(profile):
    p = load_profile(profile)
    used = set()
    for v in pipeline.plan(p, list(SECTIONS)):
        recipe, stages = pipeline.recipe(v, p), pipeline.stages(v, p)
        assert [st.step for st in stages] == list(recipe)
        assert isinstance(recipe[0], steps.Train) and isinstance(recipe[-1], steps.Evaluate)
        for up, st in zip([None, *stages], stages):
            assert st.upstream is up
            assert st.key == st.step.key(up.key if up else None)
            assert st.label == st.step.label(v) + (", distilled" if st.step.distils() else "")
        # a distilled stage says so: otherwise it is named like its undistilled twin
        assert any(st.step.distils() for st in stages) == v.kd
        used |= {st.kind for st in stages}
    if profile == "quick":  # every registered kind is used by the study, none is left over
        # (but `given`, which a profile with `init:` uses instead of `train`: test_folder)
        assert used == set(steps.REGISTRY) - {"given"}


def test_every_kind_is_one_registered_frozen_class():
    for kind, cls in steps.REGISTRY.items():
        assert cls.kind == kind and issubclass(cls, steps.Step)
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
        assert cls.run is not steps.Step.run and cls.label is not steps.Step.label
    with pytest.raises(ValueError, match="registered twice"):
        steps.register(steps.Train)


def test_keys_do_not_move():
    """The keys the code before steps computed for these configs (config + upstream, chained):
    a store filled then stays valid. Change one only on purpose, and say so in the README."""
    d, m = DataConfig("fashion-mnist", 2000, 500), ModelConfig("resnet18", 10, 1)
    train = steps.Train(d, m, TrainConfig(2)).key(None)
    pruned = steps.Prune(d, m, PruneConfig(0.5), TrainConfig(1)).key(train)
    assert (train, pruned) == ("2b86b4439407d60f", "777a2fae90535a2b")
    # Evaluate's version 3 (2026-12-01): each validation image's right/wrong is kept
    assert steps.Evaluate(MeasureConfig(), d).key(pruned) == "358c979c39949e17"
    assert steps.Static(d, m, StaticQuantConfig()).key(train) == "6a68cceb682ddccc"
    # Channel before its criterion could be chosen (2026-12-07): L1 keeps its key, others differ
    channel = steps.Channel(d, m, ChannelConfig(0.5), TrainConfig(1))
    assert channel.key(train) == "c8bddcf9faa674a1"
    random = dataclasses.replace(channel, channel=ChannelConfig(0.5, criterion="random"))
    assert random.key(train) != channel.key(train)


def test_keys_follow_every_config_and_the_upstream():
    d, m, t = DataConfig("fashion-mnist", 2000, 500), ModelConfig("resnet18", 10, 1), TrainConfig(2)
    base = steps.Train(d, m, t)
    others = [steps.Train(dataclasses.replace(d, val_size=400), m, t),
              steps.Train(d, dataclasses.replace(m, stem="cifar"), t),
              steps.Train(d, m, dataclasses.replace(t, lr=0.05)),
              steps.Train(d, m, dataclasses.replace(t, epoch_fraction=0.5))]
    keys = {base.key(None), *(s.key(None) for s in others), base.key("abc")}
    assert len(keys) == 6


def test_a_new_kind_of_stage_is_one_class(smoke_run, tmp_path):
    """A step defined outside the library runs through the runner: cached, verified, evaluated."""
    p, store, _, _, _, data_root = smoke_run

    @dataclasses.dataclass(frozen=True)
    class ZeroBias(steps.Step):
        kind = "zero-bias-test"
        model: ModelConfig

        def label(self, v):
            return f"zero {v.model}'s classifier bias"

        def run(self, ctx, st, path, meta):
            model, _ = ctx.load(st.upstream, self.model)
            torch.nn.init.zeros_(model.fc.bias)
            return steps.Checkpoint(model, self.model)

    v = pipeline.Variant("B", "resnet18", p["dataset"])
    train, evaluate = pipeline.stages(v, p)
    mine = S.Store(tmp_path / "models")  # the trained model copied in, digest included
    trained = store.path("train", train.key)
    for src in (trained, Path(f"{trained}{S.DIGEST}")):
        dst = mine.root / "train" / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    step = ZeroBias(train.step.model)
    zero = pipeline.Stage(step, step.key(train.key), step.label(v), train)
    ev = pipeline.Stage(evaluate.step, evaluate.step.key(zero.key), evaluate.label, zero)
    runner = pipeline.Runner(p, mine, data_root, progress=False)
    m = runner.evaluate(ev)
    assert runner.computed == [zero.key, ev.key]  # training was not repeated
    model, info = S.load_checkpoint(mine.path("zero-bias-test", zero.key))
    assert info["meta"]["stage"] == "zero-bias-test" and not model.fc.bias.any()
    assert m["artifact_key"] == zero.key and 0 <= m["accuracy"] <= 1
    assert pipeline.is_cached(zero, mine) and pipeline.is_cached(ev, mine)


def test_static_int8_onnx_quantizes_the_float_variants_export(smoke_run, tmp_path):
    """Section G's ORT INT8 variant starts from the float ONNX variant's file: one export per
    model, not two (issue 19)."""
    p, store, root, df, runner, data_root = smoke_run
    g = [v for v in pipeline.plan(p, ["G"]) if v.runtime == "onnxruntime" and v.prune_ratio == 0]
    fp32 = next(pipeline.chain(v, p).upstream for v in g if v.quant == "none")
    int8 = next(pipeline.chain(v, p).upstream for v in g if v.quant == "int8-static")
    assert int8.step.float_export(int8).key == fp32.key and int8.upstream == fp32.upstream
    mine = S.Store(tmp_path / "models")  # the baseline copied in: both exports computed here
    trained = store.path(int8.upstream.kind, int8.upstream.key)
    for src in (trained, Path(f"{trained}{S.DIGEST}")):
        dst = mine.root / int8.upstream.kind / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    mine_runner = pipeline.Runner(p, mine, data_root, progress=False)
    mine_runner.artifact(int8)
    assert mine_runner.computed == [fp32.key, int8.key]  # the float export, then its INT8
    assert mine.path("onnx", fp32.key, ".onnx").read_bytes() == store.path(
        "onnx", fp32.key, ".onnx").read_bytes()  # the float variant's own file, bit for bit
    mine_runner.artifact(fp32)
    assert mine_runner.computed == [fp32.key, int8.key]  # and it is not exported again
