"""`dcgan` console script: dispatches `dcgan <command> [--flags]` to one absl main."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": ("keras_dcgan.cli.train", "train a DCGAN into a run folder (default: digits, CPU)"),
    "sample": ("keras_dcgan.cli.sample", "render a PNG grid from a trained run folder"),
    "dedup": ("keras_dcgan.cli.dedup", "find near-duplicate images, write a keep-list"),
    "eval": ("keras_dcgan.cli.eval", "FID, KID, IS or the digits score of a trained run"),
    "export": ("keras_dcgan.cli.export", "write a run's generator as a TF Serving SavedModel"),
    "serve": ("keras_dcgan.cli.serve", "serve exported versions (TF Serving's gRPC and REST)"),
    "interpolate": ("keras_dcgan.cli.interpolate", "latent walks between seeds (paper Fig. 4)"),
    "arithmetic": ("keras_dcgan.cli.arithmetic", "vector arithmetic on latents (paper Fig. 7, 8)"),
    "classify": ("keras_dcgan.cli.classify", "D's features + L2-SVM as a classifier (paper 5.1)"),
    "visualize": ("keras_dcgan.cli.visualize", "guided backprop of D's features (paper Fig. 5)"),
    "ablate": ("keras_dcgan.cli.ablate", "drop G's feature maps of an object (paper 6.3.1)"),
}


def usage() -> str:
    lines = ["usage: dcgan <command> [--flags]   (dcgan <command> --help for its flags)", ""]
    lines += [f"  {name:<11} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if len(argv) >= 2 else 2)
    command = argv[1]
    if command not in COMMANDS:
        print(f"dcgan: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(COMMANDS[command][0])
    from absl import app

    # absl logs at INFO by default, which prints TF's checkpoint chatter between progress bars;
    # warnings only, unless the user passes --verbosity.
    app.run(module.main, argv=[f"dcgan {command}", "--verbosity=-1", *argv[2:]])


if __name__ == "__main__":
    run()
