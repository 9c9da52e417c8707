"""``spadekit synthesize``: label maps (a file or a folder) → images and a contact sheet."""

from __future__ import annotations

import argparse
from pathlib import Path

LABEL_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".ppm", ".pgm")
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synthesize",
        help="turn label maps into images with a trained model",
        description="Synthesize images from label maps. A label map is a PNG of integer class ids (8- or 16-bit; "
        "255 = don't care for models with that class) or an RGB picture colour-coded with the model's palette. "
        "The network runs at the model's size: label maps are resized to it (nearest) and --size only resizes "
        "the results. Every input is checked before anything is generated, so a bad file stops the run with a "
        "message naming it and nothing written for it. Writes DIR/<name>.png (DIR/<name>_<k>.png with several "
        "samples) and DIR/index.html, a contact sheet with the colourised labels, results and style.",
    )
    parser.add_argument("--model", required=True, help="release model directory, bundled model name (e.g. toy), or "
                        "a folder of official checkpoints (latest_net_G.pth; give --preset)")
    parser.add_argument("--preset", help="layout of official checkpoints: cityscapes, ade20k, ade20k-outdoor, coco, custom")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="official checkpoints only: layout overrides, e.g. model.width=512")
    parser.add_argument("--labels", required=True, help="a label map file, or a folder of them (" + ", ".join(LABEL_SUFFIXES) + ")")
    parser.add_argument("--instances", help="instance map(s): a file, or a folder with files named like the labels; "
                        "default for models with an instance channel: the class boundaries")
    parser.add_argument("--style", help="a style photo steering the appearance (models with a style encoder)")
    parser.add_argument("--num-samples", type=int, default=1, help="images per label map (default 1; they differ for VAE models)")
    parser.add_argument("--seed", type=int, default=0, help="sample k uses seed+k (default 0): same seed, same bytes")
    parser.add_argument("--size", help="WxH to resize the results to (the network itself runs at the model size)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="fp32 (default), bf16 or fp16 (GPUs)")
    parser.add_argument("--no-fast", dest="fast", action="store_false", help="use the plain generator instead of the optimised one")
    parser.set_defaults(handler=run)


def _list(path: Path, what: str) -> list[Path]:
    from spadekit.errors import DataError

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in LABEL_SUFFIXES)
        if not files:
            raise DataError(f"{path}: no {what} found (looked for {', '.join(LABEL_SUFFIXES)})")
        return files
    if not path.exists():
        raise DataError(f"{path}: file not found")
    return [path]


def _pair_instances(labels: list[Path], instances: str | None) -> list[Path | None]:
    from spadekit.errors import DataError

    if instances is None:
        return [None] * len(labels)
    path = Path(instances)
    if path.is_dir():
        by_stem = {p.stem: p for p in _list(path, "instance maps")}
        missing = [p for p in labels if p.stem not in by_stem]
        if missing:
            raise DataError(f"{missing[0]}: no instance map named {missing[0].stem}.* in {path}")
        return [by_stem[p.stem] for p in labels]
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if len(labels) > 1:
        raise DataError(f"{path}: one instance file for a folder of label maps; give a folder of instance maps")
    return [path]


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from spadekit.demo import Cell, Row, colorize, save_images, write_gallery
    from spadekit.errors import ConfigError, DataError
    from spadekit.inference import Pipeline, image_to_ids, parse_size, read_image

    if args.num_samples < 1:
        raise ConfigError("--num-samples must be >= 1")
    out_size = parse_size(args.size) if args.size else None
    pipeline = Pipeline.from_pretrained(
        args.model, device=args.device, dtype=getattr(torch, DTYPES[args.dtype]), fast=args.fast, preset=args.preset,
        overrides=args.overrides or None,
    )
    labels = _list(Path(args.labels), "label maps")
    instances = _pair_instances(labels, args.instances)
    stems: dict[str, Path] = {}
    for path in labels:
        if path.stem in stems:
            raise DataError(f"{path}: same name as {stems[path.stem]} (outputs would collide)")
        stems[path.stem] = path

    # Check every input first: a bad file stops the run before anything is written.
    style = None
    if args.style:
        if not pipeline.has_encoder:
            raise DataError(
                f"{args.style}: this model has no style encoder (trained without a VAE or released without "
                "encoder.safetensors), so it cannot take a style image"
            )
        style = read_image(args.style)
        pipeline.encode_style(style, source=args.style)
    for label, instance in zip(labels, instances):
        pipeline.labels_from_image(read_image(label), source=str(label))
        if instance is not None:
            image_to_ids(read_image(instance), None, str(instance), "instance map")

    out = Path(args.out)
    colors = pipeline.palette.colors
    rows: list[Row] = []
    if style is not None:
        save_images({out / "sheet" / "style.png": _thumbnail(style)})
        rows.append(Row("Style", [Cell("sheet/style.png", Path(args.style).name)]))
    written = 0
    for label, instance in tqdm(list(zip(labels, instances)), desc="synthesize", unit="map", disable=len(labels) < 2):
        ids = pipeline.labels_from_image(read_image(label), source=str(label))
        inst = read_image(instance) if instance is not None else None
        images = pipeline(ids, inst, style=style, seed=args.seed, num_samples=args.num_samples)
        if out_size is not None:
            images = [im.resize(out_size, _lanczos()) for im in images]
        names = [f"{label.stem}.png"] if args.num_samples == 1 else [f"{label.stem}_{k}.png" for k in range(args.num_samples)]
        files = {out / name: image for name, image in zip(names, images)}
        files[out / "sheet" / f"{label.stem}_label.png"] = colorize(ids, colors)
        save_images(files)
        written += len(images)
        captions = [f"seed {args.seed + k}" for k in range(args.num_samples)] if pipeline.uses_latent else ["result"] * len(names)
        rows.append(Row(label.name, [Cell(f"sheet/{label.stem}_label.png", "label map")] + [Cell(n, c) for n, c in zip(names, captions)]))
    w, h = pipeline.size
    note = f"model {args.model} ({w}x{h}{', resized to %dx%d' % out_size if out_size else ''}), seed {args.seed}"
    index = write_gallery(out, "spadekit synthesize", rows, note)
    print(f"wrote {written} image(s) to {out} and {index}")
    return 0


def _lanczos():
    from PIL import Image

    return Image.Resampling.LANCZOS


def _thumbnail(image):
    image = image.convert("RGB").copy()
    image.thumbnail((512, 512))
    return image
