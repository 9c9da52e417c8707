"""``spadekit toy``: the built-in toy-scenes world."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "toy",
        help="generate toy-scene datasets (no download needed)",
        description="The built-in procedural toy-scenes world (sky, cloud, mountain, water, sand, grass, road, "
        "building, window, tree, car, person) with instance ids and textured photos.",
    )
    sub = parser.add_subparsers(dest="toy_command", metavar="ACTION", required=True)
    make = sub.add_parser(
        "make",
        help="write toy scenes in the folder format",
        description="Write OUT/labels/*.png (class ids), OUT/instances/*.png (instance ids), OUT/images/*.png "
        "(photos) and OUT/palette.json (class names and colours). Deterministic: the same --seed and --size give "
        "the same bytes; scene i is scene i of the toy preset's in-memory dataset (data.toy_seed=SEED, same size). "
        "Use OUT as data.root with the toy preset (or data.format=folder with any preset).",
    )
    make.add_argument("out", metavar="OUT", help="output folder (created; must be empty unless --force)")
    make.add_argument("--n", type=int, default=1000, help="number of scenes (default 1000)")
    make.add_argument("--size", type=int, default=128, help="side of the square scenes in pixels (default 128)")
    make.add_argument("--seed", type=int, default=0, help="seed of the scenes (default 0)")
    make.add_argument(
        "--split",
        choices=("train", "val"),
        default="train",
        help="seed stream: val scenes differ from train scenes of the same seed (default train)",
    )
    make.add_argument("--image-format", choices=("png", "jpg"), default="png", help="photo file format (default png, lossless)")
    make.add_argument("--force", action="store_true", help="write into a non-empty OUT, replacing files with the same names")
    make.add_argument("--quiet", action="store_true", help="no progress bar")
    make.set_defaults(handler=run_make)

    from spadekit.commands import toy_segmenter

    segmenter = sub.add_parser(
        "segmenter",
        help="train the toy protocol's segmenter on real toy scenes (for `spadekit evaluate --preset toy`)",
        description=toy_segmenter.DESCRIPTION,
    )
    toy_segmenter.add_arguments(segmenter)
    segmenter.set_defaults(handler=toy_segmenter.run)


def run_make(args: argparse.Namespace) -> int:
    from spadekit.data.toy import write_toy_dataset
    from spadekit.errors import ConfigError

    if args.n < 1:
        raise ConfigError("--n must be >= 1")
    if args.size < 8:
        raise ConfigError("--size must be >= 8")
    out = write_toy_dataset(
        args.out, args.n, args.size, args.seed, args.split, args.image_format, overwrite=args.force, progress=not args.quiet
    )
    print(f"wrote {args.n} toy scenes ({args.size}x{args.size}) to {out}")
    return 0
