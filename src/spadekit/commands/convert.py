"""``spadekit convert``: official checkpoints ↔ spadekit release models."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert official NVlabs/SPADE checkpoints to a release model, or back",
        description="Convert between the official checkpoint files (latest_net_G/D/E.pth) and spadekit's "
        "release format (config.json + safetensors).",
    )
    sub = parser.add_subparsers(dest="direction", metavar="DIRECTION", required=True)
    official = sub.add_parser(
        "official",
        help="official checkpoints -> release model",
        description="Read DIR/latest_net_G.pth (and _D, _E when present). Widths, channels, VAE, spectral norm, "
        "SPADE kernel and 'most' upsampling are read from the weights; the output size, aspect ratio, upsampling "
        "mode and which channels are don't-care/instance come from --opt (the run's opt.txt), else from "
        "--preset (and --set).",
    )
    official.add_argument("directory", help="folder holding latest_net_G.pth (e.g. checkpoints/coco_pretrained)")
    official.add_argument("--opt", metavar="FILE", help="the official run's options: its opt.txt (or a JSON object of them)")
    official.add_argument("--preset", default=None,
                          help="layout preset: cityscapes, ade20k, ade20k-outdoor, coco, custom (default: from --opt's dataset_mode, else custom)")
    official.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides, e.g. model.use_instance=true")
    official.add_argument("--out", required=True, help="release model directory to write")
    official.set_defaults(handler=run_official)

    back = sub.add_parser(
        "to-official",
        help="release model -> official checkpoints",
        description="Write latest_net_G.pth (and _D, _E when the model has them) that the official code loads.",
    )
    back.add_argument("model", help="release model directory or bundled model name")
    back.add_argument("--out", required=True, help="folder to write latest_net_*.pth into")
    back.set_defaults(handler=run_to_official)


def run_official(args: argparse.Namespace) -> int:
    from spadekit.convert import convert_official
    from spadekit.official_options import official_overrides, official_preset, read_official_options, unrecognised_options

    preset, overrides = args.preset, list(args.overrides)
    if args.opt:
        opt = read_official_options(args.opt)
        unknown = unrecognised_options(opt)
        if unknown:
            print(f"note: {args.opt}: not official SPADE options, ignored: {', '.join(unknown)}", file=sys.stderr)
        preset = preset or official_preset(opt)
        overrides = official_overrides(opt) + overrides  # --set wins
    model = convert_official(args.directory, preset or "custom", overrides=overrides)
    out = model.save(args.out)
    m = model.config.model
    parts = ", ".join(model.networks())
    print(f"wrote {out} ({parts}; label_nc={m.label_nc}, ngf={m.ngf}, {m.output_size[0]}x{m.output_size[1]}, vae={m.use_vae})")
    return 0


def run_to_official(args: argparse.Namespace) -> int:
    from spadekit.convert import export_official
    from spadekit.release import load_model

    for path in export_official(load_model(args.model), args.out):
        print(f"wrote {path}")
    return 0
