import numpy as np
import pytest
from PIL import Image

from keras_dcgan import images


def test_uint8_round_trip_and_clipping():
    u = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    np.testing.assert_array_equal(images.to_uint8(images.to_model_range(u)), u)
    assert images.to_uint8(np.array([-3.0, 3.0])).tolist() == [0, 255]


def test_grid_layout_and_png(tmp_path):
    batch = np.stack([np.full((4, 4, 3), v, np.uint8) for v in (10, 20, 30, 40, 50)])
    grid = images.make_grid(batch, columns=3, padding=1)
    assert grid.shape == (2 * 5 + 1, 3 * 5 + 1, 3)
    assert grid[1, 1, 0] == 10 and grid[1, 6, 0] == 20 and grid[6, 1, 0] == 40
    path = images.save_grid(batch[..., :1], tmp_path / "g.png")
    assert Image.open(path).mode == "L"
    with pytest.raises(ValueError, match="non-empty NHWC"):
        images.make_grid(np.zeros((0, 4, 4, 1)))


def test_conversions_give_arrays_for_arrays_and_eager_tensors_tensors_in_graphs():
    import tensorflow as tf

    x = np.array([[-1.0, 0.0, 1.0]], np.float32)
    for value in (x, tf.constant(x)):
        out = images.to_uint8(value)
        assert isinstance(out, np.ndarray) and out.tolist() == [[0, 128, 255]]
        back = images.to_model_range(out if value is x else tf.constant(out))
        assert isinstance(back, np.ndarray)

    @tf.function
    def in_a_graph(t):
        u = images.to_uint8(t)
        assert tf.is_tensor(u)
        return u, images.to_model_range(u)

    u, back = in_a_graph(tf.constant(x))
    assert u.numpy().tolist() == [[0, 128, 255]] and u.dtype == tf.uint8
    np.testing.assert_allclose(back.numpy(), x, atol=1 / 127.5)
