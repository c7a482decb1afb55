import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from approxlib import config, pipeline
from approxlib.sections import Variant


@pytest.mark.parametrize("name", config.profile_names())
def test_every_profile_validates(name):
    p = config.load_profile(name)
    assert p["profile"] == name and p["description"]
    # Every stage config a profile implies can be built.
    config.train_config(p), config.finetune_config(p), config.measure_config(p), config.data_config(p, p["dataset"])


def test_a_description_says_which_parameters_this_run_changed():
    """Smoke's words ("2,000 real Fashion-MNIST training images") headed a report of smoke on
    a user's own folder (2026-12-08): an override that changes a value is named."""
    own = config.load_profile("smoke")["description"]
    p = config.load_profile("smoke", {"train_size": None, "dataset": "cifar10", "seed": 0})
    assert p["description"] == ("This run sets dataset, train_size otherwise; the profile's "
                                "own words: " + own)  # seed 0: as it was
    assert config.load_profile("smoke", {"seed": 0})["description"] == own


def test_profiles_are_the_contract():
    assert {"smoke", "quick", "paper"} <= set(config.profile_names())
    assert config.load_profile("quick")["dataset"] == "fashion-mnist"
    paper = config.load_profile("paper")
    # The original protocol, exactly: constant lr 0.1, 30 + 5 epochs, fine-tune lr 0.01 without wd.
    assert (paper["dataset"], paper["dataset_d"]) == ("cifar10", "cifar100")
    assert (paper["lr"], paper["schedule"], paper["epochs"], paper["batch_size"]) == (0.1, "constant", 30, 128)
    assert (paper["momentum"], paper["weight_decay"]) == (0.9, 5e-4)
    assert (paper["finetune_epochs"], paper["finetune_lr"], paper["finetune_weight_decay"]) == (5, 0.01, 0.0)
    assert paper["ratios"] == [0.3, 0.5, 0.7] and paper["stem"] == "imagenet"


def test_overrides_apply_and_parse_yaml_values():
    p = config.load_profile("smoke", config.parse_overrides(["epochs=3", "ratios=[0, 0.5, 0.9]", "flip=false"]))
    assert p["epochs"] == 3 and p["ratios"] == [0, 0.5, 0.9] and p["flip"] is False


@pytest.mark.parametrize("overrides, message", [
    ({"nosuch": 1}, "unknown parameter 'nosuch'; valid: batch_size"),
    ({"dc_epochs": 0}, "dc_epochs for resnet18 is 0: gradual pruning reaches its sparsity while "
                       "it trains, so it needs at least 1"),
    ({"h_latency_min_time": 0.1}, "parameter 'h_latency_min_time' was removed: section H no "
                                  "longer times latency (it compares accuracies); delete it"),
    ({"ratio": 1.5}, "ratio must be in [0.0, 1.0), got 1.5"),
    ({"ratio": 1.0}, "ratio must be in [0.0, 1.0)"),
    ({"ratio": [0.5]}, "ratio must be a number, got [0.5]"),
    ({"ratios": [0.3, 1.2]}, "each of ratios must be in [0.0, 1.0)"),
    ({"ratios": 0.5}, "ratios must be a non-empty list"),
    ({"dataset": "mnist"}, "unknown dataset 'mnist'; valid: fashion-mnist, cifar10, cifar100, imagefolder:PATH"),
    ({"stem": "big"}, "unknown stem 'big'; valid: imagenet, cifar"),
    ({"schedule": "step"}, "unknown schedule 'step'; valid: constant, onecycle, cosine"),
    ({"epochs": 2.5}, "epochs must be an integer"),
    ({"flip": "yes"}, "flip must be true or false"),
    ({"channel_epochs": {"resnet18": 2}}, "channel_epochs has no value for mobilenetv2"),
    ({"dc_sparsity": {"resnet18": 0.9, "vgg": 0.5, "default": 0.8}}, "unknown model 'vgg'"),
    ({"channel_lr": {"resnet18": 0.1, "mobilenetv2": -1}}, "channel_lr must be"),
    ({"dc_epochs": {"resnet18": 2.5, "default": 3}}, "dc_epochs must be an integer"),
    # named by the key a user sets, not by the config field it feeds ("lr must be ...")
    ({"finetune_lr": 0}, "finetune_lr must be in (0.0, 100.0], got 0"),
    ({"dc_share_lr": 0}, "dc_share_lr must be"), ({"qat_lr": 0}, "qat_lr must be"),
    ({"finetune_epochs": -1}, "finetune_epochs must be"), ({"dc_sparsity": 1}, "dc_sparsity must"),
    ({"dc_bits_conv": 0}, "dc_bits_conv must be"), ({"dc_index_bits": 0}, "dc_index_bits must"),
    ({"channel_ratios": [0.3, 1]}, "each of channel_ratios must be in (0.0, 1.0), got 1"),
    ({"h_protocols": {"a": {"lr": 0}}}, "h_protocols.a.lr must be in (0.0, 100.0], got 0"),
    ({"h_protocols": {"a": {"finetune_lr": -1}}}, "h_protocols.a.finetune_lr must be"),
    ({"h_protocols": {"a": {"schedule": "x"}}}, "unknown h_protocols.a.schedule 'x'"),
    ({"dc_epochs": {"resnet18": 6}}, "dc_epochs has no value for mobilenetv2"),
    ({"dc_curve_sparsities": [0.5, 1.0]},
     "each of dc_curve_sparsities for resnet18 must be in (0, 1), got 1.0"),
    ({"dc_curve_sparsities": {"resnet18": 0.9, "default": []}},
     "dc_curve_sparsities for resnet18 must be a list, got 0.9"),
    ({"dc_curve_sparsities": {"resnet18": [0.951, 0.954], "default": []}},
     "dc_curve_sparsities for resnet18: 0.951 and 0.954 (dc_sparsity included) are both 95%"),
    ({"dc_sparsity": 0.9, "dc_curve_sparsities": [0.9001]},
     "dc_curve_sparsities for resnet18: 0.9 and 0.9001 (dc_sparsity included) are both 90%"),
])
def test_bad_values_name_the_problem(overrides, message):
    with pytest.raises(config.ConfigError) as e:
        config.load_profile("smoke", overrides)
    assert message in str(e.value)


def test_per_model_settings_take_one_value_or_a_mapping():
    p = config.load_profile("smoke", {"channel_epochs": 3, "channel_lr": {"resnet18": 0.1,
                                                                          "mobilenetv2": 0.02}})
    assert config.channel_finetune_config(p, "resnet18").epochs == 3
    assert config.channel_finetune_config(p, "mobilenetv2").epochs == 3
    assert config.channel_finetune_config(p, "resnet18").lr == 0.1
    assert config.channel_finetune_config(p, "mobilenetv2").lr == 0.02


def test_gradual_pruning_and_its_control_train_each_models_own_epochs():
    p = config.load_profile("smoke", {"dc_epochs": {"resnet18": 4, "default": 2}})
    for model, epochs in (("resnet18", 4), ("mobilenetv2", 2), ("mobilenet_v3_small", 2)):
        assert config.dc_finetune_config(p, model).epochs == epochs
        pruned = Variant("F", model, "fashion-mnist", 0.8, prune="gradual-l1")
        control = dataclasses.replace(pruned, prune_ratio=0.0, control="equal-compute")
        assert pipeline.finetune_of(pruned, p).epochs == epochs
        assert pipeline.finetune_of(control, p).epochs == epochs


def test_bn_momentum_set_for_one_model_leaves_the_others_cache_keys_alone():
    models = ["resnet18", "mobilenet_v3_small"]
    plain = config.load_profile("smoke", {"models": models})
    one = config.load_profile("smoke", {"models": models, "bn_momentum": {
        "mobilenet_v3_small": 0.1, "default": None}})
    everyone = config.load_profile("smoke", {"models": models, "bn_momentum": 0.1})

    def keys(p, model):  # a pruned + fine-tuned variant, and a section H run of its own
        vs = [Variant("A", model, "fashion-mnist", 0.5),
              Variant("H", model, "fashion-mnist", 0.5, seed=1, protocol="original")]
        return [s.key for v in vs for s in pipeline.stages(v, p)]
    assert keys(one, "resnet18") == keys(plain, "resnet18") != keys(everyone, "resnet18")
    assert keys(one, "mobilenet_v3_small") == keys(everyone, "mobilenet_v3_small")
    assert keys(one, "mobilenet_v3_small") != keys(plain, "mobilenet_v3_small")
    train = pipeline.stages(Variant("A", "mobilenet_v3_small", "fashion-mnist", 0.5), one)
    assert (train[0].step.train.bn_momentum, train[1].step.finetune.bn_momentum) == (0.1, 0.1)


@pytest.mark.parametrize("value, message", [
    ({"mobilenet_v3_small": 0.1}, "bn_momentum has no value for resnet18: add `resnet18: ...` "
                                  "or `default: ...`"),
    ({"resnet18": 0.0, "default": None}, "bn_momentum must be"),
    ({"resnet-18": 0.1, "default": None}, "resnet-18"),
])
def test_bad_per_model_bn_momentum_names_the_problem(value, message):
    with pytest.raises(config.ConfigError, match=message.replace("`", ".").replace("(", ".")):
        config.load_profile("smoke", {"bn_momentum": value})


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(config.ConfigError, match="unknown profile 'nope'; valid: smoke, quick, paper"):
        config.load_profile("nope")


def test_config_hash_is_stable_and_sensitive():
    a = config.TrainConfig(epochs=5, lr=0.2, schedule="onecycle")
    assert config.config_hash(a) == config.config_hash(config.TrainConfig(epochs=5, lr=0.2, schedule="onecycle"))
    assert config.config_hash(a) != config.config_hash(config.TrainConfig(epochs=5, lr=0.21, schedule="onecycle"))
    assert config.config_hash(a, "up1") != config.config_hash(a, "up2")
    # Pinned: a change here silently invalidates every user's cache, so it must be deliberate.
    assert config.config_hash(config.PruneConfig(0.5), "x") == "ace1b334eed684a2"


# ---------------------------------------------------------------- issue 14: never trust a value

def _float_paths(value, path=()):
    """Every place a float sits in a parameter value: ('lr',), ('dc_sparsity', 'resnet18') …"""
    if isinstance(value, float):
        yield path
    elif isinstance(value, dict):
        for k, x in value.items():
            yield from _float_paths(x, path + (k,))
    elif isinstance(value, list):
        for i, x in enumerate(value):
            yield from _float_paths(x, path + (i,))


def _with(value, path, new):
    """A copy of `value` with the item at `path` replaced by `new`."""
    if not path:
        return new
    copy = list(value) if isinstance(value, list) else dict(value)
    copy[path[0]] = _with(value[path[0]], path[1:], new)
    return copy


SMOKE = config.load_profile("smoke")
FLOAT_PATHS = [(k, *path) for k, v in SMOKE.items() for path in _float_paths(v)]


def test_every_float_parameter_is_found():
    # lr, ratio, ratios[i], dc_sparsity[model], channel_lr[model], h_protocols.*.lr, h_* lists …
    assert len({p[0] for p in FLOAT_PATHS}) >= 15
    assert ("dc_sparsity", "resnet18") in FLOAT_PATHS and ("h_sens_ratios", 0) in FLOAT_PATHS


@settings(max_examples=200, deadline=None)
@given(path=st.sampled_from(FLOAT_PATHS),
       bad=st.sampled_from([math.nan, math.inf, -math.inf]))
def test_no_float_parameter_takes_nan_or_inf(path, bad):
    # NaN fails every comparison, so `ratio=.nan` used to pass the range check and prune nothing.
    key = path[0]
    with pytest.raises(config.ConfigError, match="must be a finite number|must be in"):
        config.load_profile("smoke", {key: _with(SMOKE[key], path[1:], bad)})


def test_nan_is_refused_by_every_config_dataclass():
    for build in (lambda x: config.TrainConfig(epochs=1, lr=x), lambda x: config.PruneConfig(x),
                  lambda x: config.GradualConfig(sparsity=0.5, ramp=x),
                  lambda x: config.MeasureConfig(latency_min_time=x),
                  lambda x: config.SensitivityConfig(ratios=(0.5, x))):
        for x in (math.nan, math.inf, -math.inf):
            with pytest.raises(config.ConfigError):
                build(x)


@pytest.mark.parametrize("overrides, message", [
    ({"epochs": 10**5000}, "epochs must be in [0, 10000], got an integer of about 5001 digits"),
    ({"seeds": [0, 2**40]}, "each of seeds must be in [0, 2147483648]"),
    ({"seeds": [[1], [1]]}, "each of seeds must be an integer, got [1]"),  # not a TypeError
    ({"h_seeds": [{}]}, "each of h_seeds must be an integer"),
    ({"batch_size": 10**6}, "batch_size must be in [2, 65536]"),
    ({"h_sens_images": 10**9}, "h_sens_images must be in [1, 1000000]"),
    ({"h_sens_ratios": ["nan"]}, "each of h_sens_ratios must be a number, got 'nan'"),
    ({"h_protocols": {1: {"lr": 0.1}}}, "h_protocols: mapping keys must be strings, got 1"),
    ({"h_protocols": {b"x": {"lr": 0.1}}}, "mapping keys must be strings, got b'x' (bytes)"),
    ({"h_protocols": {"profile": {"lr": 0.1}}}, "protocol name 'profile' must be"),
    ({"h_protocols": {"a<b>": {"lr": 0.1}}}, "protocol name 'a<b>' must be"),
    ({"ratios": (0.5,)}, "ratios: a tuple value ((0.5,)) is not accepted"),
    ({"dataset": b"cifar10"}, "dataset: a bytes value"),
])
def test_integers_are_bounded_and_values_plain(overrides, message):
    with pytest.raises(config.ConfigError) as e:
        config.load_profile("smoke", overrides)
    assert message in str(e.value) and len(str(e.value)) < 300 and "\n" not in str(e.value)


@pytest.mark.parametrize("text, message", [
    ("&a [0.5, *a]", "anchors and aliases"),
    ("[&a 0.5]", "anchors and aliases"),
    # the "billion laughs": a few hundred characters that would expand to ~10^9 items
    ("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}]\n" for i in range(9)), "anchors and aliases"),
    ("1" * 5000, "Exceeds the limit (4300 digits)"),
    ("x" * (config.MAX_VALUE_CHARS + 1), f"at most {config.MAX_VALUE_CHARS}"),
    ("[" * 40 + "]" * 40, "nested more than 16 levels deep"),  # PyYAML recurses: no stack overflow
    ("{!!binary aGVsbG8=: 1}", "mapping keys must be strings, got b'hello' (bytes)"),
    ("{1: 0.5}", "mapping keys must be strings, got 1 (int)"),
    ("!!binary aGVsbG8=", "a bytes value"),
    ("2024-01-31", "reads as a date; quote it"),
    ("[2024-01-31]", "a date value"),
    ("2024-13-45", "month must be in 1..12"),
    ("!!set {a, b}", "a set value"),
    ("!!python/object/apply:os.system [true]", "cannot read"),
])
def test_yaml_values_are_plain_data(text, message):
    with pytest.raises(config.ConfigError) as e:
        config.parse_value(text, "--set x")
    line = str(e.value)
    assert line.startswith("--set x") and message in line and "\n" not in line and len(line) < 300


def test_yaml_values_still_parse():
    assert config.parse_value("[0, 0.5, 0.9]") == [0, 0.5, 0.9]
    assert config.parse_value("{original: {lr: 0.1}}") == {"original": {"lr": 0.1}}
    assert config.parse_value("cifar10") == "cifar10" and config.parse_value("null") is None
    assert config.parse_value("'2024-01-31'") == "2024-01-31"
    assert config.parse_value("[0.3, 0.5") == "[0.3, 0.5"  # not YAML: the parameter's check names it
    assert config.parse_value("imagefolder:/data/x") == "imagefolder:/data/x"
    # YAML 1.2's floats: PyYAML's 1.1 read these as text, and `--set lr=1e-3` was refused
    assert [config.parse_value(t) for t in ("1e-3", "5E-4", "-2e5", "1.5e3", ".5e1")] == \
        [0.001, 0.0005, -200000.0, 1500.0, 5.0]
    assert config.parse_value("e5") == "e5" and config.parse_value("1_0e1") == 100.0


def test_a_key_given_twice_is_an_error(tmp_path):
    """PyYAML keeps the last of two equal keys: `base: smoke` then `base: quick` ran quick."""
    with pytest.raises(config.ConfigError, match="'a' is given twice"):
        config.parse_value("{a: 1, a: 2}", "--set x")
    for odd in ("{[1]: 2}", "!!map [a]"):  # PyYAML's own checks, still one line each
        with pytest.raises(config.ConfigError, match="cannot read"):
            config.parse_value(odd, "--set x")
    assert config.parse_value("{<<: {a: 1}, b: 2}") == {"a": 1, "b": 2}
    twice = tmp_path / "twice.yaml"
    twice.write_text("base: smoke\nbase: quick\n")
    with pytest.raises(config.ConfigError, match="cannot read profile file .*'base' is given twice"):
        config.load_profile(str(twice))


_plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(sorted(set(SMOKE) - {"profile", "description"})), value=_plain)
def test_any_plain_value_is_accepted_or_refused_in_one_line(key, value):
    # Whatever a user passes, the answer is a valid profile or a ConfigError: never a TypeError,
    # an OverflowError or a value that slips through unchecked.
    try:
        p = config.load_profile("smoke", {key: value})
    except config.ConfigError as e:
        assert "\n" not in str(e) and len(str(e)) < 400
        return
    assert config.config_hash(config.train_config(p), config.finetune_config(p))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="[]{}:,&*!-.|>#'\" \n0123456789eabnlu", max_size=40) | st.text(max_size=40))
def test_parse_value_returns_plain_data_or_a_config_error(text):
    try:
        value = config.parse_value(text)
    except config.ConfigError as e:
        assert "\n" not in str(e)
        return
    config.check_plain("x", value)


def test_scratch_budgets_follow_liu_et_al():
    assert config.ScratchConfig("epochs").epochs(12, 3.6) == 12  # Scratch-E: the same epochs
    # Scratch-B: 4 dense epochs + 8 fine-tuning epochs on the pruned model = 4 × 3.6 + 8 pruned
    assert config.ScratchConfig("flops", 10.0, 8).epochs(12, 3.6) == 22  # 22.4, rounded
    assert config.ScratchConfig("flops", 1.5, 8).epochs(12, 3.6) == 18  # capped at 1.5 × 12
    assert config.ScratchConfig("flops", 2.0, 0).epochs(8, 0.9) == 8  # never fewer than Scratch-E
    # fine-tuning epochs of a quarter of the split count a quarter: 4 + 2 × 0.25 = 4.5 epochs,
    # Scratch-E rounds half up (5: never fewer than the pipeline's); Scratch-B 4 × 3.6 + 0.5 =
    # 14.9, rounded, or capped at 2 × 5
    assert config.ScratchConfig("epochs", 2.0, 2, 0.25).epochs(6, 3.6) == 5
    assert config.ScratchConfig("epochs", 2.0, 1, 0.25).epochs(5, 3.6) == 4  # 4.25
    assert config.ScratchConfig("flops", 10.0, 2, 0.25).epochs(6, 3.6) == 15
    assert config.ScratchConfig("flops", 2.0, 2, 0.25).epochs(6, 3.6) == 10
    assert config.ScratchConfig("flops", 2.0, 2, 0.25).most_epochs(6) == 10
    with pytest.raises(config.ConfigError, match="scratch budget"):
        config.ScratchConfig("time")


def test_recovery_keys_are_checked_before_any_work():
    for key, value, words in (("kd_alpha", 0, "kd_alpha"), ("qat_epochs", 0, "qat_epochs"),
                              ("scratch_b_max", 0.5, "scratch_b_max"), ("kd", "yes", "kd"),
                              ("channel_ratios", [0.5, 1.0], "channel_ratio"),
                              ("finetune_fraction", 0, "finetune_fraction"),
                              ("finetune_fraction", 1.5, "finetune_fraction"),
                              ("finetune_fraction", "half", "finetune_fraction")):
        with pytest.raises(config.ConfigError, match=words):
            config.load_profile("smoke", {key: value})
