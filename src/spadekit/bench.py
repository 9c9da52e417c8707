"""Inference benchmark: the plain generator and the fast one side by side, on the same inputs.

Reported per path: seconds per batch (median of ``iters``, the two paths interleaved so a change
of machine load hits both), images/s, peak memory, FLOPs per image (convolutions and matrix
products, FLOPs = 2·MACs, counted with ``torch.utils.flop_counter.FlopCounterMode``) and the
achieved FLOP/s against this machine's peak, measured by the same run with a large fp32 matrix
product (the best of runs before, between and after the timed rounds). The fast path also gets an *effective* FLOP/s: the plain path's FLOPs over the fast
path's time (the work it replaces). The max abs difference of the two outputs is reported too.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated``; on CPU the process's peak resident set
during one batch (sampled every 2 ms, after returning freed memory to the OS), minus the resident
set before it.
"""

from __future__ import annotations

import ctypes
import os
import platform
import statistics
import threading
import time
from typing import Callable

import numpy as np
import torch

from spadekit.release import SpadeModel


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_peak_flops(device: torch.device, n: int = 2048, seconds: float = 1.5) -> float:
    """FLOP/s of an n×n fp32 matrix product (the machine's practical peak), best of a short run."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    torch.mm(a, b)
    _sync(device)
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    return 2 * n**3 / best


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs (2·MACs) of the convolutions and matrix products ``fn`` runs."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _release_memory() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_memory(fn: Callable[[], object], device: torch.device) -> float | None:
    """Peak extra memory in MiB while ``fn`` runs (see the module docstring), None where unknown."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    if not os.path.exists("/proc/self/statm"):
        return None
    _release_memory()
    before = _rss_bytes()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        fn()
    finally:
        done.set()
        thread.join()
    peak[0] = max(peak[0], _rss_bytes())
    return (peak[0] - before) / 2**20


def time_interleaved(
    calls: dict[str, Callable[[], object]],
    iters: int,
    device: torch.device,
    desc: str,
    progress: bool = True,
    after_round: Callable[[], None] | None = None,
) -> dict[str, list[float]]:
    """Wall seconds of every call of ``calls`` over ``iters`` rounds, by name. Each round runs every
    call once, interleaved, so that load changes of a shared machine hit all of them alike;
    ``after_round`` runs after each round (outside the timings)."""
    from tqdm import tqdm

    seconds: dict[str, list[float]] = {name: [] for name in calls}
    bar = tqdm(total=iters * len(calls), desc=desc, unit="batch", disable=not progress)
    for _ in range(iters):
        for name, call in calls.items():
            _sync(device)
            start = time.perf_counter()
            call()
            _sync(device)
            seconds[name].append(time.perf_counter() - start)
            bar.update()
        if after_round is not None:
            after_round()
    bar.close()
    return seconds


def bench_inputs(model: SpadeModel, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """A realistic batch at the model size: toy-scene layouts with their ids spread over the model's
    classes, their instance maps, and z for generators with a latent. Returns (index, edges, z)."""
    from spadekit.data.labels import instance_edges
    from spadekit.data.toy import render_scene

    m = model.config.model
    classes = m.label_nc + int(m.contain_dontcare)
    width, height = model.output_size
    index, edges = [], []
    for i in range(batch):
        scene = render_scene(seed + i, (width, height))
        # 37 is prime to any preset's class count: the 12 toy classes land on distinct ids.
        index.append(torch.from_numpy((scene.label.astype(np.int64) * 37 + i) % classes))
        edges.append(instance_edges(torch.from_numpy(scene.instance.astype(np.int64))[None, None])[0])
    z_dim = getattr(model.generator, "latent_dim", None)
    z = torch.randn(batch, z_dim, generator=torch.Generator().manual_seed(seed)) if z_dim is not None else None
    return torch.stack(index), (torch.stack(edges) if m.use_instance else None), z


@torch.no_grad()
def random_model(preset: str, overrides: list[str] | None = None, calibration_batch: int = 2) -> SpadeModel:
    """A preset's generator with random weights, made realistic enough to compare outputs.

    PyTorch's default init (the paper's xavier gain 0.02 makes an untrained output almost 0) and
    batch-norm statistics calibrated by one training-mode pass over :func:`bench_inputs`, so the
    activations keep a sensible scale and the output is not saturated: a max abs difference
    between paths then means something.
    """
    from spadekit.config import load_config
    from spadekit.inference import one_hot
    from spadekit.methods import build_networks

    config = load_config(preset, overrides)
    generator = build_networks(config, init=False)["generator"]
    model = SpadeModel(config=config, generator=generator)
    m = config.model
    index, edges, z = bench_inputs(model, calibration_batch, seed=1000)
    for module in generator.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the calibration pass
    generator.train()
    generator(one_hot(index, m.label_nc + int(m.contain_dontcare), edges, torch.float32), z)
    return model.eval()


def run_bench(
    model: SpadeModel,
    batch: int = 1,
    iters: int = 5,
    warmup: int = 1,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    compile: bool = False,
    paths: tuple[str, ...] = ("plain", "fast"),
    progress: bool = True,
) -> dict:
    """Time the generator's paths on one batch; returns the JSON-ready report (module docstring)."""
    from spadekit.inference import Pipeline

    device = torch.device(device)
    m = model.config.model
    index, edges, z = bench_inputs(model, batch)
    pipelines = {
        name: Pipeline(model, device=device, dtype=dtype, fast=(name == "fast"), compile=compile and name == "fast", batch_size=batch)
        for name in paths
    }
    if "fast" in pipelines and not pipelines["fast"].fast:
        del pipelines["fast"]  # this method has no fast path: time the plain one only
    index = index.to(device)
    edges = edges.to(device, dtype) if edges is not None else None
    calls = {name: (lambda p=p: p.generate(index, edges, z)) for name, p in pipelines.items()}

    report: dict = {
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "dtype": str(dtype).replace("torch.", ""),
        "compile": compile,
        "preset": model.config.preset,
        "method": model.config.method,
        "size": list(model.output_size),
        "label_nc": m.label_nc,
        "semantic_nc": m.semantic_nc,
        "ngf": m.ngf,
        "use_vae": m.use_vae,
        "latent_dim": getattr(model.generator, "latent_dim", None),
        "batch": batch,
        "iters": iters,
        "generator_parameters": sum(p.numel() for p in model.generator.parameters()),
    }
    report["peak_flops"] = measure_peak_flops(device)
    plain_flops = None
    outputs: dict[str, torch.Tensor] = {}
    results: dict[str, dict] = {}
    for name, call in calls.items():
        for _ in range(warmup):
            call()
        flops = count_flops(call) / batch
        if name == "plain":
            plain_flops = flops
        memory = peak_memory(lambda: outputs.__setitem__(name, call()), device)
        results[name] = {"flops_per_image": flops, "peak_memory_mib": memory, "seconds_per_batch": []}

    def sample_peak() -> None:
        # Sampled between rounds too: on a shared machine the best sample is nearest the true peak.
        report["peak_flops"] = max(report["peak_flops"], measure_peak_flops(device, seconds=0.3))

    for name, seconds in time_interleaved(calls, iters, device, "bench", progress, after_round=sample_peak).items():
        results[name]["seconds_per_batch"] = seconds
    report["peak_flops"] = max(report["peak_flops"], measure_peak_flops(device))
    for name, r in results.items():
        median = statistics.median(r["seconds_per_batch"])
        r["median_seconds_per_batch"] = median
        r["images_per_second"] = batch / median
        r["achieved_flops"] = r["flops_per_image"] * batch / median
        r["fraction_of_peak"] = r["achieved_flops"] / report["peak_flops"]
        if plain_flops is not None:
            r["effective_flops"] = plain_flops * batch / median
            r["effective_fraction_of_peak"] = r["effective_flops"] / report["peak_flops"]
    report["paths"] = results
    bands = getattr(pipelines["fast"].generator, "band_fractions", None) if "fast" in pipelines else None
    if bands is not None:
        # The share of pixels whose gamma/beta need convolutions, per resolution, per image.
        report["band_fractions"] = [bands(index[i : i + 1], edges[i : i + 1] if edges is not None else None) for i in range(batch)]
    if "plain" in results and "fast" in results:
        report["speedup"] = results["fast"]["images_per_second"] / results["plain"]["images_per_second"]
        report["max_abs_diff"] = float((outputs["plain"] - outputs["fast"]).abs().max())
        report["output_std"] = float(outputs["plain"].std())
    return report


def format_report(report: dict) -> str:
    """A human-readable summary of :func:`run_bench`'s report."""
    w, h = report["size"]
    lines = [
        f"{report['preset']} generator, {w}x{h}, batch {report['batch']}, {report['dtype']}, "
        f"{report['device']} ({report['threads']} threads), torch {report['torch']}",
        f"machine peak (fp32 matmul): {report['peak_flops'] / 1e9:.1f} GFLOP/s",
    ]
    for name, r in report["paths"].items():
        memory = f"{r['peak_memory_mib']:.0f} MiB" if r["peak_memory_mib"] is not None else "n/a"
        effective = f", effective {r['effective_flops'] / 1e9:.1f} GFLOP/s" if name != "plain" and "effective_flops" in r else ""
        lines.append(
            f"  {name:<5} {r['images_per_second']:.3f} img/s  ({r['median_seconds_per_batch']:.3f} s/batch), "
            f"{r['flops_per_image'] / 1e9:.1f} GFLOP/img, {r['achieved_flops'] / 1e9:.1f} GFLOP/s "
            f"({100 * r['fraction_of_peak']:.0f}% of peak){effective}, peak memory {memory}"
        )
    if report.get("band_fractions"):
        fractions = report["band_fractions"][0]
        lines.append("  band fraction (image 1): " + ", ".join(f"{size} {100 * f:.0f}%" for size, f in fractions.items()))
    if "speedup" in report:
        lines.append(
            f"  fast / plain: {report['speedup']:.2f}x, max abs difference {report['max_abs_diff']:.2e} "
            f"(output std {report['output_std']:.3f})"
        )
    return "\n".join(lines)
