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
    csv = csv[~csv.section.isin(["F", "G"])]  # sections F and G have their own tests
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
    df = df[~df.section.isin(["F", "G"])]
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
    # A–E: 2 baselines, 4 prunes (MobileNetV2 50%; ResNet-18 30/50/70%), 1 quantize, and one
    # evaluation for each of these 7 distinct artifacts (15 rows share them). F, per model:
    # 1 gradual prune, 1 weight sharing, 6 encodings, 7 evaluations (the baseline is shared
    # with A/E), 1 bits curve. G, per model: 1 channel prune, 2 static INT8 (FX), 4 ONNX
    # exports, 7 evaluations (the baseline is shared).
    assert len(runner.computed) == 7 + 7 + 2 * (1 + 1 + 6 + 7 + 1) + 2 * (1 + 2 + 4 + 7)
    df2, again = PL.run(p, list("ABCDEFG"), store, root / "out", data_root, progress=False)
    assert again.computed == []
    pd.testing.assert_frame_equal(df.reset_index(drop=True), df2.reset_index(drop=True))
    assert all(s["cached"] for s in PL.dry_run(p, list("ABCDEFG"), store))


def test_changing_one_parameter_recomputes_only_its_dependents(smoke):
    p, store, root, _, _, data_root = smoke
    q = {**p, "finetune_lr": 0.02}
    todo = {(s["stage"], s["label"]) for s in PL.dry_run(q, ["B"], store) if not s["cached"]}
    assert ("train", "train resnet18 on fashion-mnist") not in todo
    assert {s for s, _ in todo} == {"prune", "quantize", "evaluate"}
    df, runner = PL.run(q, ["B"], store, root / "out", data_root, progress=False)
    assert len(runner.computed) == 2 + 2  # prune 50%, quantize; their two evaluations
    csv = pd.read_csv(root / "out" / "results.csv")
    assert (csv.section == "B").sum() == 3 and len(csv) == 15 + 16 + 16  # B replaced, others kept


def test_parse_sections():
    assert PL.parse_sections("a, C") == ["A", "C"]
    assert PL.parse_sections(None) == list("ABCDEFG")
    with pytest.raises(PL.ConfigError, match="unknown section 'Z'; valid: A, B, C, D, E, F, G"):
        PL.parse_sections("A,Z")


def test_section_f_rows_are_real_files_and_exact(smoke):
    """Deep Compression's stages: every size is a file's bytes, every ratio is computed from
    them, Huffman coding changes no prediction, and the .apx file decodes to the same accuracy."""
    from approxlib import compress as Z
    from approxlib import train as T
    from approxlib import data as D
    p, store, root, df, runner, data_root = smoke
    f = df[df.section == "F"]
    assert len(f) == 16
    for m in ("resnet18", "mobilenetv2"):
        d = f[f.model == m].set_index("codec")
        dense = PL.dense_bytes(PL.model_config(p, m, "fashion-mnist"))
        for r in f[f.model == m].itertuples():
            assert r.size_bytes == S.Path(r.artifact).stat().st_size
            assert r.compression_ratio == pytest.approx(dense / r.size_bytes)
        pruned = f[(f.model == m) & (f.prune_ratio > 0)]
        assert (pruned.prune_method == "gradual-l1").all()
        assert pruned.sparsity.sub(p["dc_sparsity"][m]).abs().max() < 1e-5
        assert d.loc["huffman", "size_bytes"] < d.loc["packed", "size_bytes"] < d.loc["sparse", "size_bytes"]
        assert d.loc["huffman", "size_bytes"] < d[d.index.isin(["gzip", "xz", "zstd"])].size_bytes.min()
        # lossless codecs: the same weights, so the same predictions
        assert d.loc["huffman", "accuracy"] == d.loc["packed", "accuracy"]
        assert d.loc["xz", "accuracy"] == d.loc["sparse", "accuracy"] == d.loc["none"].query(
            "prune_ratio > 0").accuracy.iloc[0]
        # decoding the shipped .apx file really gives that accuracy
        model, header = Z.load(d.loc["huffman", "artifact"])
        test_x, test_y = D.load_split("fashion-mnist", False, data_root)
        assert T.accuracy(model, test_x, test_y) == d.loc["huffman", "accuracy"]
        assert header["structure"] == "folded" and header["codec"] == "huffman"
    curve = pd.read_csv(root / "out" / "compression_bits.csv")
    assert sorted(curve.bits.unique()) == sorted(p["dc_bits_curve"]) and len(curve) == 4


def test_section_g_rows_time_every_runtime(smoke):
    """Section G: every model in PyTorch eager and ONNX Runtime, fp32 and static INT8, dense and
    channel-pruned; sizes are file bytes, FLOPs fall with channel pruning, INT8 files shrink."""
    p, store, root, df, runner, data_root = smoke
    g = df[df.section == "G"]
    assert len(g) == 16
    for m in ("resnet18", "mobilenetv2"):
        d = g[g.model == m]
        assert set(zip(d.prune_ratio, d.quant, d.runtime)) == {
            (r, q, rt) for r in (0.0, p["channel_ratio"]) for q in ("none", "int8-static")
            for rt in ("pytorch", "onnxruntime")}
        for r in d.itertuples():
            assert r.size_bytes == S.Path(r.artifact).stat().st_size
            assert r.latency_ms > 0 and r.latency_bs64_ms > r.latency_ms
        dense = d[(d.prune_ratio == 0) & (d.quant == "none") & (d.runtime == "pytorch")].iloc[0]
        ch = d[(d.prune_ratio > 0) & (d.quant == "none") & (d.runtime == "pytorch")].iloc[0]
        assert ch.flops < dense.flops / 2 and ch.params < dense.params / 2
        assert ch.prune_method == "channel-l1" and ch.sparsity == 0  # whole channels, no zeros
        int8 = d[(d.prune_ratio == 0) & (d.quant == "int8-static")]
        # int8 weights + per-channel scales/zero points (MobileNetV2's thin layers pay most)
        assert (dense.size_bytes / int8.size_bytes > 3.2).all()
        onnx = d[(d.runtime == "onnxruntime") & (d.quant == "none")]
        assert all(S.Path(a).suffix == ".onnx" for a in onnx.artifact)
        # the exported float model predicts what PyTorch predicts on (nearly) every image
        fp = d[(d.quant == "none")].set_index(["prune_ratio", "runtime"]).accuracy
        assert abs(fp[(0.0, "onnxruntime")] - fp[(0.0, "pytorch")]) < 0.002
