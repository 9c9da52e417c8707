"""``spadekit list``: registered methods, networks, checkpoint formats and shipped presets."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "list",
        help="show registered methods, networks, checkpoint formats and presets",
        description="List what this spadekit can build: the methods (SPADE, OASIS, ...) with their papers, "
        "presets and parity status; the registered generators, discriminators and encoders; the official "
        "checkpoint formats `spadekit convert` reads; and the shipped presets by method.",
    )
    parser.add_argument("--markdown", action="store_true", help="print the methods as a Markdown table (the README's)")
    parser.set_defaults(handler=run)


def presets_by_method() -> dict[str, list[str]]:
    """Shipped preset names grouped by the method each one selects."""
    from spadekit.config import list_presets, preset_dict

    grouped: dict[str, list[str]] = {}
    for name in list_presets():
        grouped.setdefault(str(preset_dict(name).get("method", "spade")), []).append(name)
    return grouped


def methods_markdown() -> str:
    """The registered methods as a Markdown table: name, what it does, paper, presets, needs, parity."""
    from spadekit.methods import list_methods

    presets = presets_by_method()

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = ["| method | what it does | paper | presets | needs | parity |", "|---|---|---|---|---|---|"]
    for name, method in list_methods().items():
        shipped = ", ".join(f"`{p}`" for p in presets.get(name, [])) or "—"
        rows.append(
            f"| **{cell(method.title)}** (`{name}`) | {cell(method.summary)} | {cell(method.paper)} | {shipped} | "
            f"{cell(method.needs)} | {cell(method.parity)} |"
        )
    return "\n".join(rows) + "\n"


def run(args: argparse.Namespace) -> int:
    from spadekit.conversion import formats
    from spadekit.methods import list_methods
    from spadekit.models.registry import available

    if args.markdown:
        print(methods_markdown(), end="")
        return 0
    presets = presets_by_method()
    print("methods:")
    for name, method in list_methods().items():
        print(f"  {name:<12} {method.title}: {method.summary}")
        print(f"  {'':<12} paper:   {method.paper}")
        print(f"  {'':<12} needs:   {method.needs}")
        print(f"  {'':<12} parity:  {method.parity}")
        print(f"  {'':<12} presets: {', '.join(presets.get(name, [])) or '(none)'}")
    for kind, entries in available().items():
        print(f"{kind}s:")
        for name, description in entries.items():
            print(f"  {name:<12} {description}")
    print("checkpoint formats (spadekit convert FORMAT DIR):")
    for name, fmt in formats().items():
        print(f"  {name:<12} {fmt.description} [{fmt.files}]")
    return 0
