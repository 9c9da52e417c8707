"""The ``spadekit`` command: a thin layer that turns options into plain function calls.

Each subcommand lives in ``spadekit/commands/<name>.py`` with a ``register(subparsers)`` that adds
its parser and sets ``handler``; heavy imports happen inside the handler so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from spadekit import __version__
from spadekit.errors import SpadekitError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spadekit",
        description="Semantic image synthesis with SPADE: train, evaluate, synthesize, paint, export.",
    )
    parser.add_argument("--version", action="version", version=f"spadekit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    import spadekit.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"spadekit.commands.{info.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 1
    try:
        result = args.handler(args)
    except SpadekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
