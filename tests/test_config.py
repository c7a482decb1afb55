import pytest

from approxlib import config as C


@pytest.mark.parametrize("name", C.profile_names())
def test_every_profile_validates(name):
    p = C.load_profile(name)
    assert p["profile"] == name and p["description"]
    # Every stage config a profile implies can be built.
    C.train_config(p), C.finetune_config(p), C.measure_config(p), C.data_config(p, p["dataset"])


def test_profiles_are_the_contract():
    assert {"smoke", "quick", "paper"} <= set(C.profile_names())
    assert C.load_profile("quick")["dataset"] == "fashion-mnist"
    paper = C.load_profile("paper")
    # The original protocol, exactly: constant lr 0.1, 30 + 5 epochs, fine-tune lr 0.01 without wd.
    assert (paper["dataset"], paper["dataset_d"]) == ("cifar10", "cifar100")
    assert (paper["lr"], paper["schedule"], paper["epochs"], paper["batch_size"]) == (0.1, "constant", 30, 128)
    assert (paper["momentum"], paper["weight_decay"]) == (0.9, 5e-4)
    assert (paper["finetune_epochs"], paper["finetune_lr"], paper["finetune_weight_decay"]) == (5, 0.01, 0.0)
    assert paper["ratios"] == [0.3, 0.5, 0.7] and paper["stem"] == "imagenet"


def test_overrides_apply_and_parse_yaml_values():
    p = C.load_profile("smoke", C.parse_overrides(["epochs=3", "ratios=[0, 0.5, 0.9]", "flip=false"]))
    assert p["epochs"] == 3 and p["ratios"] == [0, 0.5, 0.9] and p["flip"] is False


@pytest.mark.parametrize("overrides, message", [
    ({"nosuch": 1}, "unknown parameter 'nosuch'; valid: batch_size"),
    ({"ratio": 1.5}, "ratio must be in [0.0, 1.0), got 1.5"),
    ({"ratio": 1.0}, "ratio must be in [0.0, 1.0)"),
    ({"ratio": [0.5]}, "ratio must be a number, got [0.5]"),
    ({"ratios": [0.3, 1.2]}, "each of ratios must be in [0.0, 1.0)"),
    ({"ratios": 0.5}, "ratios must be a non-empty list"),
    ({"dataset": "mnist"}, "unknown dataset 'mnist'; valid: cifar10, cifar100, fashion-mnist"),
    ({"stem": "big"}, "unknown stem 'big'; valid: imagenet, cifar"),
    ({"schedule": "step"}, "unknown schedule 'step'; valid: constant, onecycle, cosine"),
    ({"epochs": 2.5}, "epochs must be an integer"),
    ({"flip": "yes"}, "flip must be true or false"),
    ({"channel_epochs": {"resnet18": 2}}, "channel_epochs must be one value or map each of"),
    ({"channel_lr": {"resnet18": 0.1, "mobilenetv2": -1}}, "lr must be"),
])
def test_bad_values_name_the_problem(overrides, message):
    with pytest.raises(C.ConfigError) as e:
        C.load_profile("smoke", overrides)
    assert message in str(e.value)


def test_per_model_settings_take_one_value_or_a_mapping():
    p = C.load_profile("smoke", {"channel_epochs": 3, "channel_lr": {"resnet18": 0.1,
                                                                      "mobilenetv2": 0.02}})
    assert C.channel_finetune_config(p, "resnet18").epochs == 3
    assert C.channel_finetune_config(p, "mobilenetv2").epochs == 3
    assert C.channel_finetune_config(p, "resnet18").lr == 0.1
    assert C.channel_finetune_config(p, "mobilenetv2").lr == 0.02


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(C.ConfigError, match="unknown profile 'nope'; valid: smoke, quick, paper"):
        C.load_profile("nope")


def test_config_hash_is_stable_and_sensitive():
    a = C.TrainConfig(epochs=5, lr=0.2, schedule="onecycle")
    assert C.config_hash(a) == C.config_hash(C.TrainConfig(epochs=5, lr=0.2, schedule="onecycle"))
    assert C.config_hash(a) != C.config_hash(C.TrainConfig(epochs=5, lr=0.21, schedule="onecycle"))
    assert C.config_hash(a, "up1") != C.config_hash(a, "up2")
    # Pinned: a change here silently invalidates every user's cache, so it must be deliberate.
    assert C.config_hash(C.PruneConfig(0.5), "x") == "ace1b334eed684a2"
