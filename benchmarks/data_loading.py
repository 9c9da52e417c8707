"""Data-loading throughput (items/s) of every dataset format, on generated tiny trees.

Builds small datasets in a temporary folder in the Cityscapes, ADE20K, COCO-Stuff and folder layouts
(photos are toy scenes, so the decoders see realistic content), plus the in-memory toy scenes, and
times a full pass of ``make_loader`` over each at training-time preprocessing, for every requested
``num_workers``. Writes JSON::

    python benchmarks/data_loading.py --items 64 --workers 0 2 --out data_loading.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from spadekit.config import load_config
from spadekit.data import make_loader, open_dataset
from spadekit.data.toy import render_scene, scene_seed, write_toy_dataset

# (preset, source width, source height); the sizes are those of the real datasets' photos.
CASES = [
    ("cityscapes", 1024, 512),
    ("ade20k", 512, 384),
    ("coco", 640, 480),
    ("custom", 512, 512),
]


def _scene(i: int, w: int, h: int):
    s = render_scene(scene_seed(0, i), (w, h))
    return s.label, s.instance, s.image


def build_tree(preset: str, root: Path, n: int, w: int, h: int) -> None:
    """Write ``n`` training samples of ``preset``'s layout under ``root``."""
    for i in range(n):
        label, instance, image = _scene(i, w, h)
        if preset == "cityscapes":
            stem = f"city_{i:06d}_000019"
            gt = root / "gtFine" / "train" / "city"
            left = root / "leftImg8bit" / "train" / "city"
            gt.mkdir(parents=True, exist_ok=True)
            left.mkdir(parents=True, exist_ok=True)
            Image.fromarray(label).save(gt / f"{stem}_gtFine_labelIds.png")
            Image.fromarray(instance.astype(np.uint16) * 100).save(gt / f"{stem}_gtFine_instanceIds.png")
            Image.fromarray(image).save(left / f"{stem}_leftImg8bit.png")
        elif preset == "ade20k":
            for sub in ("images/training", "annotations/training"):
                (root / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(label).save(root / "annotations/training" / f"ADE_train_{i + 1:08d}.png")
            Image.fromarray(image).save(root / "images/training" / f"ADE_train_{i + 1:08d}.jpg", quality=90)
        elif preset == "coco":
            for sub in ("train_label", "train_img", "train_inst"):
                (root / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(label).save(root / "train_label" / f"{i:012d}.png")
            Image.fromarray(instance).save(root / "train_inst" / f"{i:012d}.png")
            Image.fromarray(image).save(root / "train_img" / f"{i:012d}.jpg", quality=90)
        else:
            for sub in ("labels", "images"):
                (root / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(label).save(root / "labels" / f"{i:06d}.png")
            Image.fromarray(image).save(root / "images" / f"{i:06d}.png")


def time_pass(dataset, workers: int, batch_size: int, preset: str) -> tuple[float, float]:
    """Items/s of the first epoch (includes starting the workers) and of the second (workers warm)."""
    data = load_config(preset).data
    data.num_workers = workers
    loader = make_loader(dataset, batch_size, shuffle=True, data=data, generator=torch.Generator().manual_seed(0))
    rates = []
    for _ in range(2):
        start = time.perf_counter()
        count = sum(batch["image"].shape[0] for batch in loader)
        rates.append(count / (time.perf_counter() - start))
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=64, help="samples per format (default 64)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="num_workers values to time (default 0 2)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size (default 8)")
    parser.add_argument("--toy-scenes", type=int, default=1000, help="scenes for the `spadekit toy make` timing (default 1000; 0 skips)")
    parser.add_argument("--out", default="data_loading.json", help="JSON file to write (default data_loading.json)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset, w, h in CASES:
            root = Path(tmp) / preset
            build_tree(preset, root, args.items, w, h)
            extra = {"model": {"label_nc": 13}} if preset == "custom" else {}
            config = load_config(preset, extra=extra)
            dataset = open_dataset(root, preset, "train", data=config.data, model=config.model)
            for workers in args.workers:
                first, warm = time_pass(dataset, workers, args.batch_size, preset)
                results.append(
                    {"format": config.data.format, "preset": preset, "source_size": [w, h], "workers": workers,
                     "items_per_s": round(warm, 1), "items_per_s_first_epoch": round(first, 1)}
                )
                print(f"{config.data.format:<12} {w}x{h:<5} workers={workers}: {warm:8.1f} items/s (first epoch {first:.1f})", flush=True)
        toy = load_config("toy")
        toy.data.toy_scenes = args.items
        dataset = open_dataset(None, "toy", "train", data=toy.data, model=toy.model)
        for workers in args.workers:
            first, warm = time_pass(dataset, workers, args.batch_size, "toy")
            results.append(
                {"format": "toy (in memory)", "preset": "toy", "source_size": [128, 128], "workers": workers,
                 "items_per_s": round(warm, 1), "items_per_s_first_epoch": round(first, 1)}
            )
            print(f"{'toy (memory)':<12} 128x128   workers={workers}: {warm:8.1f} items/s (first epoch {first:.1f})", flush=True)

    toy_generation = None
    if args.toy_scenes > 0:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            write_toy_dataset(Path(tmp) / "toy", args.toy_scenes, size=128, progress=False)
            seconds = time.perf_counter() - start
        toy_generation = {"scenes": args.toy_scenes, "size": 128, "seconds": round(seconds, 2), "target_seconds_per_1000": 60,
                          "scenes_per_s": round(args.toy_scenes / seconds, 1), "processes": 1}
        print(f"toy make: {args.toy_scenes} scenes of 128x128 in {seconds:.1f} s (one process, files included)", flush=True)

    report = {
        "benchmark": "data_loading",
        "items_per_format": args.items,
        "batch_size": args.batch_size,
        "preprocess": "each preset's training preprocessing (random crop + flip)",
        "items_per_s": "second epoch (persistent workers already started); items_per_s_first_epoch includes worker start-up",
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "torch": torch.__version__,
        "results": results,
        "toy_generation": toy_generation,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
