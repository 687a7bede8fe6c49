"""Stride-2 'same' convolutions whose weight gradient is one matmul where TF's kernel is slow.

Profiled on the project's CPUs (AVX512_BF16, oneDNN) under `mixed_bfloat16`, the weight gradient
of the deep, small layers of DCGAN (`Conv2DBackpropFilter` producing a 4x4 or 8x8 map) ran at
30-50% of the bfloat16 matmul speed while the forward and input-gradient kernels of the same
layers ran at 60-100%; with D's two updates and G's, those gradients were about a quarter of an
iteration. Written as a matmul they run near matmul speed:

    x [B, H, W, ci] --pad, space_to_depth(2)--> [B, H/2+m-1, W/2+m-1, 4ci]
      --m*m shifted windows, concatenated--> cols [B*H/2*W/2, m*m*4ci]
    dW = cols^T @ dy [B*H/2*W/2, co], regrouped to [2m, 2m, ci, co], cropped to [k, k, ci, co]

with m = ceil(k/2): a stride-2 kernel of side k is an m x m stride-1 kernel over 2x2 blocks of
pixels. It reads the input once and writes 4x it (the windows), no strided gathers (TF's are
slow in bfloat16). The forward pass and the input gradient stay TF's. Used only where it was
measured faster: CPU-only hosts, bfloat16, outputs of side <= 8 (`use_matmul_weight_gradient`);
results equal TF's up to the order of the bfloat16 sums (tests/test_layers.py).
"""

from __future__ import annotations

import tensorflow as tf

MAX_SIDE = 8  # output sides up to this use the matmul gradient (measured; see above)


def _cpu_only() -> bool:
    return not tf.config.list_logical_devices("GPU") and not tf.config.list_logical_devices("TPU")


def use_matmul_weight_gradient(dtype, small_side: int, large_side: int) -> bool:
    """Whether a stride-2 convolution between sides `large_side` and `small_side` (= half) in
    `dtype` gets the matmul weight gradient."""
    return (
        tf.as_dtype(dtype) == tf.bfloat16
        and small_side is not None
        and large_side is not None
        and small_side <= MAX_SIDE
        and large_side == 2 * small_side
        and _cpu_only()
    )


def weight_gradient(x, dy, kernel_size: int):
    """The gradient w.r.t. the kernel [k, k, ci, co] of the stride-2 'same' convolution of x
    [B, H, W, ci] (H, W even) whose output gradient is dy [B, H/2, W/2, co]."""
    k = kernel_size
    m = (k + 1) // 2
    ci, co = x.shape[-1], dy.shape[-1]
    ho, wo = x.shape[1] // 2, x.shape[2] // 2
    top = (k - 2) // 2  # TF's 'same' padding: (k - 2) in total, the extra one at the end
    bottom = 2 * m - 2 - top  # and up to the even window 2m
    xs = tf.nn.space_to_depth(tf.pad(x, [[0, 0], [top, bottom], [top, bottom], [0, 0]]), 2)
    cols = tf.concat(
        [xs[:, a : a + ho, b : b + wo, :] for a in range(m) for b in range(m)], axis=-1
    )  # channels ordered (a, b, p, q, c): kernel tap (2a + p, 2b + q)
    grad = tf.matmul(
        tf.reshape(cols, [-1, m * m * 4 * ci]), tf.reshape(dy, [-1, co]), transpose_a=True
    )
    grad = tf.reshape(grad, [m, m, 2, 2, ci, co])
    grad = tf.reshape(tf.transpose(grad, [0, 2, 1, 3, 4, 5]), [2 * m, 2 * m, ci, co])
    return grad[:k, :k]


def conv(x, kernel):
    """`tf.nn.conv2d(x, kernel, 2, "SAME")`, with `weight_gradient` for the kernel's gradient."""

    @tf.custom_gradient
    def _conv(x, kernel):
        def grad(dy):
            dx = tf.nn.conv2d_transpose(dy, kernel, tf.shape(x), 2, "SAME")
            return dx, weight_gradient(x, dy, kernel.shape[0])

        return tf.nn.conv2d(x, kernel, 2, "SAME"), grad

    # A tensor, not the (Keras) variable: read in the layer's autocast scope, it is the kernel
    # in the compute dtype, and the custom gradient then involves no variables.
    return _conv(x, tf.convert_to_tensor(kernel))


def conv_transpose(x, kernel):
    """`tf.nn.conv2d_transpose(x, kernel, [B, 2H, 2W, co], 2, "SAME")` (kernel [k, k, co, ci]),
    with `weight_gradient` for the kernel's gradient: the transposed convolution is the input
    gradient of the stride-2 convolution from its output to its input."""

    @tf.custom_gradient
    def _conv_transpose(x, kernel):
        shape = tf.stack([tf.shape(x)[0], 2 * x.shape[1], 2 * x.shape[2], kernel.shape[2]])

        def grad(dy):
            dx = tf.nn.conv2d(dy, kernel, 2, "SAME")
            return dx, weight_gradient(dy, x, kernel.shape[0])

        return tf.nn.conv2d_transpose(x, kernel, shape, 2, "SAME"), grad

    return _conv_transpose(x, tf.convert_to_tensor(kernel))
