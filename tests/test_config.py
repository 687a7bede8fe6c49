import dataclasses

import pytest

from keras_dcgan.config import PRESETS, Config, ModelConfig, TrainConfig, get_config


def test_paper_presets_have_the_papers_widths():
    paper64 = get_config("paper64")
    assert paper64.model.g_widths == (1024, 512, 256, 128)
    assert paper64.model.d_widths == (128, 256, 512, 1024)
    assert paper64.model.kernel_size == 5
    assert paper64.model.z_dim == 100 and paper64.model.z_prior == "uniform"
    assert paper64.model.init_stddev == 0.02
    t = paper64.train
    assert (t.batch_size, t.learning_rate, t.beta_1) == (128, 2e-4, 0.5)

    half64 = get_config("half64")
    assert half64.model.g_widths == (512, 256, 128, 64)
    assert half64.model.kernel_size == 4
    # D widths of the ImageNet 32x32 model: 16 * (256 + 512 + 1024) = 28,672 pooled features.
    assert 16 * sum(get_config("paper32").model.d_widths) == 28672
    digits = get_config("digits32")
    assert (digits.model.image_size, digits.model.channels, digits.dataset) == (32, 1, "digits")


@pytest.mark.parametrize("size,n", [(16, 2), (32, 3), (64, 4), (128, 5), (256, 6)])
def test_resolution_is_a_parameter(size, n):
    mc = ModelConfig(image_size=size, base_width=8)
    assert len(mc.g_widths) == len(mc.d_widths) == n
    assert mc.g_widths == tuple(reversed(mc.d_widths))


def test_max_width_caps_widths():
    mc = ModelConfig(image_size=256, base_width=64, max_width=512)
    assert max(mc.g_widths) == 512 and mc.g_widths[-1] == 64


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"image_size": 48}, "power of two"),
        ({"image_size": 8}, "between 16 and 1024"),
        ({"channels": 2}, "channels must be 1 or 3"),
        ({"z_prior": "laplace"}, "z_prior"),
        ({"kernel_size": 0}, "kernel_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"beta_1": 1.0}, "beta_1"),
        ({"steps": -3}, "steps"),
        ({"holdout_fraction": 1.0}, "holdout_fraction must be in"),
        ({"small_images": "crop"}, "small_images must be one of"),
        ({"shuffle_buffer": 0}, "shuffle_buffer"),
    ],
)
def test_bad_values_raise_one_line_naming_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        get_config("paper64", **kwargs)
    assert "\n" not in str(info.value)


def test_unknown_preset_and_field():
    with pytest.raises(ValueError, match="Unknown preset 'paper65'.*paper64"):
        get_config("paper65")
    with pytest.raises(ValueError, match="Unknown config field 'widht'"):
        get_config("tiny", widht=3)


def test_overrides_route_to_their_section_and_none_is_ignored():
    c = get_config("paper64", image_size=128, batch_size=64, dataset="x", seed=None, cache="memory")
    assert c.model.image_size == 128 and c.train.batch_size == 64 and c.dataset == "x"
    assert c.train.seed == get_config("paper64").train.seed
    assert c.data.cache == "memory" and c.data.small_images == "upscale"


def test_run_folders_written_before_the_data_section_still_load():
    d = get_config("tiny").to_dict()
    del d["data"]
    assert Config.from_dict(d) == get_config("tiny")


@pytest.mark.parametrize("preset", list(PRESETS))
def test_json_round_trip(preset):
    c = get_config(preset)
    assert Config.from_json(c.to_json()) == c


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().batch_size = 3
