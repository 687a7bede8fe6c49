"""The Chainer illustration blog's ablations on the offline default: `digits32`, one change each.

Trains `get_config("digits32")` for `--steps` iterations with `keras_dcgan.training.train`, once
as it is and once with each of the blog's changes, for every seed of `--seeds`, and prints the
digits score (`keras_dcgan.evaluation.digits.score_generator`: 1,000 samples, seeds 0..999,
judged by the digits classifier) of each: the median confident share over the seeds, its
difference from the default's, the classes present, the Fréchet distance of the classifier's
logits, and D's last mean outputs D(x), D(G(z)) (from the run's history). Read the columns
together: a collapsed G that draws one clear digit scores a high confident share with 1/10
classes and a large Fréchet distance.

The changes (`VARIANTS`): Adam beta_1 0.9 (the paper: 0.5), no BatchNorm, real and fake in ONE
concatenated D batch (`d_batch="concatenated"`), 6x6 kernels (the preset: 5x5), ReLU in D
(`d_leaky_slope=0`; the paper: LeakyReLU 0.2). The rest of the preset (DiffAugment, R1 0.1,
batch 64) stays, so each row is one change against the same default.

    python bench/ablations.py --steps=3000 --seeds=0,1,2
    python bench/ablations.py --steps=500 --seeds=0 --variants=default,d_batch   # quick look
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from keras_dcgan.config import get_config  # noqa: E402
from keras_dcgan.evaluation.digits import score_generator  # noqa: E402
from keras_dcgan.training import train  # noqa: E402

# name -> (config overrides, what the blog says about the change)
VARIANTS = {
    "default": ({}, "digits32 as it is"),
    "beta_1": ({"beta_1": 0.9}, "Adam beta_1 0.9: blurry samples"),
    "no_batch_norm": ({"batch_norm": False}, "no BatchNorm: noise"),
    "d_batch": ({"d_batch": "concatenated"}, "one concatenated D batch: fails"),
    "kernel_6": ({"kernel_size": 6}, "6x6 kernels (the blog compared 4 and 6)"),
    "relu_d": ({"d_leaky_slope": 0.0}, "ReLU in D (the paper: LeakyReLU 0.2)"),
}

_STEPS = flags.DEFINE_integer("steps", 3000, "Training iterations of each run.")
_SEEDS = flags.DEFINE_list("seeds", ["0"], "Training seeds; each variant runs once per seed.")
_VARIANTS = flags.DEFINE_list(
    "variants", list(VARIANTS), f"Which variants to run, of {', '.join(VARIANTS)}."
)


def run_variant(name: str, seed: int, steps: int) -> dict:
    """Trains digits32 with variant `name`'s overrides; returns its score and D's outputs."""
    overrides, _ = VARIANTS[name]
    config = get_config("digits32", steps=steps, seed=seed, **overrides)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"dcgan_ablation_{name}_") as model_dir:
        result = train(config, model_dir, verbose=0)
        score = score_generator(result.gan)
    history = result.history.history if result.history is not None else {}
    return {
        "confident": score.confident_share,
        "classes": score.classes_present,
        "frechet": score.frechet_distance,
        "d_real": _last(history.get("d_real")),
        "d_fake": _last(history.get("d_fake")),
        "seconds": time.perf_counter() - start,
    }


def _last(values):
    if not values:
        return float("nan")
    value = values[-1]
    return float(value[0] if hasattr(value, "__len__") else value)


def table(results: dict[str, list[dict]], steps: int, seeds: list[int]) -> str:
    """The Markdown table of `results` (variant -> one dict per seed), medians over seeds."""
    median = {
        name: statistics.median(r["confident"] for r in runs) for name, runs in results.items()
    }
    base = median.get("default")
    lines = [
        f"digits32, {steps} steps, seeds {','.join(map(str, seeds))} (median over seeds)",
        "",
        "| variant | the change (blog's finding) | confident | vs default | classes | Fréchet "
        "| D(x) | D(G(z)) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        diff = "" if base is None or name == "default" else f"{100 * (median[name] - base):+.1f} pt"
        per_seed = " / ".join(f"{r['confident']:.1%}" for r in runs)
        lines.append(
            f"| {name} | {VARIANTS[name][1]} | {median[name]:.1%}"
            f"{f' ({per_seed})' if len(runs) > 1 else ''} | {diff} "
            f"| {statistics.median(r['classes'] for r in runs):g}/10 "
            f"| {statistics.median(r['frechet'] for r in runs):.2f} "
            f"| {statistics.median(r['d_real'] for r in runs):.2f} "
            f"| {statistics.median(r['d_fake'] for r in runs):.2f} |"
        )
    return "\n".join(lines)


def main(argv):
    del argv
    unknown = [name for name in _VARIANTS.value if name not in VARIANTS]
    if unknown:
        raise app.UsageError(f"Unknown variants {unknown}; choose from {', '.join(VARIANTS)}.")
    seeds = [int(seed) for seed in _SEEDS.value]
    results: dict[str, list[dict]] = {}
    for name in _VARIANTS.value:
        for seed in seeds:
            run = run_variant(name, seed, _STEPS.value)
            results.setdefault(name, []).append(run)
            print(
                f"{name:>14} seed {seed}: {run['confident']:6.1%} confident, "
                f"{run['classes']}/10 classes, Fréchet {run['frechet']:.2f}, "
                f"D(x) {run['d_real']:.2f}, D(G(z)) {run['d_fake']:.2f} ({run['seconds']:.0f} s)",
                flush=True,
            )
    print()
    print(table(results, _STEPS.value, seeds))


if __name__ == "__main__":
    app.run(main)
