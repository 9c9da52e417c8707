"""``spadekit bench``: time inference, plain and fast paths side by side."""

from __future__ import annotations

import argparse

from spadekit.commands._options import add_device_option
from spadekit.commands.synthesize import DTYPES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="time inference: images/s, memory, FLOP/s vs this machine's peak (plain vs fast path)",
        description="Time the generator on one batch of toy-scene layouts (ids spread over the model's classes): "
        "the plain path (the network as trained) and the fast path (spectral/batch norm folded, gathered SPADE "
        "convolutions, channels-last) interleaved, with images/s, peak memory, FLOPs (2 x MACs of convolutions and "
        "matrix products) and achieved FLOP/s against the peak of a large fp32 matrix product measured by the same "
        "run, and the max abs difference of the two outputs.",
    )
    parser.add_argument("--model", help="release model directory, bundled model name or official checkpoint folder")
    parser.add_argument("--preset", help="with --model: layout of official checkpoints; without: build this preset "
                        "(e.g. coco) with random weights for full-size timing "
                        "(PyTorch's default init, batch-norm statistics calibrated by one pass over the bench inputs)")
    parser.add_argument("--size", help="WxH to run at (default: the model size; other sizes need a non-VAE model; "
                        "within the picture limits: 8..4096 pixels a side)")
    parser.add_argument("--batch", type=int, default=1, help="images per forward pass (default 1)")
    parser.add_argument("--iters", type=int, default=5, help="timed iterations per path (default 5; the median is reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations per path first (default 1)")
    add_device_option(parser)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="weights and activations (bf16/fp16 for GPUs)")
    parser.add_argument("--compile", action="store_true", help="also torch.compile the fast path")
    parser.add_argument("--paths", default="plain,fast", help="comma-separated paths to time: plain, fast (default both)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--compare", metavar="METHODS",
                        help="time these methods side by side instead (comma-separated, e.g. spade,clade,asapnet): each "
                        "built from its preset for --preset-size with random weights, on its inference path (fast where "
                        "it has one), interleaved, with img/s, the ratio to SPADE's fast path, FLOPs per image and peak memory")
    parser.add_argument("--preset-size", default="coco", metavar="DATASET",
                        help="with --compare: the dataset whose presets give the size and classes (coco: 256x256, "
                        "cityscapes: 512x256, ...; default coco); --size overrides the size")
    parser.add_argument("--json", dest="json_out", help="write the full report as JSON here")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from spadekit.bench import format_report, run_bench
    from spadekit.commands._options import pick_device
    from spadekit.data.inputs import parse_size
    from spadekit.errors import ConfigError
    from spadekit.inference import model_at_size
    from spadekit.io import atomic_write_text

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.compare:
        return _compare(args)
    paths = tuple(p.strip() for p in args.paths.split(",") if p.strip())
    if not paths or any(p not in ("plain", "fast") for p in paths):
        raise ConfigError(f"--paths {args.paths!r}: choose from plain, fast")
    if args.batch < 1 or args.iters < 1:
        raise ConfigError("--batch and --iters must be >= 1")
    size = parse_size(args.size, "--size") if args.size else None
    device = pick_device(args.device)
    model = _load(args)
    if size:
        model = model_at_size(model, size)
    report = run_bench(
        model,
        batch=args.batch,
        iters=args.iters,
        warmup=args.warmup,
        device=device,
        dtype=getattr(torch, DTYPES[args.dtype]),
        compile=args.compile,
        paths=paths,
    )
    report["model"] = args.model or f"preset {args.preset} (random weights)"
    print(format_report(report))
    if args.json_out:
        atomic_write_text(Path(args.json_out), json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json_out}")
    return 0


def _load(args: argparse.Namespace):
    from spadekit.errors import ConfigError
    from spadekit.release import layout_to_image, load_model

    if args.model:
        loaded = load_model(args.model, preset=args.preset)
        model = layout_to_image(loaded)
        if model is not loaded:
            print(f"{args.model} makes layouts: timing its layout->image model ({model.config.preset})")
        return model
    if not args.preset:
        raise ConfigError("give --model, or --preset to time a preset with random weights")
    from spadekit.bench import random_model

    print(f"building preset {args.preset!r} with random weights (batch-norm statistics calibrated on the bench inputs)")
    return random_model(args.preset, calibration_batch=max(2, args.batch))


def _compare(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from spadekit.bench_compare import compare_methods, format_compare
    from spadekit.commands._options import pick_device
    from spadekit.data.inputs import parse_size
    from spadekit.errors import ConfigError
    from spadekit.io import atomic_write_text

    if args.model or args.preset:
        raise ConfigError("--compare builds each method from its preset for --preset-size: drop --model / --preset")
    if args.batch < 1 or args.iters < 1:
        raise ConfigError("--batch and --iters must be >= 1")
    size = parse_size(args.size, "--size") if args.size else None
    methods = [m.strip() for m in args.compare.split(",") if m.strip()]
    report = compare_methods(methods, args.preset_size, size, args.batch, args.iters, args.warmup, pick_device(args.device))
    print(format_compare(report))
    if args.json_out:
        atomic_write_text(Path(args.json_out), json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json_out}")
    return 0
