"""Options that several commands share, defined once so they read and behave the same everywhere:
``--set KEY=VALUE ...``, ``--device auto|cpu|cuda|cuda:N``, ``--seed`` and picture sizes.

(The leading underscore keeps this module out of the command discovery in :mod:`spadekit.cli`.)
"""

from __future__ import annotations

import argparse


def add_set_option(parser: argparse.ArgumentParser, help: str, dest: str = "overrides") -> None:
    """``--set KEY=VALUE [KEY=VALUE ...]``, repeatable; every form collects into one list."""
    parser.add_argument("--set", dest=dest, action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help=f"{help} (several after one --set, or --set repeated)")


def add_device_option(parser: argparse.ArgumentParser, what: str = "the model runs") -> None:
    """``--device``, ``auto`` by default (CUDA when available, else the CPU); the command prints the device used."""
    parser.add_argument("--device", default="auto",
                        help=f"where {what}: auto (CUDA when available, else cpu; the default), cpu, cuda, cuda:N, mps")


def pick_device(name: str, say=print):
    """Resolve ``--device`` (``auto`` → CUDA when available, else CPU) to a :class:`torch.device`,
    refuse devices this machine lacks (ConfigError), and print the one used."""
    import torch

    from spadekit.errors import ConfigError
    from spadekit.training.distributed import resolve_device

    if str(name).lower().startswith("mps"):
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"--device {name}: MPS is not available on this machine (use --device cpu)")
        device = torch.device(name)
    else:
        device = resolve_device(name)
    note = " (auto)" if str(name).lower() == "auto" else ""
    say(f"device: {device}{note}")
    return device


def seed_type(text: str) -> int:
    """argparse ``type=`` for seeds: the range the studio and the Pipeline accept (0..2**63-1)."""
    from spadekit.data.inputs import check_seed
    from spadekit.errors import ConfigError

    try:
        return check_seed(text, "seed")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None


def refine_steps_type(text: str) -> int:
    """argparse ``type=`` for style refinement steps: the range the studio and the Pipeline accept."""
    from spadekit.errors import ConfigError
    from spadekit.style_refine import check_refine_steps

    try:
        return check_refine_steps(text, "refine steps")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None


def side_type(text: str) -> int:
    """argparse ``type=`` for the side of a square picture, within the shared picture limits."""
    from spadekit.data.inputs import DEFAULT_LIMITS

    try:
        side = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    limits = DEFAULT_LIMITS
    if not limits.min_side <= side <= min(limits.max_side, int(limits.max_pixels**0.5)):
        raise argparse.ArgumentTypeError(f"{side} is outside {limits.min_side}..{limits.max_side} pixels (the picture limits)")
    return side
