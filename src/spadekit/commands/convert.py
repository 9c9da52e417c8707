"""``spadekit convert``: official checkpoints of every registered method ↔ spadekit release models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spadekit.commands._options import add_set_option


def register(subparsers: argparse._SubParsersAction) -> None:
    from spadekit.conversion import formats

    parser = subparsers.add_parser(
        "convert",
        help="convert official checkpoints (SPADE, OASIS, ...) to a release model, or back",
        description="Convert between a method's official checkpoint files and spadekit's release format "
        "(config.json + safetensors). `spadekit convert FORMAT DIR --out MODEL` reads; "
        "`spadekit convert to-FORMAT MODEL --out DIR` writes. Structural options (widths, channels, kernels, "
        "norms, ...) are read from the weights; what they cannot tell (output size, aspect ratio, which channels "
        "are don't-care/instance) comes from --opt (the official run's options), else --preset, and --set.",
    )
    sub = parser.add_subparsers(dest="direction", metavar="FORMAT", required=True)
    for name, fmt in formats().items():
        read = sub.add_parser(
            name,
            help=f"{fmt.description} -> release model",
            description=f"Read {fmt.description}: {fmt.files}. Checkpoints load with weights_only=True: a file "
            "that asks to run code is refused.",
        )
        read.add_argument("directory", help=f"folder holding {fmt.files}")
        if fmt.options_from_file is not None:
            read.add_argument("--opt", metavar="FILE", help="the official run's options: its opt.txt (or a JSON object of them)")
        read.add_argument("--preset", default=None, help=f"layout preset (`spadekit list`; default {fmt.default_preset})")
        add_set_option(read, "config overrides, e.g. --set model.use_instance=true (they win over --opt)")
        read.add_argument("--out", required=True, help="release model directory to write")
        read.set_defaults(handler=run_read, format_name=name)
        if fmt.write is not None:
            back = sub.add_parser(
                f"to-{name}",
                help=f"release model -> {fmt.description}",
                description=f"Write {fmt.files} that the official {fmt.method} code loads.",
            )
            back.add_argument("model", help="release model directory or bundled model name")
            back.add_argument("--out", required=True, help="folder to write the official files into")
            back.set_defaults(handler=run_write, format_name=name)


def run_read(args: argparse.Namespace) -> int:
    from spadekit.conversion import get_format

    fmt = get_format(args.format_name)
    preset, overrides = args.preset, list(args.overrides)
    if getattr(args, "opt", None):
        opt_preset, opt_overrides, notes = fmt.options_from_file(Path(args.opt))  # type: ignore[misc]
        for note in notes:
            print(f"note: {args.opt}: {note}", file=sys.stderr)
        preset = preset or opt_preset
        overrides = opt_overrides + overrides  # --set wins
    model = fmt.read(args.directory, preset, overrides)
    out = model.save(args.out)
    m = model.config.model
    parts = ", ".join(model.networks())
    width, height = model.output_size
    print(f"wrote {out} ({model.config.method}: {parts}; label_nc={m.label_nc}, {width}x{height})")
    return 0


def run_write(args: argparse.Namespace) -> int:
    from spadekit.conversion import get_format
    from spadekit.release import load_model

    fmt = get_format(args.format_name)
    for path in fmt.write(load_model(args.model), args.out):  # type: ignore[misc]
        print(f"wrote {path}")
    return 0
