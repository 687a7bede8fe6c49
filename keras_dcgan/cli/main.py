"""`dcgan` console script: `dcgan <command> [--flags]` runs one command's `main` under absl.

Every command goes through `run_command`: `--help` lists the command's own flags (exit 0); the
package's expected failures (`keras_dcgan.errors.Error`, e.g. a bad flag value, and OS errors
such as a missing or read-only path) print one line and exit 1; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": ("keras_dcgan.cli.train", "train a DCGAN into a run folder (default: digits, CPU)"),
    "sample": ("keras_dcgan.cli.sample", "render a PNG grid from a trained run folder"),
    "dedup": ("keras_dcgan.cli.dedup", "find near-duplicate images, write a keep-list"),
    "eval": ("keras_dcgan.cli.eval", "FID, KID, IS or the digits score of a trained run"),
    "fetch_inception": (
        "keras_dcgan.cli.fetch_inception",
        "download and check the reference Inception graph of FID",
    ),
    "export": ("keras_dcgan.cli.export", "write a run's generator as a TF Serving SavedModel"),
    "serve": (
        "keras_dcgan.cli.serve",
        "serve exported versions (TF Serving's gRPC and REST, the explorer page at /)",
    ),
    "explore": (
        "keras_dcgan.cli.explore",
        "the explorer page in front of a TF Serving REST API (forwards its calls)",
    ),
    "interpolate": ("keras_dcgan.cli.interpolate", "latent walks between seeds (paper Fig. 4)"),
    "arithmetic": ("keras_dcgan.cli.arithmetic", "vector arithmetic on latents (paper Fig. 7, 8)"),
    "attributes": (
        "keras_dcgan.cli.attributes",
        "train the CelebA attribute classifier that picks arithmetic exemplars",
    ),
    "classify": ("keras_dcgan.cli.classify", "D's features + L2-SVM as a classifier (paper 5.1)"),
    "visualize": ("keras_dcgan.cli.visualize", "guided backprop of D's features (paper Fig. 5)"),
    "ablate": ("keras_dcgan.cli.ablate", "drop G's feature maps of an object (paper 6.3.1)"),
    "neighbours": (
        "keras_dcgan.cli.neighbours",
        "samples beside their nearest training images (memorisation check)",
    ),
}
HELP_FLAGS = ("-h", "--help", "-help", "--helpshort", "-?")


def usage() -> str:
    lines = ["usage: dcgan <command> [--flags]   (dcgan <command> --help for its flags)", ""]
    lines += [f"  {name:<15} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def command_help(command: str) -> str:
    """`dcgan <command> --help`: the command's description and its own flags."""
    from absl import flags

    module_name = COMMANDS[command][0]
    module = importlib.import_module(module_name)
    doc = (module.__doc__ or "").strip()
    return (
        f"usage: dcgan {command} [--flags]\n\n{doc}\n\nflags:\n"
        f"{flags.FLAGS.module_help(module_name)}\n\n"
        "(--helpfull also lists absl's and TensorFlow's own flags)"
    )


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text


def run_command(command: str, argv: list[str]) -> None:
    """Runs `command`'s main with absl's flag parsing; `argv` are the arguments after it."""
    from absl import app

    from keras_dcgan.errors import Error

    module = importlib.import_module(COMMANDS[command][0])

    def main(args):
        if len(args) > 1:
            print(f"dcgan {command}: error: unexpected arguments {args[1:]} (flags take the form "
                  "--name=value)", file=sys.stderr)  # fmt: skip
            sys.exit(1)
        try:
            code = module.main(args)
        except (Error, OSError) as e:
            print(f"dcgan {command}: error: {_one_line(e)}", file=sys.stderr)
            sys.exit(1)
        sys.exit(code or 0)

    # absl logs at INFO by default, which prints TF's checkpoint chatter between progress bars;
    # warnings only, unless the user passes --verbosity.
    app.run(main, argv=[f"dcgan {command}", "--verbosity=-1", *argv])


def run(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if len(argv) >= 2 else 2)
    command = argv[1]
    if command not in COMMANDS:
        print(f"dcgan: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    if any(arg in HELP_FLAGS for arg in argv[2:]):
        print(command_help(command))
        sys.exit(0)
    run_command(command, argv[2:])


if __name__ == "__main__":
    run()
