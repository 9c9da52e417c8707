"""``spadekit data``: dataset checks and preparation."""

from __future__ import annotations

import argparse

from spadekit.commands._options import add_set_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="check datasets and prepare COCO-Stuff instance maps",
        description="Dataset tools. Formats: cityscapes, ade20k, ade20k-outdoor, coco, folder, toy, celebamask-hq "
        "(see the README's data section for the layouts).",
    )
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    check = sub.add_parser(
        "check",
        help="scan a dataset and report problems, the class histogram and a suggested label_nc",
        description="Scan every sample of a dataset with a progress bar and list, per problem, the files: "
        "missing partners, unreadable files, label ids outside the preset's range, sizes that differ between "
        "label and image, colour-coded label maps, unknown palette colours. Then print the class histogram and "
        "the label_nc / don't-care setting the data suggests. Exit status: 0 clean, 1 problems found, 2 usage "
        "error (e.g. missing root).",
    )
    check.add_argument("root", metavar="ROOT", help="dataset root folder")
    check.add_argument("--preset", default="custom", help="preset giving the format and label settings (default custom: folder format)")
    add_set_option(check, "config overrides, e.g. --set data.format=folder model.label_nc=20 data.palette=palette.json")
    check.add_argument("--split", choices=("train", "val", "both"), default="both", help="which split(s) to scan (default both)")
    check.add_argument("--quick", action="store_true", help="read only the headers of photos (faster; misses truncated photos)")
    check.add_argument("--max-files", type=int, default=10, help="files listed per problem kind (default 10)")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(handler=run_check)

    inst = sub.add_parser(
        "coco-instances",
        help="build COCO-Stuff instance maps from COCO instance annotations",
        description="Write one 8-bit instance PNG per image of ANNOTATIONS_JSON (COCO instances_{train,val}2017.json) "
        "into OUT_DIR, painting each annotation's polygon mask with its index, as SPADE's data preparation does. "
        "With --label-dir the canvas starts as the COCO-Stuff label map (the official recipe; indices from 0), "
        "otherwise as 0 (indices from 1). Needs pycocotools: pip install 'spadekit[coco]'.",
    )
    inst.add_argument("annotations", metavar="ANNOTATIONS_JSON", help="COCO instance annotation file")
    inst.add_argument("out_dir", metavar="OUT_DIR", help="folder for the instance PNGs (e.g. train_inst)")
    inst.add_argument("--label-dir", default=None, help="COCO-Stuff label maps (e.g. train_label) to start each canvas from")
    inst.add_argument("--include-crowd", action="store_true", help="also paint crowd (RLE) annotations (the official script skips them)")
    inst.add_argument("--quiet", action="store_true", help="no progress bar")
    inst.set_defaults(handler=run_coco_instances)


def run_check(args: argparse.Namespace) -> int:
    from spadekit.config import load_config
    from spadekit.data.check import check_dataset
    from spadekit.data.palette import load_palette
    from spadekit.errors import ConfigError, DataError

    from pathlib import Path

    config = load_config(args.preset, overrides=args.overrides)
    root = Path(args.root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset root not found" if not root.exists() else f"{root}: not a folder")
    if args.max_files < 1:
        raise ConfigError("--max-files must be >= 1")
    fmt = config.data.format
    palette = None
    if config.data.palette:
        palette = load_palette(config.data.palette)
    elif fmt in ("folder", "toy") and (root / "palette.json").is_file():
        palette = load_palette(root / "palette.json")
    splits = ("train", "val") if args.split == "both" else (args.split,)
    m = config.model
    report = check_dataset(
        root, fmt, m.label_nc, m.contain_dontcare, m.use_instance, palette, splits, decode_images=not args.quick, progress=not args.quiet
    )
    names = config.data.class_names or (list(palette.names) if palette else None)
    print(report.format_text(names, max_files=args.max_files))
    return 0 if report.ok else 1


def run_coco_instances(args: argparse.Namespace) -> int:
    from spadekit.data.coco_instances import build_coco_instance_maps

    count = build_coco_instance_maps(args.annotations, args.out_dir, args.label_dir, args.include_crowd, progress=not args.quiet)
    print(f"wrote {count} instance maps to {args.out_dir}")
    return 0
