"""GAN losses as pure functions of logits, per example (shape [N]).

Cross-entropies are computed from logits with softplus, which is exact and stable for any logit:
-log(sigmoid(l)) = softplus(-l) and -log(1 - sigmoid(l)) = softplus(l). Reduction is left to the
caller, which must divide by the GLOBAL batch under tf.distribute (see `DCGAN.train_step`).
"""

from __future__ import annotations

from keras import ops


def _per_example(logits):
    return ops.reshape(ops.cast(logits, "float32"), (-1,))


def discriminator_loss(real_logits, fake_logits):
    """-log D(x) - log(1 - D(G(z))) for each pair of a real and a fake example; shape [N]."""
    return ops.softplus(-_per_example(real_logits)) + ops.softplus(_per_example(fake_logits))


def generator_loss(fake_logits):
    """Non-saturating generator loss -log D(G(z)) per example; shape [N]."""
    return ops.softplus(-_per_example(fake_logits))


def r1_penalty(real_input_grads, gamma):
    """R1 (Mescheder et al. 2018): gamma / 2 * ||d D(x) / d x||^2 per real example; shape [N].

    `real_input_grads` is the gradient of D's logits with respect to the real images D saw
    ([N, H, W, C]). Added to D's loss, it penalises D's slope on the data, which keeps D from
    sharpening without bound on a small dataset. Not in the DCGAN paper.
    """
    grads = ops.cast(real_input_grads, "float32")
    return 0.5 * gamma * ops.sum(ops.square(grads), axis=tuple(range(1, len(grads.shape))))
