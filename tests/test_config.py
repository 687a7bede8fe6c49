import dataclasses
import subprocess
import sys

import pytest

from keras_dcgan.config import PRESETS, Config, DataConfig, ModelConfig, TrainConfig, get_config
from tests.helpers import REPO, dcgan_env


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


# -- A TF-free base ------------------------------------------------------------------------------

_EVERY_OPTION = dict(
    image_size=128, channels=1, z_dim=64, z_prior="normal", base_width=16, max_width=256,
    kernel_size=4, batch_norm=False, synchronized_batch_norm=True, fused_batch_norm=False,
    g_activation="elu", d_leaky_slope=0.1, init_stddev=0.01, bn_momentum=0.8, bn_epsilon=1e-3,
    augment="translation,cutout", r1_gamma=0.5, projection_bn="feature", d_batch="concatenated",
    batch_size=32, learning_rate=1e-4, beta_1=0.9, beta_2=0.99, epochs=2, steps=10, seed=3,
    steps_per_execution=2, num_preview=4, checkpoints_to_keep=1, checkpoint_every_steps=5,
    deterministic=True, max_divergence_retries=1, eval_metrics=("fid5k", "kid500", "is1k",
    "digits"), eval_every_epochs=2, fid_network="keras_inception_v3", inception_weights="random",
    precision="mixed_bfloat16",
    loss_scale_growth_steps=10, jit_compile=False,
    data_dir="/tmp/tfds", split="test", holdout_fraction=0.1, keep_list="/tmp/keep.txt",
    cache="memory", small_images="skip", shuffle_buffer=100, max_image_pixels=1000,
)  # fmt: skip


def test_every_option_is_a_field_of_some_section():
    fields = set()
    for section in (ModelConfig, TrainConfig, DataConfig):
        fields |= {f.name for f in dataclasses.fields(section)}
    assert set(_EVERY_OPTION) == fields
    config = get_config("tiny", **_EVERY_OPTION)
    assert Config.from_json(config.to_json()) == config


def test_config_loads_and_validates_without_tensorflow_or_keras():
    # The package's promise (keras_dcgan/__init__.py): config, its options and its validation
    # import no TensorFlow and no Keras, whatever options a config names.
    code = (
        "import sys\n"
        "from keras_dcgan import config\n"
        f"options = {_EVERY_OPTION!r}\n"
        "for name in config.PRESETS: config.get_config(name)\n"
        "config.get_config('tiny', **options)\n"
        "for bad in ({'augment': 'color'}, {'eval_metrics': ['fid2x']}, {'z_prior': 'cauchy'},"
        " {'small_images': 'crop'}, {'precision': 'fp8'}, {'d_batch': 'x'},"
        " {'projection_bn': 'x'}):\n"
        "    try:\n"
        "        config.get_config('tiny', **bad)\n"
        "    except ValueError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit(f'{bad} was accepted')\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env=dcgan_env(), timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_run_folders_written_before_augment_and_r1_moved_to_the_model_still_load():
    old = get_config("digits32").to_dict()
    old["train"].update(augment=old["model"].pop("augment"), r1_gamma=old["model"].pop("r1_gamma"))
    config = Config.from_dict(old)
    assert config == get_config("digits32")
    assert (config.model.augment, config.model.r1_gamma) == ("translation,cutout", 0.1)


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("batch_size", True, "batch_size must be a positive integer; got True"),
        ("batch_size", 2.0, "batch_size must be a positive integer; got 2.0"),
        ("seed", -1, "seed must be a non-negative integer; got -1"),
        ("steps", 0, "steps must be a positive integer or None; got 0"),
        ("max_width", 0, "max_width must be a positive integer or None; got 0"),
        ("max_image_pixels", False, "max_image_pixels must be a positive integer or None"),
        ("learning_rate", float("inf"), "learning_rate must be a positive number; got inf"),
        ("beta_1", "0.5", r"beta_1 must be in \[0, 1\); got '0.5'"),
        ("batch_norm", "yes", "batch_norm must be true or false; got 'yes'"),
        ("eval_metrics", "fid5k", "eval_metrics must be a list of names"),
        ("z_prior", "cauchy", "Unknown latent prior 'cauchy'; z_prior must be one of"),
        ("projection_bn", "layer", "projection_bn must be one of channel, feature; got 'layer'"),
        ("d_batch", "mixed", "d_batch must be one of separate, concatenated; got 'mixed'"),
        ("d_leaky_slope", -0.1, r"d_leaky_slope must be in \[0, 1\); got -0.1"),
    ],
)
def test_one_rule_one_message(field, value, message):
    with pytest.raises(ValueError, match=message):
        get_config("tiny", **{field: value})


def test_integers_are_stored_as_python_ints():
    import numpy as np

    config = get_config("tiny", batch_size=np.int64(16), z_dim=np.int32(8))
    assert type(config.train.batch_size) is int and type(config.model.z_dim) is int
    assert Config.from_json(config.to_json()) == config


def test_run_folders_written_before_fid_network_keep_their_network():
    old = get_config("tiny", inception_weights="random", fid_network="keras_inception_v3")
    old = old.to_dict()
    del old["train"]["fid_network"]
    assert Config.from_dict(old).train.fid_network == "keras_inception_v3"
    assert get_config("tiny").train.fid_network == "tf_inception_2015"  # new runs: the reference


def test_blog64_is_the_chainer_blogs_recipe():
    blog = get_config("blog64")
    assert blog.model.g_widths == (512, 256, 128, 64) and blog.model.kernel_size == 4
    assert (blog.model.image_size, blog.model.init_stddev) == (64, 0.01)
    assert blog.model.projection_bn == "feature" and blog.model.d_batch == "separate"
    assert (blog.train.learning_rate, blog.train.beta_1) == (1e-4, 0.5)
    assert "projection_bn" in blog.model.architecture()  # it shapes G's variables


def test_run_folders_written_before_projection_bn_and_d_batch_still_load():
    old = get_config("half64").to_dict()
    del old["model"]["projection_bn"], old["model"]["d_batch"]
    config = Config.from_dict(old)
    assert config == get_config("half64")
    assert (config.model.projection_bn, config.model.d_batch) == ("channel", "separate")
    assert get_config("tiny", d_leaky_slope=0).model.d_leaky_slope == 0.0  # ReLU in D
