"""``spadekit synthesize``: label maps or object boxes (a file or a folder) → images and a contact sheet."""

from __future__ import annotations

import argparse
from pathlib import Path

from spadekit.commands._options import add_device_option, add_set_option, refine_steps_type, seed_type

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
MAX_REPORTED = 20
"""Bad input files listed in one error (the rest are counted)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synthesize",
        help="turn label maps into images with a trained model",
        description="Synthesize images from label maps. A label map is a PNG of integer class ids (8- or 16-bit; "
        "255 = don't care for models with that class) or an RGB picture colour-coded with the model's palette. "
        "Label and instance maps must be lossless (PNG, BMP, TIFF, GIF, PPM/PGM; JPEG and WebP are refused), "
        "8 to 4096 pixels a side, at most 4096x4096 pixels and 8:1 in shape. "
        "The network runs at the model's size: label maps are resized to it (nearest) and --size only resizes "
        "the results. Every input is checked before anything is generated: bad files are listed together "
        "(each with its problem), the run stops with exit status 2 and nothing is written. Writes DIR/<name>.png "
        "(DIR/<name>_<k>.png with several samples) and DIR/index.html, a contact sheet with the colourised "
        "labels, results and style. Models that take object boxes (BachGAN) read --boxes JSON files instead: "
        '{"width": W, "height": H, "boxes": [{"class": "car", "box": [x0, y0, x1, y1]}, ...]} (width/height '
        "optional, boxes in pixels, x1/y1 exclusive); they also write the retrieved layouts each image used "
        "(DIR/<name>_retrieved_<i>.png, class ids) and DIR/<name>.json (boxes, bank entries and scores).",
    )
    parser.add_argument("--model", required=True, help="release model directory, bundled model name (e.g. toy), or "
                        "a folder of official checkpoints (latest_net_G.pth; give --preset)")
    parser.add_argument("--preset", help="layout of official checkpoints: cityscapes, ade20k, ade20k-outdoor, coco, custom")
    add_set_option(parser, "official checkpoints only: layout overrides, e.g. --set model.width=512")
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--labels", help="a label map file, or a folder of them (.png, .bmp, .tif, .gif, .ppm, .pgm)")
    inputs.add_argument("--boxes", help="models that take boxes (BachGAN): a JSON box file, or a folder of them (.json)")
    parser.add_argument("--bank", help="with --boxes: the memory bank to retrieve layouts from (`spadekit bachgan index`; "
                        "default: the one the model carries)")
    parser.add_argument("--choose", help="with --boxes: comma-separated bank entries to use instead of the best-ranked "
                        "ones (their numbers are in DIR/<name>.json)")
    parser.add_argument("--instances", help="instance map(s): a file, or a folder with files named like the labels; "
                        "default for models with an instance channel: the class boundaries")
    parser.add_argument("--style", help="a style photo steering the appearance (models with a style encoder)")
    parser.add_argument("--refine-steps", type=refine_steps_type, default=0,
                        help="refine the style photo's latent for this many steps so that the model redraws the photo "
                        "from its own label map (--style-labels) before drawing the label maps: the results follow "
                        "its colours more closely, for seconds per style photo on a CPU (default 0: the encoder's "
                        "latent as it is; 100 is a good value; at most 10000)")
    parser.add_argument("--style-labels", help="with --refine-steps: the style photo's own label map (same size as the photo)")
    parser.add_argument("--style-instances", help="with --refine-steps: the style photo's instance map (default: its class boundaries)")
    parser.add_argument("--num-samples", type=int, default=1, help="images per label map or box file (default 1; they differ "
                        "for VAE models, and with --boxes each uses the next best retrieved layouts)")
    parser.add_argument("--seed", type=seed_type, default=0,
                        help="sample k uses seed+k (default 0; seeds lie in 0..2**63-1): same seed, same bytes")
    parser.add_argument("--size", help="WxH to resize the results to (the network itself runs at the model size; "
                        "8..4096 pixels a side, 8:1 at most)")
    parser.add_argument("--out", required=True, help="output folder")
    add_device_option(parser)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="fp32 (default), bf16 or fp16 (GPUs)")
    parser.add_argument("--no-fast", dest="fast", action="store_false", help="use the plain generator instead of the optimised one")
    parser.set_defaults(handler=run)


def _list(path: Path, what: str) -> list[Path]:
    """The maps of a folder (lossy files included, so they are refused with a reason, not skipped)."""
    from spadekit.data.inputs import LABEL_SUFFIXES, LOSSY_SUFFIXES
    from spadekit.errors import DataError

    if path.is_dir():
        suffixes = LABEL_SUFFIXES + LOSSY_SUFFIXES
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
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


def check_inputs(pipeline, labels: list[Path], instances: list[Path | None]) -> None:
    """Read and validate every label and instance map; one DataError listing every bad file (up to
    :data:`MAX_REPORTED`), so a folder is fixed in one go."""
    from spadekit.data.label_maps import image_to_ids, read_label_map
    from spadekit.errors import DataError

    problems: list[str] = []
    for label, instance in zip(labels, instances):
        try:
            pipeline.labels_from_image(read_label_map(label), source=str(label))
        except DataError as exc:
            problems.append(str(exc))
        if instance is not None:
            try:
                image_to_ids(read_label_map(instance, what="instance map"), None, str(instance), "instance map")
            except DataError as exc:
                problems.append(str(exc))
    if not problems:
        return
    if len(problems) == 1:
        raise DataError(problems[0])
    lines = [f"  {p}" for p in problems[:MAX_REPORTED]]
    if len(problems) > MAX_REPORTED:
        lines.append(f"  ... and {len(problems) - MAX_REPORTED} more")
    raise DataError(f"{len(problems)} input files are unusable (nothing was written):\n" + "\n".join(lines))


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from spadekit.commands._options import pick_device
    from spadekit.data.inputs import check_seed, parse_size
    from spadekit.data.label_maps import read_label_map, read_style_image
    from spadekit.demo import Cell, Row, colorize, save_images, write_gallery
    from spadekit.errors import ConfigError, DataError
    from spadekit.inference import Pipeline
    from spadekit.release import resolve_model_path
    from spadekit.style_refine import check_refine_request

    # Options first: a bad size or seed is refused before a model is loaded or a file is read.
    if args.num_samples < 1:
        raise ConfigError("--num-samples must be >= 1")
    check_seed(args.seed, "--seed", count=args.num_samples)
    out_size = parse_size(args.size, "--size") if args.size else None
    resolve_model_path(args.model)  # a missing model is named before the inputs are read
    if args.boxes is None and (args.bank or args.choose):
        raise ConfigError("--bank and --choose go with --boxes")
    refine_steps = args.refine_steps
    check_refine_request(refine_steps, bool(args.style), bool(args.style_labels), "--refine-steps", "--style", "--style-labels")
    if args.style_instances and not args.style_labels:
        raise ConfigError("--style-instances goes with --style-labels")
    if args.boxes is not None:
        if args.instances or args.style:
            raise ConfigError("--instances and --style go with --labels, not --boxes")
        return run_boxes(args, out_size)
    labels = _list(Path(args.labels), "label maps")
    instances = _pair_instances(labels, args.instances)
    stems: dict[str, Path] = {}
    for path in labels:
        if path.stem in stems:
            raise DataError(f"{path}: same name as {stems[path.stem]} (outputs would collide)")
        stems[path.stem] = path
    device = pick_device(args.device)
    pipeline = Pipeline.from_pretrained(
        args.model, device=device, dtype=getattr(torch, DTYPES[args.dtype]), fast=args.fast, preset=args.preset,
        overrides=args.overrides or None,
    )

    # Check every input first: a bad file stops the run before anything is written.
    style = None
    if args.style:
        if not pipeline.has_encoder:
            raise DataError(
                f"{args.style}: this model has no style encoder (trained without a VAE or released without "
                "encoder.safetensors), so it cannot take a style image"
            )
        style = read_style_image(args.style)
        pipeline.encode_style(style, source=args.style)
    check_inputs(pipeline, labels, instances)
    if style is not None and refine_steps > 0:
        print(f"refining the style of {args.style} ({refine_steps} steps)")
        # Refined once here, then drawn on every label map.
        code = pipeline.refine_style(style, args.style_labels, args.style_instances, refine_steps, source=args.style)
    else:
        code = style

    out = Path(args.out)
    colors = pipeline.palette.colors
    rows: list[Row] = []
    if style is not None:
        save_images({out / "sheet" / "style.png": _thumbnail(style)})
        rows.append(Row("Style", [Cell("sheet/style.png", Path(args.style).name)]))
    written = 0
    for label, instance in tqdm(list(zip(labels, instances)), desc="synthesize", unit="map", disable=len(labels) < 2):
        ids = pipeline.labels_from_image(read_label_map(label), source=str(label))
        inst = read_label_map(instance, what="instance map") if instance is not None else None
        images = pipeline(ids, inst, style=code, seed=args.seed, num_samples=args.num_samples)
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


def _box_files(path: Path) -> list[Path]:
    from spadekit.errors import DataError

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".json")
        if not files:
            raise DataError(f"{path}: no box files found (looked for .json)")
        return files
    if not path.exists():
        raise DataError(f"{path}: file not found")
    return [path]


def _choices(text: str | None) -> list[int] | None:
    from spadekit.errors import ConfigError

    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--choose must be comma-separated bank entry numbers, got {text!r}") from None


def _boxes_picture(result, colors):
    """The painted boxes in the model's colours, each box outlined."""
    from PIL import ImageDraw

    from spadekit.demo import colorize

    picture = colorize(result.box_map, colors)
    draw = ImageDraw.Draw(picture)
    for box in result.boxes:
        draw.rectangle([box.x0, box.y0, box.x1 - 1, box.y1 - 1], outline=(0, 0, 0))
    return picture


def run_boxes(args: argparse.Namespace, out_size) -> int:
    """``--boxes``: every box file and the bank are checked first; then one image (and the retrieved
    layouts it used) per file and sample."""
    import json

    import torch
    from PIL import Image
    from tqdm import tqdm

    from spadekit.commands._options import pick_device
    from spadekit.demo import Cell, Row, colorize, save_images, write_gallery
    from spadekit.errors import DataError
    from spadekit.inference import Pipeline
    from spadekit.io import atomic_write_text

    files = _box_files(Path(args.boxes))
    stems: dict[str, Path] = {}
    for path in files:
        if path.stem in stems:
            raise DataError(f"{path}: same name as {stems[path.stem]} (outputs would collide)")
        stems[path.stem] = path
    choose = _choices(args.choose)
    device = pick_device(args.device)
    pipeline = Pipeline.from_pretrained(
        args.model, device=device, dtype=getattr(torch, DTYPES[args.dtype]), fast=args.fast, preset=args.preset,
        overrides=args.overrides or None,
    )
    if not pipeline.takes_boxes:
        raise DataError(f"{args.boxes}: this {pipeline.model.method.title} model takes label maps (--labels), not boxes")
    conditioner = pipeline.box_conditioner
    # Check everything first: bad boxes or a bad bank stop the run before anything is written.
    conditioner.bank(args.bank)
    problems = []
    for path in files:
        try:
            conditioner.parse(path)
        except DataError as exc:
            problems.append(str(exc))
    if not problems:  # the bank's size and --choose, checked on the first scene
        conditioner.plan(files[0], num_samples=args.num_samples, bank=args.bank, choose=choose, source=str(files[0]))
    if len(problems) == 1:
        raise DataError(problems[0])
    if problems:
        lines = [f"  {p}" for p in problems[:MAX_REPORTED]] + ([f"  ... and {len(problems) - MAX_REPORTED} more"] if len(problems) > MAX_REPORTED else [])
        raise DataError(f"{len(problems)} box files are unusable (nothing was written):\n" + "\n".join(lines))

    out = Path(args.out)
    colors = pipeline.palette.colors
    rows: list[Row] = []
    written = 0
    for path in tqdm(files, desc="synthesize", unit="scene", disable=len(files) < 2):
        result = pipeline.from_boxes(path, bank=args.bank, choose=choose, seed=args.seed, num_samples=args.num_samples,
                                     source=str(path))
        images = [im.resize(out_size, _lanczos()) for im in result.images] if out_size is not None else result.images
        stem = path.stem
        many = args.num_samples > 1
        pictures = {out / "sheet" / f"{stem}_boxes.png": _boxes_picture(result, colors)}
        cells = [Cell(f"sheet/{stem}_boxes.png", "boxes")]
        samples = []
        for j, image in enumerate(images):
            tag = f"{stem}_{j}" if many else stem
            pictures[out / f"{tag}.png"] = image
            composed = result.composed(j)
            retrieved = []
            for i, (layout, match) in enumerate(zip(result.layouts[j], result.used[j])):
                ids_name = f"{tag}_retrieved_{i}.png"
                array = layout.numpy()
                pictures[out / ids_name] = Image.fromarray(array.astype("uint8") if int(array.max(initial=0)) < 256 else array.astype("int32"))
                pictures[out / "sheet" / f"{tag}_layout_{i}.png"] = colorize(composed[i], colors)
                cells.append(Cell(f"sheet/{tag}_layout_{i}.png", f"retrieved #{match.index} ({match.score:.2f})"))
                retrieved.append({"file": ids_name, "index": match.index, "name": match.name, "score": match.score})
            cells.append(Cell(f"{tag}.png", f"result (seed {args.seed + j})" if pipeline.uses_latent else "result"))
            samples.append({"image": f"{tag}.png", "retrieved": retrieved})
        save_images(pictures)
        record = {
            "boxes": [{"class": pipeline.class_names[b.class_id] if b.class_id < len(pipeline.class_names) else b.class_id,
                       "box": [b.x0, b.y0, b.x1, b.y1]} for b in result.boxes],
            "width": pipeline.size[0], "height": pipeline.size[1], "bank": result.bank, "seed": args.seed,
            "samples": samples,
            "candidates": [{"index": m.index, "name": m.name, "score": m.score} for m in result.candidates],
        }
        atomic_write_text(out / f"{stem}.json", json.dumps(record, indent=2) + "\n")
        written += len(images)
        rows.append(Row(path.name, cells, note="retrieved layouts as the generator sees them: the boxes pasted in, "
                        "the retrieved objects removed (black)"))
    w, h = pipeline.size
    note = f"model {args.model} ({w}x{h}{', resized to %dx%d' % out_size if out_size else ''}), seed {args.seed}"
    index = write_gallery(out, "spadekit synthesize (boxes)", rows, note)
    print(f"wrote {written} image(s) to {out} and {index}")
    return 0


def _lanczos():
    from PIL import Image

    return Image.Resampling.LANCZOS


def _thumbnail(image):
    image = image.convert("RGB").copy()
    image.thumbnail((512, 512))
    return image
