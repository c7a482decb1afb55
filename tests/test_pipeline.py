import pandas as pd
import pytest

from approxlib import pipeline as PL
from approxlib import store as S

CONTRACT = ["section", "model", "dataset", "stem", "prune_method", "prune_ratio", "quant",
            "codec", "seed", "accuracy", "size_bytes", "latency_ms", "params", "zero_params",
            "sparsity", "artifact"]


@pytest.fixture
def smoke(smoke_run):
    return smoke_run


def test_results_have_every_variant_and_the_contract_columns(smoke):
    p, store, root, df, runner, _ = smoke
    csv = pd.read_csv(root / "out" / "results.csv")
    assert list(csv.columns[: len(CONTRACT)]) == CONTRACT
    got = {(r.section, r.model, r.prune_ratio, r.quant) for r in csv.itertuples()}
    want = {("A", "mobilenetv2", 0.0, "none"), ("A", "mobilenetv2", 0.5, "none"),
            ("B", "resnet18", 0.0, "none"), ("B", "resnet18", 0.5, "none"),
            ("B", "resnet18", 0.5, "int8-dynamic"),
            *{("C", "resnet18", r, "none") for r in (0.0, 0.3, 0.5, 0.7)},
            ("D", "resnet18", 0.0, "none"), ("D", "resnet18", 0.5, "none"),
            *{("E", m, r, "none") for m in ("resnet18", "mobilenetv2") for r in (0.0, 0.5)}}
    assert got == want and len(csv) == len(want)
    assert csv["accuracy"].between(0, 1).all() and (csv["test_images"] == 10000).all()
    assert (csv["latency_ms"] > 0).all() and (csv["size_bytes"] > 0).all()


def test_rows_measure_what_they_claim(smoke):
    _, _, root, df, _, _ = smoke
    for r in df.itertuples():
        assert r.size_bytes == S.Path(r.artifact).stat().st_size
        assert abs(r.sparsity - r.prune_ratio) < 1e-5  # global L1: exactly the ratio
        assert r.prune_method == ("none" if r.prune_ratio == 0 else "l1-unstructured")
    b = df[df.section == "B"].set_index("quant")
    # dense fp32 storage: pruning saves no bytes (the original's finding); INT8 saves the fc only
    assert b.loc["int8-dynamic", "size_bytes"] < b.loc["none", "size_bytes"].max()
    # Shared variants are one artifact: B's baseline is C's 0% and E's ResNet baseline.
    base = df[(df.model == "resnet18") & (df.prune_ratio == 0)]
    assert base["artifact"].nunique() == 1 and base["accuracy"].nunique() == 1
    layers = pd.read_csv(root / "out" / "sparsity" / "resnet18_fashion-mnist_p70_none.csv")
    assert layers["zeros"].sum() / layers["total"].sum() == pytest.approx(0.7, abs=1e-6)


def test_second_run_computes_nothing(smoke):
    p, store, root, df, runner, data_root = smoke
    # 2 baselines, 4 prunes (MobileNetV2 50%; ResNet-18 30/50/70%), 1 quantize, and one
    # evaluation for each of these 7 distinct artifacts (15 rows share them)
    assert len(runner.computed) == 7 + 7
    df2, again = PL.run(p, list("ABCDE"), store, root / "out", data_root, progress=False)
    assert again.computed == []
    pd.testing.assert_frame_equal(df.reset_index(drop=True), df2.reset_index(drop=True))
    assert all(s["cached"] for s in PL.dry_run(p, list("ABCDE"), store))


def test_changing_one_parameter_recomputes_only_its_dependents(smoke):
    p, store, root, _, _, data_root = smoke
    q = {**p, "finetune_lr": 0.02}
    todo = {(s["stage"], s["label"]) for s in PL.dry_run(q, ["B"], store) if not s["cached"]}
    assert ("train", "train resnet18 on fashion-mnist") not in todo
    assert {s for s, _ in todo} == {"prune", "quantize", "evaluate"}
    df, runner = PL.run(q, ["B"], store, root / "out", data_root, progress=False)
    assert len(runner.computed) == 2 + 2  # prune 50%, quantize; their two evaluations
    csv = pd.read_csv(root / "out" / "results.csv")
    assert (csv.section == "B").sum() == 3 and len(csv) == 15  # B replaced, others kept


def test_parse_sections():
    assert PL.parse_sections("a, C") == ["A", "C"]
    assert PL.parse_sections(None) == list("ABCDE")
    with pytest.raises(PL.ConfigError, match="unknown section 'Z'; valid: A, B, C, D, E"):
        PL.parse_sections("A,Z")
