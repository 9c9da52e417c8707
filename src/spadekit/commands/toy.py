"""``spadekit toy``: the built-in toy-scenes world (``toy make``) and the toy protocol's segmenter (``toy segmenter``)."""

from __future__ import annotations

import argparse

from spadekit.commands._options import add_device_option, seed_type, side_type

SEGMENTER_DESCRIPTION = (
    "Train the toy protocol's evaluator: a compact U-Net that segments real toy-scene photos into the 12 toy "
    "classes. `spadekit evaluate --preset toy` uses it for mIoU / pixel accuracy of generated images and its "
    "pooled penultimate features for the toy FID, so the whole protocol runs offline. Writes OUT/segmenter.safetensors "
    "and OUT/segmenter.json (architecture, training settings and its own mIoU on real val scenes, which should be "
    "high: it proves the segmenter can read toy images)."
)


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
    make.add_argument("--size", type=side_type, default=128, help="side of the square scenes in pixels (default 128; 8..4096)")
    make.add_argument("--seed", type=seed_type, default=0, help="seed of the scenes (default 0; 0..2**63-1)")
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

    segmenter = sub.add_parser(
        "segmenter",
        help="train the toy protocol's segmenter on real toy scenes (for `spadekit evaluate --preset toy`)",
        description=SEGMENTER_DESCRIPTION,
    )
    segmenter.add_argument("--out", required=True, metavar="DIR", help="output folder for segmenter.safetensors + segmenter.json")
    segmenter.add_argument("--steps", type=int, default=1500, help="training steps (default 1500)")
    segmenter.add_argument("--size", type=int, default=64, help="side of the square training scenes; the segmenter runs "
                           "at this size and resizes other inputs to it (default 64; a multiple of 8)")
    segmenter.add_argument("--batch-size", type=int, default=8, help="scenes per step (default 8)")
    segmenter.add_argument("--width", type=int, default=16, help="base channel width of the U-Net (default 16)")
    segmenter.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the one-cycle schedule (default 3e-3)")
    segmenter.add_argument("--train-scenes", type=int, default=1000, help="real train-split scenes rendered (default 1000)")
    segmenter.add_argument("--val-scenes", type=int, default=200, help="real val-split scenes it is scored on (default 200)")
    segmenter.add_argument("--scales", default="1,2", help="render training scenes at these multiples of --size and bring "
                           "them to --size as the evaluator does, so one segmenter reads models of several sizes "
                           "(default 1,2: 64 and 128 px models; --train-scenes scenes per scale)")
    segmenter.add_argument("--seed", type=seed_type, default=0, help="seed of the scenes and of the training (default 0)")
    add_device_option(segmenter, "it trains")
    segmenter.add_argument("--no-progress", action="store_true", help="no progress bars")
    segmenter.set_defaults(handler=run_segmenter)


def run_make(args: argparse.Namespace) -> int:
    from spadekit.data.toy import write_toy_dataset
    from spadekit.errors import ConfigError

    if args.n < 1:
        raise ConfigError("--n must be >= 1")
    out = write_toy_dataset(
        args.out, args.n, args.size, args.seed, args.split, args.image_format, overwrite=args.force, progress=not args.quiet
    )
    print(f"wrote {args.n} toy scenes ({args.size}x{args.size}) to {out}")
    return 0


def run_segmenter(args: argparse.Namespace) -> int:
    from spadekit.commands._options import pick_device
    from spadekit.data.inputs import check_side_sizes
    from spadekit.errors import ConfigError
    from spadekit.evaluation.toy_segmenter import train_toy_segmenter

    for name in ("steps", "batch_size", "width", "train_scenes", "val_scenes"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")
    if args.size < 16 or args.size % 8:
        raise ConfigError(f"--size {args.size}: must be a multiple of 8, at least 16")
    if args.lr <= 0:
        raise ConfigError("--lr must be positive")
    try:
        scales = tuple(int(v) for v in str(args.scales).split(",") if v.strip())
    except ValueError:
        scales = ()
    if not scales or min(scales) < 1:
        raise ConfigError(f"--scales {args.scales}: give positive integers, e.g. 1,2")
    check_side_sizes(args.size * max(scales), args.size * max(scales), f"--size {args.size} x --scales {max(scales)}")
    device = pick_device(args.device)
    result = train_toy_segmenter(
        args.out,
        steps=args.steps,
        size=args.size,
        batch_size=args.batch_size,
        width=args.width,
        lr=args.lr,
        train_scenes=args.train_scenes,
        val_scenes=args.val_scenes,
        seed=args.seed,
        scales=scales,
        device=device,
        progress=not args.no_progress,
    )
    per_class = ", ".join(f"{k} {v:.2f}" for k, v in result.val["per_class_iou"].items() if v is not None)
    print(f"per-class IoU on real val scenes at {args.size}px: {per_class}")
    return 0
