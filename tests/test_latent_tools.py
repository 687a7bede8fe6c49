"""Latent walks (Fig. 4) and vector arithmetic (Fig. 7, 8): library and `dcgan interpolate` /
`dcgan arithmetic`."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from keras_dcgan import images, latent
from keras_dcgan.analysis import arithmetic as ar
from keras_dcgan.analysis import latent_walks as lw
from tests.helpers import dcgan_env, tiny_config, tiny_gan, write_run_folder

Z_DIM = 16  # the tiny preset's
# A larger init than the paper's 0.02, so that a random tiny G's images depend visibly on z.
INIT = {"init_stddev": 0.3}


@pytest.fixture(scope="module")
def gan():
    return tiny_gan(**INIT)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, gan):
    """A run folder holding `gan` (config + checkpoint), as `dcgan train` leaves one."""
    return write_run_folder(str(tmp_path_factory.mktemp("latent_run")), gan, tiny_config(**INIT))


def points(n, z_dim=Z_DIM, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, z_dim)).astype(np.float32)


# --------------------------------------------------------------------------- interpolation
def test_lerp_gives_the_serving_interpolate_signatures_latents(gan):
    import tensorflow as tf

    from keras_dcgan.serving.export import _Endpoints

    z0, z1 = points(2)
    t = np.linspace(0, 1, 10, dtype=np.float32)
    z_start, z_end = (tf.constant(np.repeat(z[None], 10, 0)) for z in (z0, z1))
    endpoints = _Endpoints(gan.generator, gan.z_dim, "uniform", 64)
    served = endpoints.interpolate(z_start, z_end, tf.constant(t))["z"].numpy()
    ours = lw.lerp(z0, z1, t)
    assert ours.shape == (10, Z_DIM) and ours.dtype == np.float32
    np.testing.assert_array_equal(ours[:-1], served[:-1])  # bit for bit
    np.testing.assert_allclose(ours[-1], served[-1], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(ours[-1], z1)  # ... and t = 1 is z1 exactly
    # Row-wise pairs, as the signature takes them: z0 [N, d], t [N].
    pairs = lw.lerp(np.stack([z0, z1]), np.stack([z1, z0]), np.array([0.25, 0.25], np.float32))
    np.testing.assert_allclose(pairs[0], 0.75 * z0 + 0.25 * z1, atol=1e-6)
    np.testing.assert_allclose(pairs[1], 0.75 * z1 + 0.25 * z0, atol=1e-6)
    assert lw.lerp(z0, z1, 0.5).shape == (Z_DIM,)


@pytest.mark.parametrize("method", lw.METHODS)
def test_interpolation_ends_are_the_points_exactly(method):
    z0, z1 = points(2, z_dim=100, seed=3)
    ends = lw.interpolate(z0, z1, np.array([0.0, 1.0], np.float32), method)
    np.testing.assert_array_equal(ends, np.stack([z0, z1]))


def test_slerp_against_hand_computed_values_and_keeps_the_norm():
    # 90 degrees apart: the midpoint is (cos 45, sin 45); a third of the way is (cos 30, sin 30).
    np.testing.assert_allclose(lw.slerp([1, 0], [0, 1], 0.5), [0.5**0.5, 0.5**0.5], atol=1e-7)
    np.testing.assert_allclose(
        lw.slerp([2, 0], [0, 2], 1 / 3), [2 * np.cos(np.pi / 6), 2 * np.sin(np.pi / 6)], atol=1e-6
    )
    z0, z1 = points(2, z_dim=100, seed=1)
    z1 = z1 * np.linalg.norm(z0) / np.linalg.norm(z1)  # equal norms
    t = np.linspace(0, 1, 11, dtype=np.float32)
    path = lw.slerp(z0, z1, t)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(z0), rtol=1e-5)
    # lerp's midpoints are shorter: the walks really differ
    assert np.linalg.norm(lw.lerp(z0, z1, 0.5)) < 0.9 * np.linalg.norm(z0)


def test_slerp_falls_back_to_lerp_where_the_angle_is_undefined():
    z = points(1, seed=2)[0]
    t = np.linspace(0, 1, 5, dtype=np.float32)
    for z1 in (2 * z, -z, np.zeros_like(z), z):  # parallel, antiparallel, zero, identical
        path = lw.slerp(z, z1, t)
        assert np.all(np.isfinite(path))
        np.testing.assert_allclose(path, lw.lerp(z, z1, t), atol=1e-6)
    path = lw.slerp(np.zeros(4), np.zeros(4), t)
    np.testing.assert_array_equal(path, np.zeros((5, 4)))


@pytest.mark.parametrize("method", lw.METHODS)
def test_walk_goes_through_the_points_in_order(method):
    z = points(4)
    path = lw.walk(z, steps=5, method=method)
    assert path.shape == (3 * 4 + 1, Z_DIM) and path.dtype == np.float32
    np.testing.assert_array_equal(path[::4], z)  # point i is row i * (steps - 1), exactly
    segment = lw.interpolate(z[1], z[2], np.linspace(0, 1, 5, dtype=np.float32), method)
    np.testing.assert_array_equal(path[4:9], segment)
    np.testing.assert_array_equal(lw.walk(z, steps=2), z)


def test_random_paths_are_reproducible_by_seed():
    paths = lw.random_paths(rows=3, points=4, seed=7)
    assert np.shape(paths) == (3, 4) and all(isinstance(s, int) for s in paths[0])
    assert paths == lw.random_paths(3, 4, seed=7)
    assert paths != lw.random_paths(3, 4, seed=8)


def test_walk_grid_renders_walks_between_seeded_latents(gan):
    grid = lw.walk_grid(gan, [[1, 2, 3], [4, 5, 6]], steps=4)
    assert grid.columns == 7
    assert grid.images.shape == (14, 32, 32, 3) and grid.latents.shape == (14, Z_DIM)
    seeded = latent.latents_from_seeds([1, 2, 3, 4, 5, 6], Z_DIM).numpy()
    np.testing.assert_array_equal(grid.latents[[0, 3, 6, 7, 10, 13]], seeded)
    np.testing.assert_array_equal(grid.latents[:7], lw.walk(seeded[:3], 4))
    # The path's points look as in `dcgan sample --seeds` (batch composition aside).
    np.testing.assert_allclose(
        grid.images[[0, 3, 6]], gan.sample(seeds=[1, 2, 3]).numpy(), atol=1e-5
    )
    assert np.abs(grid.images[0] - grid.images[1]).max() > 1e-3  # images move along the walk
    again = lw.walk_grid(gan, [[1, 2, 3], [4, 5, 6]], steps=4)
    np.testing.assert_array_equal(again.images, grid.images)
    flat = lw.walk_grid(gan.generator, [1, 2, 3], steps=4, method="spherical")
    assert flat.columns == 7 and flat.images.shape[0] == 7
    np.testing.assert_array_equal(flat.latents[[0, 3, 6]], seeded[:3])


# ----------------------------------------------------------------------------- arithmetic
def test_concept_vectors_and_combine_against_numpy():
    a, b, c = (points(3, seed=s) for s in (10, 11, 12))
    means = [ar.concept_vector(z) for z in (a, b, c)]
    for m, z in zip(means, (a, b, c), strict=True):
        assert m.shape == (Z_DIM,) and m.dtype == np.float32
        np.testing.assert_allclose(m, (z[0] + z[1] + z[2]) / 3, rtol=1e-6, atol=1e-7)
    result = ar.combine(*means)
    np.testing.assert_array_equal(result, means[0] - means[1] + means[2])
    np.testing.assert_allclose(ar.linear_combination(means, (1, -1, 1)), result, atol=1e-6)
    np.testing.assert_allclose(
        ar.linear_combination(means[:2], (0.5, 2.0)), 0.5 * means[0] + 2 * means[1], atol=1e-6
    )


def test_neighbours_are_bounded_by_the_scale_and_reproducible_by_seed():
    z = points(1, z_dim=100)[0]
    near = ar.neighbours(z, num=8, scale=0.25, seed=5)
    assert near.shape == (8, 100) and near.dtype == np.float32
    noise = near - z
    assert np.abs(noise).max() <= 0.25 + 1e-6
    assert np.abs(noise).max() > 0.24 and noise.min() < -0.2 and noise.max() > 0.2  # spread
    assert len({row.tobytes() for row in near}) == 8  # 8 different samples
    np.testing.assert_array_equal(ar.neighbours(z, 8, 0.25, seed=5), near)
    assert not np.allclose(ar.neighbours(z, 8, 0.25, seed=6), near)
    np.testing.assert_allclose(ar.neighbours(z, 8, 0.5, seed=5) - z, 2 * noise, atol=1e-5)
    np.testing.assert_array_equal(ar.neighbours(z, 3, 0.0), np.stack([z] * 3))
    assert ar.neighbours(z, 0).shape == (0, 100)


def test_turn_direction_and_apply_direction():
    left, right = points(4, seed=20), points(4, seed=21)
    direction = ar.turn_direction(left, right)
    np.testing.assert_allclose(direction, right.mean(0) - left.mean(0), atol=1e-6)
    start = points(2, seed=22)
    amounts = [-1.0, 0.0, 0.5, 1.0]
    turned = ar.apply_direction(start, direction, amounts)
    assert turned.shape == (2, 4, Z_DIM)
    np.testing.assert_array_equal(turned[:, 1], start)  # amount 0 is the sample itself
    np.testing.assert_allclose(turned[1, 2], start[1] + 0.5 * direction, atol=1e-6)
    np.testing.assert_allclose(turned[0, 0], start[0] - direction, atol=1e-6)
    assert ar.apply_direction(start[0], direction, amounts).shape == (4, Z_DIM)


def test_exemplars_from_seeds_arrays_and_npy_files(tmp_path):
    z = points(3)
    path = ar.save_latents(z, tmp_path / "sub" / "concept")  # no ".npy" appended, atomically
    assert path.endswith("concept") and os.listdir(tmp_path / "sub") == ["concept"]
    np.testing.assert_array_equal(ar.exemplar_latents(path, Z_DIM), z)
    np.testing.assert_array_equal(ar.exemplar_latents(tmp_path / "sub" / "concept", Z_DIM), z)
    np.testing.assert_array_equal(ar.exemplar_latents(z, Z_DIM), z)
    np.save(tmp_path / "one.npy", z[0].astype(np.float64))  # one vector, any float dtype
    np.testing.assert_array_equal(ar.exemplar_latents(str(tmp_path / "one.npy"), Z_DIM), z[:1])
    seeded = ar.exemplar_latents([3, 1], Z_DIM, "normal")
    np.testing.assert_array_equal(seeded, latent.latents_from_seeds([3, 1], Z_DIM, "normal"))


def test_arithmetic_grid_has_the_fig7_layout(gan, tmp_path):
    c = points(3, seed=30)
    np.save(tmp_path / "c.npy", c)
    grid = ar.arithmetic_grid(
        gan, a=[1, 2, 3], b=[4, 5], c=str(tmp_path / "c.npy"), seed=9, pixel_baseline=False
    )
    # 3 rows of: 3 exemplar cells, the mean, a blank column, a 3x3 block
    assert grid.columns == 3 + 1 + 1 + 3 and grid.images.shape == (24, 32, 32, 3)
    cells = grid.images.reshape(3, 8, 32, 32, 3)
    a, b = (latent.latents_from_seeds(s, Z_DIM).numpy() for s in ([1, 2, 3], [4, 5]))
    np.testing.assert_allclose(grid.means, [a.mean(0), b.mean(0), c.mean(0)], atol=1e-6)
    np.testing.assert_array_equal(grid.result, ar.combine(*grid.means))
    np.testing.assert_array_equal(grid.neighbours, ar.neighbours(grid.result, 8, 0.25, seed=9))
    expected = lw.render(gan, np.concatenate([a, grid.means[:1], grid.result[None]]))
    np.testing.assert_allclose(cells[0, :4], expected[:4], atol=1e-5)  # a's exemplars, mean
    np.testing.assert_allclose(cells[1, 6], expected[4], atol=1e-5)  # result: block centre
    assert np.all(cells[1, 2] == -1) and np.all(cells[:, 4] == -1)  # b has 2 exemplars; gap
    assert np.abs(cells[0, 5] - cells[1, 6]).max() > 1e-3  # neighbours differ from the centre
    bigger = ar.arithmetic_grid(
        gan, [1], [2], [3], num_neighbours=24, noise_scale=0.1, pixel_baseline=False
    )
    assert bigger.columns == 1 + 2 + 5 and len(bigger.images) == 5 * 8
    assert bigger.neighbours.shape == (24, Z_DIM)


def test_turn_grid_rows_are_start_samples_turned(gan):
    grid = ar.turn_grid(gan, left=[1, 2, 3, 4], right=[5, 6, 7, 8], start=[9, 10])
    assert grid.columns == 9 and grid.images.shape == (18, 32, 32, 3)
    np.testing.assert_array_equal(grid.latents[[4, 13]], latent.latents_from_seeds([9, 10], 16))
    np.testing.assert_allclose(grid.images[[4, 13]], gan.sample(seeds=[9, 10]), atol=1e-5)
    left, right = (latent.latents_from_seeds(s, 16).numpy() for s in ([1, 2, 3, 4], [5, 6, 7, 8]))
    np.testing.assert_allclose(
        grid.latents[8] - grid.latents[4], right.mean(0) - left.mean(0), atol=1e-5
    )


# ---------------------------------------------------------------------------- bad inputs
def _bad_inputs(tmp, gan):
    wrong = os.path.join(tmp, "wrong.npy")
    np.save(wrong, points(3, z_dim=Z_DIM + 1))
    np.savez(os.path.join(tmp, "z.npz"), z=points(3))
    with open(os.path.join(tmp, "text.npy"), "w") as f:
        f.write("not numpy")
    z2 = points(2)
    return [
        (lambda: lw.walk(z2[:1], 5), "at least 2 rows"),
        (lambda: lw.walk(z2, 1), "steps must be at least 2"),
        (lambda: lw.walk(z2, 2.5), "steps must be an integer"),
        (lambda: lw.walk(z2, 5, "cubic"), "Unknown interpolation method 'cubic'"),
        (lambda: lw.walk(np.full((2, 4), np.nan), 5), "non-finite"),
        (lambda: lw.lerp(z2[0], z2[1, :8], 0.5), "same shape"),
        (lambda: lw.slerp(z2[0], z2[1], np.nan), "finite"),
        (lambda: lw.walk_grid(gan, [[1]], 5), "at least 2 points"),
        (lambda: lw.walk_grid(gan, [], 5), "paths is empty"),
        (lambda: lw.walk_grid(gan, [[1, 2], [3, 4, 5]], 5), "same number of points"),
        (lambda: lw.walk_grid(gan, [[1, 2.5]], 5), "must be integers"),
        (lambda: lw.walk_grid(gan, [["1", "2"]], 5), "must be integers"),
        (lambda: lw.walk_grid(gan, [1, 2.5], 5), "path 0 must be integers; got 2.5"),
        (lambda: lw.walk_grid(gan, [1, 2], 5, prior="cauchy"), "Unknown latent prior"),
        (lambda: lw.random_paths(0), "rows must be an integer >= 1"),
        (lambda: lw.render(gan, points(2, z_dim=8)), "z_dim 8, but the model's z_dim is 16"),
        (lambda: ar.exemplar_latents([], Z_DIM), "exemplars is empty"),
        (lambda: ar.exemplar_latents([1, True], Z_DIM), "must be integers"),
        (lambda: ar.exemplar_latents([1, 2.0], Z_DIM), "must be integers"),
        (lambda: ar.exemplar_latents([2**63], Z_DIM), "int64"),
        (lambda: ar.exemplar_latents(wrong, Z_DIM, what="c"), "has z_dim 17, but the model's"),
        (lambda: ar.exemplar_latents(points(2, 8), Z_DIM), "z_dim 8"),
        (lambda: ar.load_latents(os.path.join(tmp, "z.npz")), "not a .npy file"),
        (lambda: ar.load_latents(os.path.join(tmp, "text.npy")), "not a .npy file"),
        (lambda: ar.concept_vector(np.zeros((0, Z_DIM))), "at least 1 rows"),
        (lambda: ar.combine(z2[0], z2[1, :8], z2[0]), "z_dim 8"),
        (lambda: ar.combine(z2, z2[0], z2[0]), "one latent vector"),
        (lambda: ar.linear_combination([z2[0]], [1, 2]), "as many weights as vectors"),
        (lambda: ar.neighbours(z2[0], 8, scale=-0.1), "scale must be >= 0"),
        (lambda: ar.neighbours(z2[0], -1), "integer >= 0"),
        (lambda: ar.neighbours(z2[0], 8, seed=1.5), "must be integers"),
        (lambda: ar.turn_direction(points(4), points(4, z_dim=8)), "z_dim 8"),
        (lambda: ar.apply_direction(z2, z2[0], []), "non-empty list of numbers"),
        (lambda: ar.apply_direction(z2, z2[0], "0:1:5"), "not a string"),
        (lambda: ar.arithmetic_grid(gan, [1], [2], [3], num_neighbours=5), "0, 8, 24"),
        (lambda: ar.arithmetic_grid(gan, [1], [2], [3], noise_scale=-1), "scale must be >= 0"),
        (lambda: ar.arithmetic_grid(gan, [1], [], [3]), "b is empty"),
    ]


def test_bad_inputs_are_refused_with_a_clear_message(gan, tmp_path):
    for call, message in _bad_inputs(str(tmp_path), gan):
        with pytest.raises(ValueError, match=re.escape(message)):
            call()
    with pytest.raises(FileNotFoundError, match="no such file"):
        ar.exemplar_latents(str(tmp_path / "missing.npy"), Z_DIM)


# ------------------------------------------------------------------------------------ CLI
def start_dcgan(command, *args) -> subprocess.Popen:
    """Starts `dcgan <command> ...` in a fresh process: through the `dcgan` dispatcher once the
    command is registered there, before that by the very call the dispatcher makes."""
    from keras_dcgan.cli.main import COMMANDS

    if command in COMMANDS:
        argv = ["-m", "keras_dcgan.cli.main", command]
    else:
        argv = [
            "-c",
            f"import sys; from absl import app; import keras_dcgan.cli.{command} as m; "
            f"app.run(m.main, argv=['dcgan {command}', '--verbosity=-1', *sys.argv[1:]])",
        ]
    return subprocess.Popen(
        [sys.executable, *argv, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dcgan_env(),
    )


def finish(process: subprocess.Popen) -> subprocess.CompletedProcess:
    try:
        stdout, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def dcgan(command, *args) -> subprocess.CompletedProcess:
    return finish(start_dcgan(command, *args))


@pytest.fixture(scope="module")
def cli_runs(run_dir, tmp_path_factory):
    """The three kinds of successful runs, started together: each process spends most of its
    seconds importing TensorFlow."""
    out = tmp_path_factory.mktemp("cli_out")
    np.save(out / "c.npy", points(2, seed=40))
    processes = {
        "interpolate": start_dcgan(
            "interpolate", f"--model_dir={run_dir}", "--seeds=1,2,3", "--seeds=4,5,6",
            "--steps=4", "--method=spherical", f"--output={out / 'walk.png'}",
            f"--save_latents={out / 'walk.npy'}",
        ),
        "arithmetic": start_dcgan(
            "arithmetic", f"--model_dir={run_dir}", "--a=1,2,3", "--b=4,5,6",
            f"--c={out / 'c.npy'}", "--seed=3", f"--output={out / 'arith.png'}",
            f"--save_latents={out / 'arith.npy'}",
        ),
        "turn": start_dcgan(
            "arithmetic", f"--model_dir={run_dir}", "--left=1,2,3,4", "--right=5,6,7,8",
            "--start=9,10,11", "--amounts=0:1:5", f"--output={out / 'turn.png'}",
        ),
    }  # fmt: skip
    return out, {name: finish(p) for name, p in processes.items()}


def test_cli_interpolate_writes_the_grid_and_its_latents(cli_runs, gan):
    out, runs = cli_runs
    run = runs["interpolate"]
    assert run.returncode == 0, run.stderr[-2000:]
    assert "2 spherical walks of 7 images" in run.stdout
    assert Image.open(out / "walk.png").size == (7 * 34 + 2, 2 * 34 + 2)
    expected = lw.walk_grid(gan, [[1, 2, 3], [4, 5, 6]], 4, "spherical")
    np.testing.assert_array_equal(np.load(out / "walk.npy"), expected.latents)
    ours = images.make_grid(expected.images, expected.columns).astype(int)
    assert np.abs(np.asarray(Image.open(out / "walk.png")).astype(int) - ours).max() <= 1


def test_cli_arithmetic_and_turn(cli_runs, gan):
    out, runs = cli_runs
    for run in runs.values():
        assert run.returncode == 0, run.stderr[-2000:]
    assert Image.open(out / "arith.png").size == (11 * 34 + 2, 3 * 34 + 2)  # pixel baseline
    grid = ar.arithmetic_grid(gan, [1, 2, 3], [4, 5, 6], str(out / "c.npy"), seed=3)
    saved = np.concatenate([grid.result[None], grid.neighbours])
    np.testing.assert_array_equal(np.load(out / "arith.npy"), saved)
    assert "3 samples turned by 5 amounts" in runs["turn"].stdout
    assert Image.open(out / "turn.png").size == (5 * 34 + 2, 3 * 34 + 2)
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]  # no temporary files left


@pytest.mark.parametrize(
    "command,args,message",
    [
        ("interpolate", ["--method=cubic"], "value should be one of <linear|spherical>"),
        ("interpolate", ["--steps=1"], "--steps must be at least 2"),
        ("interpolate", ["--seeds=7"], "a walk needs at least 2"),
        ("interpolate", ["--seeds=1,x"], "--seeds must be integers"),
        ("interpolate", ["--seeds="], "--seeds is empty"),
        ("interpolate", ["--seeds=1,2", "--rows=3"], "give --seeds or --rows, not both"),
        ("interpolate", ["--points=1"], "--points must be at least 2"),
        ("interpolate", ["--frobnicate=1"], "Unknown command line flag 'frobnicate'"),
        ("arithmetic", [], "nothing to do"),
        ("arithmetic", ["--a=1", "--b=2"], "missing ['--c']"),
        ("arithmetic", ["--a=1", "--b=2", "--c=3", "--left=4"], "not both"),
        ("arithmetic", ["--a=1", "--b=,", "--c=3"], "--b must be integer seeds"),
        ("arithmetic", ["--a=Smiling", "--b=1", "--c=3"], "need --classifier=attr.keras"),
        ("arithmetic", ["--a=1", "--b=2", "--c={tmp}/no.npy"], "--c: no such file"),
        ("arithmetic", ["--a=1", "--b=2", "--c=3", "--noise_scale=-0.5"], "must be >= 0"),
        ("arithmetic", ["--a=1", "--b=2", "--c=3", "--num_neighbours=4"], "0, 8, 24"),
        ("arithmetic", ["--left=1", "--right=2"], "missing ['--start']"),
        ("arithmetic", ["--left=1", "--right=2", "--start=3", "--amounts=0:1:0"], "count >= 1"),
    ],
)
def test_cli_rejects_bad_flags(tmp_path, command, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = dcgan(command, *args, f"--output={tmp_path / 'out.png'}")
    assert out.returncode == 1, (out.stdout, out.stderr[-2000:])
    assert message in out.stderr, out.stderr[-2000:]
    assert not os.path.exists(tmp_path / "out.png")


@pytest.mark.slow  # a model-loading process; the library test covers the check
def test_cli_rejects_latents_of_another_z_dim(run_dir, tmp_path):
    np.save(tmp_path / "wide.npy", points(3, z_dim=Z_DIM + 4))
    out = dcgan(
        "arithmetic", f"--model_dir={run_dir}", "--a=1", "--b=2", f"--c={tmp_path / 'wide.npy'}",
        f"--output={tmp_path / 'out.png'}",
    )  # fmt: skip
    assert out.returncode == 1
    assert "dcgan arithmetic: error: c (" in out.stderr
    assert "has z_dim 20, but the model's z_dim is 16" in out.stderr
    assert not os.path.exists(tmp_path / "out.png")
