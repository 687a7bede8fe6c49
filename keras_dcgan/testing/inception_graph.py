"""A small stand-in for the reference Inception graph, for tests (nothing is downloaded).

`write_inception_graph(path)` writes a frozen GraphDef with the reference graph's tensor names and
shapes around a tiny random network: `DecodeJpeg/contents` -> `DecodeJpeg` -> `Cast` ->
`ExpandDims` (float [1, H, W, 3] in 0..255) -> `ResizeBilinear` (to `size`) -> `Sub` 128 ->
`Mul` 1/128 -> one convolution -> `pool_3` ([N, 1, 1, 2048], an average pool) ->
`pool_3/_reshape` ([1, 2048], a batch of one, as in the real graph) -> `softmax/logits/MatMul`
(weights [2048, 1008]) -> `softmax/logits` (+ bias) -> `softmax`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_dcgan.evaluation.tf_inception import NUM_CLASSES, POOL_DIM


def write_inception_graph(path: str, size: int = 32, seed: int = 0) -> str:
    """Writes the stand-in graph to `path` (see the module doc); returns `path`."""
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        contents = tf.compat.v1.placeholder(tf.string, [], name="DecodeJpeg/contents")
        decoded = tf.io.decode_jpeg(contents, channels=3, name="DecodeJpeg")
        cast = tf.cast(decoded, tf.float32, name="Cast")
        expanded = tf.expand_dims(cast, 0, name="ExpandDims")
        resized = tf.raw_ops.ResizeBilinear(
            images=expanded, size=[size, size], name="ResizeBilinear"
        )
        scaled = tf.multiply(tf.subtract(resized, 128.0, name="Sub"), 1 / 128.0, name="Mul")
        kernel = tf.constant(rng.normal(0, 0.1, (3, 3, 3, POOL_DIM)).astype(np.float32))
        features = tf.nn.relu(tf.nn.conv2d(scaled, kernel, 2, "SAME"))
        pool = tf.reduce_mean(features, axis=[1, 2], keepdims=True, name="pool_3")
        flat = tf.reshape(pool, [1, POOL_DIM], name="pool_3/_reshape")
        weights = tf.constant(rng.normal(0, 0.05, (POOL_DIM, NUM_CLASSES)).astype(np.float32),
                              name="softmax/weights")  # fmt: skip
        biases = tf.constant(rng.normal(0, 0.05, NUM_CLASSES).astype(np.float32),
                             name="softmax/biases")  # fmt: skip
        logits = tf.nn.bias_add(tf.matmul(flat, weights, name="softmax/logits/MatMul"), biases,
                                name="softmax/logits")  # fmt: skip
        tf.nn.softmax(logits, name="softmax")
    with open(path, "wb") as f:
        f.write(graph.as_graph_def().SerializeToString())
    return path
