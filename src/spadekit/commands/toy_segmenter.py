"""``spadekit toy segmenter`` (alias ``spadekit toy-segmenter``): train the toy protocol's
segmentation network on real toy scenes."""

from __future__ import annotations

import argparse

DESCRIPTION = (
    "Train the toy protocol's evaluator: a compact U-Net that segments real toy-scene photos into the 12 toy "
    "classes. `spadekit evaluate --preset toy` uses it for mIoU / pixel accuracy of generated images and its "
    "pooled penultimate features for the toy FID, so the whole protocol runs offline. Writes OUT/segmenter.safetensors "
    "and OUT/segmenter.json (architecture, training settings and its own mIoU on real val scenes, which should be "
    "high: it proves the segmenter can read toy images)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options, shared by ``spadekit toy-segmenter`` and ``spadekit toy segmenter``."""
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder for segmenter.safetensors + segmenter.json")
    parser.add_argument("--steps", type=int, default=1500, help="training steps (default 1500)")
    parser.add_argument("--size", type=int, default=64, help="side of the square training scenes; the segmenter runs at "
                        "this size and resizes other inputs to it (default 64; a multiple of 8)")
    parser.add_argument("--batch-size", type=int, default=8, help="scenes per step (default 8)")
    parser.add_argument("--width", type=int, default=16, help="base channel width of the U-Net (default 16)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the one-cycle schedule (default 3e-3)")
    parser.add_argument("--train-scenes", type=int, default=1000, help="real train-split scenes rendered (default 1000)")
    parser.add_argument("--val-scenes", type=int, default=200, help="real val-split scenes it is scored on (default 200)")
    parser.add_argument("--scales", default="1,2", help="render training scenes at these multiples of --size and bring "
                        "them to --size as the evaluator does, so one segmenter reads models of several sizes "
                        "(default 1,2: 64 and 128 px models; --train-scenes scenes per scale)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the scenes and of the training (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "toy-segmenter",
        help="train the toy protocol's segmenter on real toy scenes (for `spadekit evaluate --preset toy`)",
        description=DESCRIPTION,
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
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
        device=args.device,
        progress=not args.no_progress,
    )
    per_class = ", ".join(f"{k} {v:.2f}" for k, v in result.val["per_class_iou"].items() if v is not None)
    print(f"per-class IoU on real val scenes at {args.size}px: {per_class}")
    return 0
