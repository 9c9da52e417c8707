"""Methods side by side: one run, one size, one machine (``spadekit bench --compare``).

Every method is built from its preset for one dataset (``spade`` → ``coco``, ``clade`` →
``clade-coco``, ...), optionally at another size, with random weights (timing does not depend on
them), and timed on its inference path as :class:`~spadekit.inference.Pipeline` runs it (the
method's fast path where it has one). The methods run in interleaved rounds, so a change of
machine load hits all of them alike, and the report says what the load was.

Reported per method: median seconds per batch and images/s, the ratio of images/s to SPADE's
(fast path) in the same run, FLOPs per image of the network as defined (convolutions and matrix
products, 2·MACs, counted on the meta device: no compute) and of the path actually timed (which
replaces some products by gathers), peak memory of one batch (see :func:`spadekit.bench.peak_memory`)
and the parameter count.
"""

from __future__ import annotations

import os
import platform
import statistics

import torch

from spadekit.errors import ConfigError


def preset_for(method: str, dataset: str) -> str:
    """The preset of ``method`` for ``dataset`` (SPADE's presets carry the bare dataset name)."""
    from spadekit.config import list_presets

    name = dataset if method == "spade" else f"{method}-{dataset}"
    if name not in list_presets():
        known = sorted(p for p in list_presets() if p == dataset or p.endswith(f"-{dataset}"))
        raise ConfigError(f"--compare: method {method!r} has no preset for {dataset!r} ({name}); presets for it: "
                          f"{', '.join(known) or 'none'}")
    return name


def size_overrides(size: tuple[int, int] | None) -> list[str]:
    return [] if size is None else [f"model.width={size[0]}", f"model.aspect_ratio={size[0] / size[1]!r}"]


def network_flops(model, index: torch.Tensor, edges: torch.Tensor | None, z: torch.Tensor | None) -> int:
    """FLOPs of one image through the generator as defined, counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    from spadekit.inference import one_hot
    from spadekit.methods import build_networks

    m = model.config.model
    with torch.device("meta"):
        generator = build_networks(model.config, False)["generator"].eval()
        semantics = one_hot(index[:1].to("meta"), m.label_nc + int(m.contain_dontcare), None, torch.float32)
        if edges is not None:
            semantics = torch.cat([semantics, torch.zeros(1, 1, *semantics.shape[-2:])], dim=1)
        extras = {name: torch.zeros(1, c, *semantics.shape[-2:]) for name, c in getattr(generator, "extra_inputs", {}).items()}
        with FlopCounterMode(display=False) as counter:
            generator(semantics, z[:1].to("meta") if z is not None else None, **extras)
    return int(counter.get_total_flops())


def compare_methods(
    methods: list[str],
    dataset: str = "coco",
    size: tuple[int, int] | None = None,
    batch: int = 1,
    iters: int = 3,
    warmup: int = 1,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict:
    """Build ``methods`` from their presets for ``dataset`` (at ``size``) with random weights and time
    them side by side (:func:`compare_models`); returns the JSON-ready report."""
    from spadekit.config import load_config
    from spadekit.methods import build_networks, get_method
    from spadekit.release import SpadeModel

    if not methods:
        raise ConfigError("--compare: name at least one method, e.g. spade,clade,asapnet")
    for name in methods:
        get_method(name)
    models = {}
    for name in methods:
        preset = preset_for(name, dataset)
        torch.manual_seed(0)
        config = load_config(preset, size_overrides(size))
        models[name] = SpadeModel(config=config, generator=build_networks(config, init=False)["generator"]).eval()
    report = compare_models(models, batch, iters, warmup, device, progress)
    report["dataset"] = dataset
    return report


def compare_models(
    models: dict,
    batch: int = 1,
    iters: int = 3,
    warmup: int = 1,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict:
    """Time release models (by name; all of one output size) side by side on their Pipeline paths.
    The name ``spade`` is the reference of the ratios."""
    from spadekit.bench import bench_inputs, count_flops, peak_memory, time_interleaved
    from spadekit.inference import Pipeline

    device = torch.device(device)
    report: dict = {
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "dataset": None,
        "batch": batch,
        "iters": iters,
        "load_average_before": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    sizes = {tuple(model.output_size) for model in models.values()}
    if len(sizes) != 1:
        raise ConfigError(f"--compare: the models make different sizes ({sizes}); give --size WxH")
    report["size"] = list(sizes.pop())
    runs: dict[str, dict] = {}
    calls = {}
    for name, model in models.items():
        pipe = Pipeline(model, device=device, fast=True, batch_size=batch)
        index, edges, z = bench_inputs(model, batch)
        index = index.to(device)
        edges = edges.to(device) if edges is not None else None
        calls[name] = lambda p=pipe, i=index, e=edges, zz=z: p.generate(i, e, zz)
        runs[name] = {
            "preset": model.config.preset,
            "method": model.config.method,
            "path": "fast" if pipe.fast else "plain",
            "generator_parameters": sum(p.numel() for p in model.generator.parameters()),
            "flops_per_image": network_flops(model, index.cpu(), edges, z),
            "seconds_per_batch": [],
        }
    for name, call in calls.items():
        for _ in range(warmup):
            call()
        runs[name]["path_flops_per_image"] = count_flops(call) / batch
        runs[name]["peak_memory_mib"] = peak_memory(call, device)
    for name, seconds in time_interleaved(calls, iters, device, "bench --compare", progress).items():
        runs[name]["seconds_per_batch"] = seconds
    for r in runs.values():
        r["median_seconds_per_batch"] = statistics.median(r["seconds_per_batch"])
        r["images_per_second"] = batch / r["median_seconds_per_batch"]
    if "spade" in runs:
        base = runs["spade"]
        for r in runs.values():
            r["speed_vs_spade"] = r["images_per_second"] / base["images_per_second"]
            r["flops_vs_spade"] = r["flops_per_image"] / base["flops_per_image"]
    report["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    report["methods"] = runs
    return report


def format_compare(report: dict) -> str:
    """A Markdown table of :func:`compare_methods`'s report."""
    w, h = report["size"]
    load = report.get("load_average_before")
    lines = [
        f"{w}x{h}" + (f" ({report['dataset']} presets)" if report.get("dataset") else "") + f", batch {report['batch']}, fp32, {report['device']} "
        f"({report['threads']} threads of {report['cores']} cores), torch {report['torch']}, median of {report['iters']}"
        + (f"; load average {load[0]:.1f} before, {report['load_average_after'][0]:.1f} after" if load else ""),
        "",
        "| method | path | img/s | s/img | vs SPADE fast | GFLOP/img (network) | GFLOP/img (path) | peak MiB | params |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["methods"].items():
        memory = f"{r['peak_memory_mib']:.0f}" if r.get("peak_memory_mib") is not None else "n/a"
        ratio = f"{r['speed_vs_spade']:.2f}x" if "speed_vs_spade" in r else "—"
        lines.append(
            f"| {name} | {r['path']} | {r['images_per_second']:.3f} | {r['median_seconds_per_batch'] / report['batch']:.3f} | "
            f"{ratio} | {r['flops_per_image'] / 1e9:.1f} | {r['path_flops_per_image'] / 1e9:.1f} | {memory} | "
            f"{r['generator_parameters'] / 1e6:.2f}M |"
        )
    return "\n".join(lines)
