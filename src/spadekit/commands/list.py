"""``spadekit list``: registered architectures and shipped presets."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "list",
        help="show registered networks and presets",
        description="List the registered generator and discriminator architectures (the names model.generator "
        "accepts) and the shipped presets (the names --preset accepts).",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from spadekit.config import list_presets
    from spadekit.models.registry import available

    import spadekit.models  # noqa: F401  (registers the builders)

    for kind, entries in available().items():
        print(f"{kind}s:")
        for name, description in entries.items():
            print(f"  {name:<12} {description}")
    print("presets:")
    for name in list_presets():
        print(f"  {name}")
    return 0
