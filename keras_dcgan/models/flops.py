"""Floating-point operations of a DCGAN training iteration, counted from the architecture.

Only the convolutions and the dense layers are counted (a multiply-add is 2 FLOPs); BatchNorm,
activations and the optimizer add well under 1% for the presets. A layer whose forward pass costs
f costs f again for its weight gradient and f for its input gradient, and keras-dcgan's iteration
(`DCGAN.train_step`) runs:

    G forward                                     F_G
    D update: D forward on real and on fake       2 F_D
              weight gradients                    2 F_D
              input gradients (not D's first)     2 (F_D - d1)
    G update: D forward on the same fakes         F_D
              D input gradients (no weights)      F_D
              G weight and input gradients        F_G + (F_G - g1)  (not z's)

that is 3 F_G + 8 F_D - 2 d1 - g1, with d1 and g1 the first layers' forward FLOPs. `half64`:
2.27 GFLOP per image; `paper64`: 14.0 GFLOP.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class IterationFlops:
    """FLOPs per image of one training iteration (one D and one G update) and its parts."""

    generator_forward: float
    discriminator_forward: float
    total: float


def _conv(side_out: int, c_in: int, c_out: int, kernel: int) -> float:
    """A stride-2 'same' convolution producing `side_out`^2 positions (or the transposed one
    reading them): one multiply-add per kernel tap, input and output channel, position."""
    return 2.0 * side_out * side_out * c_in * c_out * kernel * kernel


def iteration_flops(model_config) -> IterationFlops:
    """FLOPs per image of a training iteration of the model a `ModelConfig` describes."""
    mc = getattr(model_config, "model", model_config)  # a Config works too
    k, size = mc.kernel_size, mc.image_size
    g_widths, d_widths = mc.g_widths, mc.d_widths
    # G: z -> 4x4xw0 (a matmul), then transposed convolutions, each doubling the side; each
    # reads a side s map, i.e. costs what the stride-2 convolution from 2s to s costs.
    g_first = 2.0 * mc.z_dim * 16 * g_widths[0]
    g = g_first
    channels = list(g_widths) + [mc.channels]
    side = 4
    for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
        g += _conv(side, c_in, c_out, k)
        side *= 2
    # D: stride-2 convolutions from the image down to 4x4, then one logit from 4x4xw.
    channels = [mc.channels, *d_widths]
    side = size // 2
    d_first = _conv(side, channels[0], channels[1], k)
    d = 0.0
    for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
        d += _conv(side, c_in, c_out, k)
        side //= 2
    d += 2.0 * 16 * d_widths[-1]
    total = 3 * g + 8 * d - 2 * d_first - g_first
    return IterationFlops(generator_forward=g, discriminator_forward=d, total=total)
