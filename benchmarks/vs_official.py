"""spadekit against the official NVlabs/SPADE code: same weights, same input, same process.

    python benchmarks/vs_official.py --official PATH_TO_NVLABS_SPADE_CHECKOUT [--vgg] [--rounds 3] [--json out.json]

The official code is imported from the checkout you give (spadekit contains none of it; the
checkout needs ``models/networks/sync_batchnorm``, i.e. ``git clone --recursive``; when the
official requirement ``dill`` is not installed, ``pickle`` stands in for it: this script never
pickles). Without a usable path the script says so and exits with status 0.

What runs (COCO-Stuff preset, full size, 256×256, fp32, ``--batch`` real COCO-Stuff images from
``--data``, test-time preprocessing):

Round r runs both sides on scene r mod ``--scenes`` (distinct images: how much of an image lies
near class boundaries varies, and the band-sparse modulation depends on it).

* **inference**: the official generator (``Pix2PixModel(..., mode='inference')``, eval mode)
  against spadekit's :class:`~spadekit.inference.Pipeline` (fast path), on the same weights
  (PyTorch's default init with batch-norm statistics calibrated by one pass, so outputs are
  neither flat nor saturated and the max difference means something).
* **training**: one official iteration (``Pix2PixTrainer.run_generator_one_step`` then
  ``run_discriminator_one_step``) against one :meth:`spadekit Trainer.train_step` (default
  options: the D step reuses the G step's fakes), both starting from the same G and D weights.
  ``--vgg`` adds the VGG19 perceptual term to both (the ImageNet weights from the torch cache
  when present, else one random set shared by both sides: the cost is the same).

The paths alternate round by round so a change of machine load hits both. Reported: seconds
(median over rounds, after a warm-up), ratio official/spadekit, peak extra memory of one call
(:func:`spadekit.bench.peak_memory`: resident set on CPU, ``max_memory_allocated`` on CUDA) and
its ratio, the max output difference (inference) and the first iteration's G losses of both
(training), the band fractions of the scenes, the machine's load average before and after every
round, threads and versions. Written as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from spadekit.io import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / "tests" / "assets" / "data" / "coco_stuff_samples"
VGG19_FILE = "vgg19-dcbb9e9d.pth"


def usable_checkout(path: Path | None) -> str | None:
    """None when ``path`` looks like an NVlabs/SPADE checkout, else why not."""
    if path is None:
        return "no --official path given"
    needed = ["models/pix2pix_model.py", "trainers/pix2pix_trainer.py", "options/train_options.py", "models/networks/sync_batchnorm/__init__.py"]
    missing = [n for n in needed if not (path / n).is_file()]
    if missing:
        return f"{path} is not a complete NVlabs/SPADE checkout (missing {', '.join(missing)}; clone with --recursive)"
    return None


@contextlib.contextmanager
def _quiet():
    with contextlib.redirect_stdout(io.StringIO()):
        yield


@contextlib.contextmanager
def _patched(obj, name: str, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


class Official:
    """The official trainer and model, imported from a checkout, built from its own option parser."""

    def __init__(self, root: Path, arguments: list[str], device, vgg_state: dict | None):
        import torch
        import torchvision

        sys.path.insert(0, str(root))
        try:
            import dill  # noqa: F401  (the official util imports it, for files this benchmark never writes)
        except ImportError:
            import pickle

            sys.modules["dill"] = pickle
        from options.train_options import TrainOptions  # noqa: E402  (the user's checkout)

        parser = TrainOptions()
        with _patched(sys, "argv", ["train.py", *arguments]), _quiet():
            opt = parser.gather_options()  # parse() would write option files under ./checkpoints
        opt.isTrain = True
        opt.semantic_nc = opt.label_nc + int(opt.contain_dontcare_label) + int(not opt.no_instance)
        opt.gpu_ids = [device.index or 0] if device.type == "cuda" else []
        if opt.gpu_ids:
            torch.cuda.set_device(opt.gpu_ids[0])
        self.opt = opt
        self.device = device

        plain_vgg19 = torchvision.models.vgg19  # taken before the patch below replaces it

        def vgg19(*_args, **_kwargs):
            net = plain_vgg19(weights=None)
            if vgg_state is not None:
                net.load_state_dict(vgg_state)
            return net

        from trainers.pix2pix_trainer import Pix2PixTrainer  # noqa: E402

        import models.networks.architecture as architecture  # noqa: E402

        # No download (the VGG weights are handed in) and, on a CPU, no .cuda() in VGGLoss.
        no_cuda = (lambda self, *a, **k: self) if device.type != "cuda" else torch.nn.Module.cuda
        with _patched(architecture.torchvision.models, "vgg19", vgg19), _patched(torch.nn.Module, "cuda", no_cuda), _quiet():
            self.trainer = Pix2PixTrainer(opt)
        self.model = self.trainer.pix2pix_model_on_one_gpu

    def data(self, label, instance, image) -> dict:
        """The dict the official dataset yields (label as float ids, don't-care = label_nc)."""
        return {"label": label.float(), "instance": instance.float(), "image": image, "path": ["bench"] * label.shape[0]}

    def iteration(self, label, instance, image) -> dict:
        self.trainer.run_generator_one_step(self.data(label, instance, image))
        self.trainer.run_discriminator_one_step(self.data(label, instance, image))
        return {k: float(v.detach().mean()) for k, v in self.trainer.g_losses.items()}

    def infer(self, label, instance, image):
        import torch

        self.model.eval()
        with torch.no_grad():
            out = self.model(self.data(label, instance, image), mode="inference")
        self.model.train()
        return out


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def load_items(root: Path, count: int, start: int = 0):
    """``count`` COCO-Stuff items from ``start`` (test-time preprocessing: 256×256, no flip), batched."""
    import torch

    from spadekit.config import load_config
    from spadekit.data import open_dataset

    config = load_config("coco")
    # The val split first, then train: a small sample folder has too few of either alone for
    # several batches of 4.
    datasets = []
    for split in ("val", "train"):
        try:
            datasets.append(open_dataset(str(root), preset="coco", split=split, train=False, data=config.data, model=config.model))
        except Exception:  # noqa: BLE001  (a folder may hold one split only)
            continue
    available = [(d, i) for d in datasets for i in range(len(d))]
    if len(available) < start + count:
        raise SystemExit(f"error: {root}: need {start + count} COCO-Stuff samples (train_/val_ img, label, inst folders), "
                         f"found {len(available)}")
    items = [dataset[i] for dataset, i in available[start:start + count]]
    stack = lambda key: torch.stack([it[key] for it in items])  # noqa: E731
    return items, stack("label"), stack("instance"), stack("image")


def vgg_weights(path: str | None):
    """(state dict, description) of the VGG19 the two sides share."""
    import torch
    import torchvision

    candidates = [Path(path)] if path else [Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE]
    for candidate in candidates:
        if candidate.is_file():
            from spadekit.io import safe_torch_load

            return safe_torch_load(candidate), f"ImageNet weights from {candidate.name}"
    torch.manual_seed(0)
    return torchvision.models.vgg19(weights=None).state_dict(), "random weights (no VGG19 file found; the cost is the same)"


def machine(device) -> dict:
    import torch

    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine()),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


class Scene:
    """One batch of real images, in the forms both sides take."""

    def __init__(self, items, label, instance, image, device):
        from spadekit.data.labels import instance_edges

        self.items = items
        self.label, self.instance, self.image = label.to(device), instance.to(device), image.to(device)
        self.index = self.label[:, 0]
        self.edges = instance_edges(self.instance).float()


def alternate(calls: dict, scenes: list[Scene], rounds: int, device, log, what: str) -> tuple[dict, list[float]]:
    """Round r runs every path once on scene r mod len(scenes); returns the times and the load averages."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    loads = []
    for r in range(rounds):
        scene = scenes[r % len(scenes)]
        loads.append(os.getloadavg()[0])
        for name, call in calls.items():
            times[name].append(timed(lambda: call(scene), device))
        log(f"{what} round {r + 1}: " + ", ".join(f"{n} {t[-1]:.3f} s" for n, t in times.items()) + f" (load {loads[-1]:.1f})")
    loads.append(os.getloadavg()[0])
    return times, loads


def summary(times: dict, loads: list[float], memory: dict) -> dict:
    medians = {name: statistics.median(t) for name, t in times.items()}
    result = {
        "seconds": times,
        "median_seconds": medians,
        "speedup": medians["official"] / medians["spadekit"],
        "peak_memory_mib": memory,
        "load_average_1min": loads,
    }
    if memory.get("official") and memory.get("spadekit"):
        result["memory_ratio"] = memory["spadekit"] / memory["official"]
    return result


def run_inference(official: Official, model, scenes: list[Scene], rounds: int, device, log, dtype=None) -> dict:
    import torch

    from spadekit.bench import peak_memory
    from spadekit.inference import Pipeline

    pipeline = Pipeline(model, device=device, dtype=dtype or torch.float32, fast=True, batch_size=scenes[0].index.shape[0])
    calls = {
        "official": lambda s: official.infer(s.label, s.instance, s.image),
        "spadekit": lambda s: pipeline.generate(s.index, s.edges, None),
    }
    differences, stds = [], []
    for scene in scenes:  # warm-up, and the outputs of every scene compared
        outputs = {name: call(scene).float().cpu() for name, call in calls.items()}
        differences.append((outputs["official"] - outputs["spadekit"]).abs().max().item())
        stds.append(float(outputs["official"].std()))
    memory = {name: peak_memory(lambda: call(scenes[0]), device) for name, call in calls.items()}
    times, loads = alternate(calls, scenes, rounds, device, log, "inference")
    result = summary(times, loads, memory)
    result["max_abs_diff"] = max(differences)
    result["output_std"] = min(stds)
    bands = getattr(pipeline.generator, "band_fractions", None)
    if bands is not None:
        result["band_fractions"] = [bands(s.index[i : i + 1], s.edges[i : i + 1]) for s in scenes for i in range(s.index.shape[0])]
    return result


def run_training(official: Official, trainer, scenes: list[Scene], rounds: int, device, log) -> dict:
    from torch.utils.data import default_collate

    from spadekit.bench import peak_memory

    raws = {id(s): default_collate(s.items) for s in scenes}

    def ours(scene: Scene) -> dict:
        terms = trainer.train_step(iter([raws[id(scene)]]))
        return {k: float(v) for k, v in terms.items()}

    def theirs(scene: Scene) -> dict:
        return official.iteration(scene.label, scene.instance, scene.image)

    calls = {"official": theirs, "spadekit": ours}
    # First iteration on the same weights: the G losses must agree. It is also the warm-up.
    first = {name: call(scenes[0]) for name, call in calls.items()}
    memory = {name: peak_memory(lambda: call(scenes[0]), device) for name, call in calls.items()}
    times, loads = alternate(calls, scenes, rounds, device, log, "training")
    result = summary(times, loads, memory)
    names = {"GAN": "G_GAN", "GAN_Feat": "G_feat", "VGG": "G_VGG", "KLD": "KLD"}
    result["first_iteration_G_losses"] = {k: {"official": v, "spadekit": first["spadekit"].get(names.get(k, k))} for k, v in first["official"].items()}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, help="path to a checkout of github.com/NVlabs/SPADE (with submodules)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="COCO-Stuff folder (train_/val_ img, label, inst)")
    parser.add_argument("--batch", type=int, default=1, help="images per call (default 1)")
    parser.add_argument("--scenes", type=int, default=4, help="batches of distinct images; round r uses scene r mod this (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per path, alternating (default 3)")
    parser.add_argument("--parts", default="inference,training", help="inference, training or both (default)")
    parser.add_argument("--vgg", action="store_true", help="train with the VGG19 perceptual loss on both sides")
    parser.add_argument("--vgg-weights", help="torchvision's vgg19-dcbb9e9d.pth (default: the torch cache, else random)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                        help="spadekit's precision (training: train.precision; inference: the pipeline dtype); the official code runs fp32")
    parser.add_argument("--channels-last", action="store_true", help="spadekit trains channels-last (train.channels_last)")
    parser.add_argument("--compile", action="store_true", help="spadekit trains with torch.compile (train.compile)")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)

    problem = usable_checkout(args.official)
    if problem:
        print(f"skipping the comparison with the official code: {problem}")
        return 0

    import torch

    from spadekit.bench import random_model
    from spadekit.config import load_config
    from spadekit.training.distributed import DistEnv
    from spadekit.training.setup import build_trainer

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    log = lambda text: print(text, flush=True)  # noqa: E731
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    scenes = [Scene(*load_items(args.data, args.batch, k * args.batch), device) for k in range(args.scenes)]

    vgg_state, vgg_source = vgg_weights(args.vgg_weights) if args.vgg else (None, None)
    official_args = ["--dataset_mode", "coco", "--dataroot", str(args.data), "--batchSize", str(args.batch)]
    official_args += ["--gpu_ids", "0" if device.type == "cuda" else "-1"]
    if not args.vgg:
        official_args.append("--no_vgg_loss")
    log(f"building the official model from {args.official} ...")
    official = Official(args.official, official_args, device, vgg_state)

    # Shared weights: spadekit's calibrated random COCO generator, the official D's own init.
    model = random_model("coco")
    official.model.netG.load_state_dict(model.generator.state_dict())
    report: dict = {
        "benchmark": "vs_official",
        "official_checkout": str(args.official),
        "preset": "coco",
        "size": list(model.output_size),
        "batch": args.batch,
        "scenes": [[Path(it["path"]).name for it in s.items] for s in scenes],
        "rounds": args.rounds,
        "spadekit_precision": args.precision,
        "spadekit_channels_last": args.channels_last,
        "spadekit_compile": args.compile,
        "official_precision": "fp32",
        "vgg": vgg_source,
        "machine": machine(device),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    model.generator.to(device)
    official.model.to(device)
    if "inference" in parts:
        log("inference ...")
        dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
        report["inference"] = run_inference(official, model, scenes, args.rounds, device, log, dtypes[args.precision])
    if "training" in parts:
        overrides = [f"train.batch_size={args.batch}", "loss.lambda_vgg=" + ("10" if args.vgg else "0"), f"train.precision={args.precision}"]
        overrides += [f"train.channels_last={str(args.channels_last).lower()}", f"train.compile={str(args.compile).lower()}"]
        with tempfile.TemporaryDirectory() as tmp:
            if args.vgg:
                weights = Path(tmp) / VGG19_FILE
                torch.save(vgg_state, weights)
                overrides.append(f"loss.vgg_weights={weights}")
            config = load_config("coco", overrides)
            trainer = build_trainer(
                config, Path(tmp) / "run", env=DistEnv(device=device), steps=10**6, dataset=scenes[0].items, preview=[],
                progress=False, tensorboard=False, log=lambda _: None,
            )
            trainer.networks["generator"].load_state_dict(official.model.netG.state_dict())
            trainer.networks["discriminator"].load_state_dict(official.model.netD.state_dict())
            log("training ...")
            report["training"] = run_training(official, trainer, scenes, args.rounds, device, log)
            del trainer

    for part in ("inference", "training"):
        if part in report:
            r = report[part]
            memory = f", memory {r['memory_ratio']:.2f}x" if "memory_ratio" in r else ""
            extra = f", max abs diff {r['max_abs_diff']:.1e}" if "max_abs_diff" in r else ""
            log(
                f"{part}: official {r['median_seconds']['official']:.3f} s, spadekit {r['median_seconds']['spadekit']:.3f} s "
                f"-> {r['speedup']:.2f}x{memory}{extra} (load {min(r['load_average_1min']):.1f}-{max(r['load_average_1min']):.1f})"
            )
    text = json.dumps(report, indent=2)
    if args.json:
        atomic_write_text(args.json, text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
