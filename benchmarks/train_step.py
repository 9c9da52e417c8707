"""Training-step benchmark: seconds per iteration (one G update + one D update) and peak memory.

Each (preset, size) runs in a fresh subprocess so peak memory is its own: resident set size (RSS)
on CPU, ``torch.cuda.max_memory_allocated`` on GPU. Writes JSON (stdout or ``--out``).

    python benchmarks/train_step.py --tiny                                 # every preset, tiny width
    python benchmarks/train_step.py --presets coco --iterations 2 --batch 1   # full size (slow on CPU)
    python benchmarks/train_step.py --presets toy --data real              # toy as shipped, scenes rendered live

Data: ``synthetic`` (random label maps / photos of the model's size, generated up front, so the
number is the networks' cost) or ``real`` (the preset's own dataset through the real loader; the toy
preset needs no files). The VGG term runs only with ``--vgg`` (it needs the VGG19 weights).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = ["model.ngf=8", "model.ndf=8", "model.spade_hidden=16", "train.batch_size=2"]
"""Tiny size: the test suite's widths and batch, at the smallest width (>= 64 px) the preset's
upsampling mode and aspect ratio allow (Cityscapes: 128 x 64)."""
PRESETS = ["toy", "cityscapes", "ade20k", "ade20k-outdoor", "coco", "custom"]


class SyntheticItems:
    """Random items shaped like the model's training batches: label (1, H, W), [instance], image (3, H, W)."""

    def __init__(self, count: int, label_nc: int, dontcare: bool, instance: bool, size: tuple[int, int], seed: int = 0):
        import torch

        generator = torch.Generator().manual_seed(seed)
        w, h = size
        classes = label_nc + int(dontcare)
        self.items = []
        for index in range(count):
            item = {
                "label": torch.randint(0, classes, (1, h, w), generator=generator),
                "image": torch.rand(3, h, w, generator=generator) * 2 - 1,
                "path": f"synthetic/{index}",
            }
            if instance:
                item["instance"] = torch.randint(0, 8, (1, h, w), generator=generator)
            self.items.append(item)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


def measure(args: argparse.Namespace) -> dict:
    """One (preset, size) in this process."""
    import torch

    from spadekit.config import load_config
    from spadekit.training.distributed import DistEnv, resolve_device
    from spadekit.training.setup import build_trainer, open_training_data
    from spadekit.training.trainer import count_parameters

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = list(TINY if args.size == "tiny" else []) + list(args.set or [])
    if not args.vgg:
        overrides.append("loss.lambda_vgg=0")
    if args.size == "tiny":
        overrides += _tiny_size(load_config(args.preset))
    config = load_config(args.preset, overrides)
    if args.batch:
        config.train.batch_size = args.batch
    for field in ("precision", "channels_last", "compile"):
        value = getattr(args, field)
        if value is not None:
            setattr(config.train, field, value)
    device = resolve_device(args.device)
    batch = config.train.batch_size
    steps = args.warmup + args.iterations
    m = config.model
    if args.data == "real":
        dataset = open_training_data(config)
    else:
        dataset = SyntheticItems(batch * steps, m.label_nc, m.contain_dontcare, m.use_instance, m.output_size)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = build_trainer(
            config, Path(run_dir), env=DistEnv(device=device), steps=steps, dataset=dataset, preview=[],
            progress=False, tensorboard=False, log=lambda _: None,
        )
        trainer.sampler.set_epoch(0)
        batches = iter(trainer.loader)
        times = []
        for step in range(steps):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            trainer.train_step(batches)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if step >= args.warmup:
                times.append(time.perf_counter() - start)
            if step + 1 == trainer.options.steps_per_epoch and step + 1 < steps:
                trainer.sampler.set_epoch(1)
                batches = iter(trainer.loader)
        result = {
            "preset": args.preset,
            "size": args.size,
            "data": args.data,
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "batch": batch,
            "resolution": list(m.output_size),
            "semantic_nc": m.semantic_nc,
            "ngf": m.ngf,
            "vae": m.use_vae,
            "vgg": config.loss.lambda_vgg > 0,
            "precision": config.train.precision,
            "channels_last": config.train.channels_last,
            "compile": config.train.compile,
            "params_G": count_parameters(trainer.networks["generator"]),
            "params_D": count_parameters(trainer.networks["discriminator"]),
            "params_E": count_parameters(trainer.networks.get("encoder")),
            "warmup": args.warmup,
            "iterations": args.iterations,
            "seconds_per_iteration": statistics.median(times),
            "seconds_per_iteration_mean": statistics.fmean(times),
            "seconds_per_iteration_all": times,
            "images_per_second": batch / statistics.median(times),
        }
    if device.type == "cuda":
        result["peak_memory_bytes"] = torch.cuda.max_memory_allocated(device)
        result["peak_memory_kind"] = "torch.cuda.max_memory_allocated"
    else:
        result["peak_memory_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        result["peak_memory_kind"] = "process peak RSS"
    result["torch"] = torch.__version__
    result["load_average_1min"] = os.getloadavg()[0]  # other work on a shared machine skews CPU numbers
    return result


def _tiny_size(config) -> list[str]:
    from spadekit.config import UPSAMPLING_LAYERS

    step = 2 ** UPSAMPLING_LAYERS[config.model.upsampling]
    width = step
    while width < 64 or round((width // step) / config.model.aspect_ratio) < 1:
        width *= 2
    return [f"model.width={width}", f"data.crop_size={width}", f"data.load_size={width}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=PRESETS, help="presets to measure (default: all)")
    parser.add_argument("--tiny", action="store_true", help="tiny width only (ngf 8, 64 px)")
    parser.add_argument("--full", action="store_true", help="full size only (the preset as shipped)")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations first (default 1)")
    parser.add_argument("--batch", type=int, help="global batch (default: the preset's train.batch_size)")
    parser.add_argument("--data", choices=["synthetic", "real"], default="synthetic", help="where batches come from")
    parser.add_argument("--vgg", action="store_true", help="include the VGG19 perceptual loss (needs its weights)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], help="override train.precision")
    parser.add_argument("--channels-last", dest="channels_last", action="store_true", default=None)
    parser.add_argument("--compile", action="store_true", default=None, help="torch.compile the networks")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config override")
    parser.add_argument("--out", type=Path, help="write the JSON here (default: stdout)")
    parser.add_argument("--worker", nargs=2, metavar=("PRESET", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        args.preset, args.size = args.worker
        print(json.dumps(measure(args)))
        return

    sizes = ["tiny"] if args.tiny else ["full"] if args.full else ["tiny", "full"]
    results = []
    passthrough = [a for a in sys.argv[1:]]
    for preset in args.presets:
        for size in sizes:
            cmd = [sys.executable, __file__, "--worker", preset, size] + _strip(passthrough)
            print(f"measuring {preset} ({size}) ...", file=sys.stderr, flush=True)
            done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
            if done.returncode != 0:
                results.append({"preset": preset, "size": size, "error": done.stderr.strip().splitlines()[-1:]})
                continue
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            r = results[-1]
            print(
                f"  {r['seconds_per_iteration']:.3f} s/it, peak {r['peak_memory_bytes'] / 2**30:.2f} GiB ({r['peak_memory_kind']})",
                file=sys.stderr,
            )
    text = json.dumps({"benchmark": "train_step", "results": results}, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)


def _strip(argv: list[str]) -> list[str]:
    """The options a worker shares with the parent (everything but the preset/size selection and --out)."""
    out, skip = [], False
    for index, arg in enumerate(argv):
        if skip:
            if arg.startswith("--"):
                skip = False
            else:
                continue
        if arg in ("--presets", "--out"):
            skip = True
            continue
        if arg in ("--tiny", "--full"):
            continue
        out.append(arg)
    return out


if __name__ == "__main__":
    main()
