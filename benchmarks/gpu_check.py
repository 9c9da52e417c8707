"""Every CUDA path of spadekit once, on whatever GPU is present, in one JSON report.

    python benchmarks/gpu_check.py --out gpu_check.json [--official PATH_TO_NVLABS_SPADE] [--batch 4]
    python benchmarks/gpu_check.py --device cpu --tiny     # the same code on the CPU, tiny widths (tests)

Checks (each reports ``status``: ok, failed or skipped with its ``reason``, its numbers and seconds):

* ``inference_precisions``: the fast pipeline in fp32 (against the plain network), bf16 and fp16
  (against fp32, with tolerances), channels-last on and off: img/s and differences.
* ``inference_compile``: ``torch.compile`` of the fast generator against eager fp32.
* ``training``: train steps with ``train.precision`` fp32, bf16 and fp16 (gradient scaler), and
  bf16 + channels-last (+ compile): s/iteration, img/s, peak memory, finite losses; and the
  generator's layout paths (dense / gather / band) against each other.
* ``sync_batchnorm_torchrun``: ``torchrun`` with one process per GPU and ``model.norm_G=syncbatch``
  (needs two GPUs or more).
* ``resume_exactness``: a run killed (SIGKILL) after a checkpoint and resumed ends with the weights
  of an uninterrupted run; the CUDA RNG state travels in the checkpoint. A second uninterrupted run
  shows how far two identical CUDA runs drift anyway (non-deterministic kernels).
* ``vs_official``: ``benchmarks/vs_official.py`` on this device (needs ``--official``): spadekit in
  bf16 + channels-last (+ compile with ``--compile``) against the official fp32 code.

Without CUDA (and ``--device cuda``, the default) every check is skipped with the reason and the
exit status is 0; a failed check makes it 1. TF32 is switched off for the fp32 comparisons.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
from spadekit.io import atomic_write_text

HERE = Path(__file__).resolve().parent
TINY = ["model.ngf=4", "model.ndf=8", "model.spade_hidden=8", "model.width=64", "data.crop_size=64", "data.load_size=64"]
TOY_RUN = [
    "model.ngf=8", "model.ndf=8", "model.width=32", "model.spade_hidden=16", "model.use_vae=true",
    "data.crop_size=32", "data.load_size=40", "data.toy_scenes=8", "train.batch_size=2", "train.log_every=1",
]


class Skip(Exception):
    """The check cannot run here (the message says why)."""


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(fn, device: torch.device, repeats: int = 3) -> float:
    """Median wall time of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_mib(fn, device: torch.device) -> float | None:
    from spadekit.bench import peak_memory

    return peak_memory(fn, device)


def need_cuda(device: torch.device) -> None:
    if device.type == "cuda" and not torch.cuda.is_available():
        raise Skip("no CUDA device here (torch.cuda.is_available() is False)")


# ----------------------------------------------------------------------------- checks


def inference_precisions(args, device) -> dict:
    need_cuda(device)
    from spadekit.bench import bench_inputs, random_model
    from spadekit.inference import Pipeline

    model = random_model(args.preset, TINY if args.tiny else None)
    index, edges, z = bench_inputs(model, args.batch)
    index = index.to(device)
    reference = Pipeline(model, device=device, fast=False, batch_size=args.batch).generate(index, edges.to(device) if edges is not None else None, z)
    out: dict = {"preset": args.preset, "batch": args.batch, "paths": {}}
    failures = []
    tolerance = {"float32": (1e-4, 1e-5), "bfloat16": (0.5, 0.03), "float16": (0.1, 0.005)}  # (max, mean) abs difference
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        for channels_last in (True, False):
            name = f"{str(dtype).replace('torch.', '')}{'' if channels_last else ', contiguous'}"
            try:
                pipeline = Pipeline(model, device=device, dtype=dtype, channels_last=channels_last, batch_size=args.batch)
                e = edges.to(device, dtype) if edges is not None else None
                images = pipeline.generate(index, e, z)
                took = seconds(lambda: pipeline.generate(index, e, z), device, repeats=args.steps)
            except Exception as exc:  # noqa: BLE001  (fp16 convolutions are missing on some CPUs)
                out["paths"][name] = {"error": f"{type(exc).__name__}: {exc}"}
                if device.type == "cuda":
                    failures.append(name)
                continue
            diff = (images.float() - reference.float()).abs()
            bound_max, bound_mean = tolerance[str(dtype).replace("torch.", "")]
            good = float(diff.max()) <= bound_max and float(diff.mean()) <= bound_mean
            out["paths"][name] = {
                "images_per_second": args.batch / took,
                "max_abs_diff_vs_fp32_plain": float(diff.max()),
                "mean_abs_diff_vs_fp32_plain": float(diff.mean()),
                "tolerance_max_mean": [bound_max, bound_mean],
                "within_tolerance": good,
            }
            if not good:
                failures.append(name)
    fast = Pipeline(model, device=device, batch_size=args.batch).generator
    if hasattr(fast, "band_fractions"):
        out["band_fractions"] = fast.band_fractions(index[:1], edges[:1].to(device) if edges is not None else None)
    out["status"] = "failed" if failures else "ok"
    if failures:
        out["reason"] = f"outside tolerance or failed: {', '.join(failures)}"
    return out


def inference_compile(args, device) -> dict:
    need_cuda(device)
    from spadekit.bench import bench_inputs, random_model
    from spadekit.inference import Pipeline

    model = random_model(args.preset, TINY if args.tiny else None)
    index, edges, z = bench_inputs(model, args.batch)
    index, edges = index.to(device), edges.to(device) if edges is not None else None
    eager = Pipeline(model, device=device, batch_size=args.batch)
    compiled = Pipeline(model, device=device, batch_size=args.batch, compile=True)
    start = time.perf_counter()
    images = compiled.generate(index, edges, z)
    sync(device)
    first_call = time.perf_counter() - start
    expected = eager.generate(index, edges, z)
    diff = float((images - expected).abs().max())
    out = {
        "first_call_seconds": first_call,
        "compiled_images_per_second": args.batch / seconds(lambda: compiled.generate(index, edges, z), device),
        "eager_images_per_second": args.batch / seconds(lambda: eager.generate(index, edges, z), device),
        "max_abs_diff": diff,
    }
    out["status"] = "ok" if diff <= 1e-3 else "failed"
    return out


class SyntheticItems:
    """Random training items of the model's size (label, instance, image)."""

    def __init__(self, config, count: int):
        m = config.model
        w, h = m.output_size
        g = torch.Generator().manual_seed(0)
        classes = m.label_nc + int(m.contain_dontcare)
        blocks = [torch.randint(0, classes, (1, h // 16, w // 16), generator=g).repeat_interleave(16, 1).repeat_interleave(16, 2) for _ in range(count)]
        self.items = [
            {"label": b, "instance": b.clone(), "image": torch.rand(3, h, w, generator=g) * 2 - 1, "path": str(i)}
            for i, b in enumerate(blocks)
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def _trainer(args, device, overrides: list[str], run_dir: Path):
    from spadekit.config import load_config
    from spadekit.training.distributed import DistEnv
    from spadekit.training.setup import build_trainer

    config = load_config(args.preset, (TINY if args.tiny else []) + [f"train.batch_size={args.batch}", "loss.lambda_vgg=0"] + overrides)
    # A warm-up, the timed steps and one more for the memory peak.
    dataset = SyntheticItems(config, args.batch * (args.steps + 2))
    trainer = build_trainer(
        config, run_dir, env=DistEnv(device=device), steps=10**6, dataset=dataset, preview=[],
        progress=False, tensorboard=False, log=lambda _: None,
    )
    trainer.sampler.set_epoch(0)
    return trainer


def training(args, device) -> dict:
    need_cuda(device)
    variants = {
        "fp32": ["train.precision=fp32"],
        "bf16": ["train.precision=bf16"],
        "fp16 + scaler": ["train.precision=fp16"],
        "bf16 + channels-last": ["train.precision=bf16", "train.channels_last=true"],
    }
    if args.compile:
        variants["bf16 + channels-last + compile"] = ["train.precision=bf16", "train.channels_last=true", "train.compile=true"]
    out: dict = {"preset": args.preset, "batch": args.batch, "variants": {}}
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in variants.items():
            try:
                trainer = _trainer(args, device, overrides, Path(tmp) / name.replace(" ", "_"))
                batches = iter(trainer.loader)
                terms = {}

                def step():
                    nonlocal terms
                    terms = trainer.train_step(batches)

                took = seconds(step, device, repeats=args.steps)
                memory = peak_mib(step, device)
                finite = all(torch.isfinite(v).all() for v in terms.values())
                entry = {
                    "seconds_per_iteration": took,
                    "images_per_second": args.batch / took,
                    "peak_memory_mib": memory,
                    "losses": {k: float(v) for k, v in terms.items()},
                    "finite": bool(finite),
                }
                if trainer.scaler.is_enabled():
                    entry["grad_scale"] = float(trainer.scaler.get_scale())
                out["variants"][name] = entry
                if not finite:
                    failures.append(name)
                del trainer, batches
            except Exception as exc:  # noqa: BLE001
                out["variants"][name] = {"error": f"{type(exc).__name__}: {exc}"}
                if device.type == "cuda" or "fp16" not in name:
                    failures.append(name)
        out["layout_paths"] = layout_paths(args, device, Path(tmp))
    if out["layout_paths"].get("status") == "failed":
        failures.append("layout paths")
    out["status"] = "failed" if failures else "ok"
    if failures:
        out["reason"] = f"failed: {', '.join(failures)}"
    return out


def layout_paths(args, device, tmp: Path) -> dict:
    """fp32 train steps with the generator's modulation dense (official), gather and band: time,
    and the G gradients of one forward/backward on the same batch compared."""
    trainer = _trainer(args, device, ["train.precision=fp32"], tmp / "layout")
    generator = trainer.networks["generator"]
    batches = iter(trainer.loader)
    batch = trainer._batch(next(batches))
    out: dict = {}
    grads = {}
    # Train-mode forwards move batch-norm statistics and spectral-norm vectors: every path's
    # gradients are taken from the same starting state.
    start = {k: v.clone() for k, v in generator.state_dict().items()}
    for path in ("dense", "gather", "band"):
        generator.layout_path = path

        def forward_backward():
            generator.zero_grad(set_to_none=True)
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(0)
                image = generator(batch.semantics, None)
            (image * batch.image).mean().backward()

        out[f"{path}_seconds"] = seconds(forward_backward, device, repeats=args.steps)
        generator.load_state_dict(start)
        forward_backward()
        generator.load_state_dict(start)
        grads[path] = torch.cat([p.grad.flatten().float() for p in generator.parameters() if p.grad is not None])
    for path in ("gather", "band"):
        out[f"{path}_relative_grad_difference"] = float((grads[path] - grads["dense"]).norm() / grads["dense"].norm())
    generator.layout_path = "band"
    # float32 rounding, amplified by batch statistics of small batches, stays ~1e-3; a wrong
    # gradient is off by order 1 (the float64 equality is in tests/test_layout.py).
    out["status"] = "ok" if max(out["gather_relative_grad_difference"], out["band_relative_grad_difference"]) < 1e-2 else "failed"
    return out


def _cli(run: Path, device: str, steps: int, extra: list[str]) -> list[str]:
    args = ["-m", "spadekit.cli", "train", "--preset", "toy", "--out", str(run), "--steps", str(steps), "--checkpoint-every", "2"]
    args += ["--resume", "auto", "--no-vgg", "--no-progress", "--no-tensorboard", "--device", device]
    for override in TOY_RUN + extra:
        args += ["--set", override]
    return args


def sync_batchnorm_torchrun(args, device) -> dict:
    need_cuda(device)
    if device.type != "cuda":
        raise Skip("SyncBatchNorm over NCCL needs CUDA devices")
    count = torch.cuda.device_count()
    if count < 2:
        raise Skip(f"{count} GPU: SyncBatchNorm needs two processes or more, one per GPU (NCCL refuses two ranks on one GPU)")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "ddp"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(count)]
        command += _cli(run, "cuda", 4, ["model.norm_G=syncbatch", f"train.batch_size={2 * count}", "model.use_vae=false"])[1:]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=1200)
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] if (run / "metrics.jsonl").is_file() else []
        out = {"processes": count, "returncode": done.returncode, "seconds": time.perf_counter() - start, "last_metrics": metrics[-1] if metrics else None}
        if done.returncode != 0:
            out.update(status="failed", reason=done.stderr.strip().splitlines()[-1:] if done.stderr.strip() else "no output")
        else:
            out["status"] = "ok" if metrics else "failed"
        return out


def resume_exactness(args, device) -> dict:
    need_cuda(device)
    from spadekit.training.checkpoint import load_checkpoint

    steps = 6
    name = "cuda" if device.type == "cuda" else "cpu"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {k: Path(tmp) / k for k in ("reference", "reference_again", "interrupted")}
        for key in ("reference", "reference_again"):
            done = subprocess.run([sys.executable, *_cli(runs[key], name, steps, [])], env=env, capture_output=True, text=True, timeout=1200)
            if done.returncode != 0:
                return {"status": "failed", "reason": done.stderr.strip().splitlines()[-1:]}
        ckpts = runs["interrupted"] / "checkpoints"
        process = subprocess.Popen([sys.executable, *_cli(runs["interrupted"], name, steps, [])], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 1200
        while not (ckpts / "step-00000004.pt").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                return {"status": "failed", "reason": "the run to interrupt ended before its step-4 checkpoint"}
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        done = subprocess.run([sys.executable, *_cli(runs["interrupted"], name, steps, [])], env=env, capture_output=True, text=True, timeout=1200)
        if done.returncode != 0:
            return {"status": "failed", "reason": done.stderr.strip().splitlines()[-1:]}
        states = {k: load_checkpoint(r / "checkpoints" / f"step-{steps:08d}.pt") for k, r in runs.items()}

        def drift(a: dict, b: dict) -> tuple[bool, float]:
            equal, worst = True, 0.0
            for part in ("generator", "discriminator", "encoder"):
                for key, value in a[part].items():
                    other = b[part][key]
                    if value.is_floating_point():
                        worst = max(worst, float((value - other).abs().max()) if value.numel() else 0.0)
                    equal &= bool(torch.equal(value, other))
            return equal, worst

        equal, worst = drift(states["interrupted"], states["reference"])
        equal_ref, worst_ref = drift(states["reference_again"], states["reference"])
        rng_saved = [sorted(state.keys()) for state in states["interrupted"].get("rng", [])]
        out = {
            "steps": steps,
            "killed_after": "step-4 checkpoint",
            "resumed_equals_uninterrupted": equal,
            "resumed_max_abs_diff": worst,
            "two_uninterrupted_runs_equal": equal_ref,
            "two_uninterrupted_runs_max_abs_diff": worst_ref,
            "rng_state_keys": rng_saved,
        }
        out["status"] = "ok" if equal or worst <= worst_ref else "failed"
        return out


def vs_official(args, device) -> dict:
    need_cuda(device)
    if not args.official:
        raise Skip("no --official path to an NVlabs/SPADE checkout")
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "vs_official.json"
        command = [sys.executable, str(HERE / "vs_official.py"), "--official", str(args.official), "--device", device.type]
        command += ["--batch", str(args.batch), "--rounds", "3", "--precision", "bf16", "--channels-last", "--json", str(report)]
        if args.compile:
            command.append("--compile")
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
        if done.returncode != 0 or not report.is_file():
            return {"status": "failed", "reason": (done.stdout + done.stderr).strip().splitlines()[-3:]}
        result = json.loads(report.read_text())
    result["status"] = "ok"
    result["goal_training_speedup_3x_met"] = result.get("training", {}).get("speedup", 0) >= 3
    return result


CHECKS = {
    "inference_precisions": inference_precisions,
    "inference_compile": inference_compile,
    "training": training,
    "sync_batchnorm_torchrun": sync_batchnorm_torchrun,
    "resume_exactness": resume_exactness,
    "vs_official": vs_official,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (to exercise the script without a GPU)")
    parser.add_argument("--preset", default="coco", help="model preset (default coco, full size)")
    parser.add_argument("--tiny", action="store_true", help="tiny widths (ngf 8, 64 px): a quick pass")
    parser.add_argument("--batch", type=int, default=4, help="images per call / training batch (default 4)")
    parser.add_argument("--steps", type=int, default=3, help="timed calls per inference path and training variant (default 3)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile training (slow to compile)")
    parser.add_argument("--official", type=Path, help="NVlabs/SPADE checkout for the vs_official check")
    parser.add_argument("--only", help="comma-separated checks to run (default: all): " + ", ".join(CHECKS))
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"), help="JSON report (default gpu_check.json)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda":
        # The fp32 comparisons are against fp32, not TF32.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    else:
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    selected = [c.strip() for c in args.only.split(",")] if args.only else list(CHECKS)
    unknown = [c for c in selected if c not in CHECKS]
    if unknown:
        parser.error(f"unknown checks: {', '.join(unknown)}")
    report: dict = {
        "benchmark": "gpu_check",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" and torch.cuda.is_available() else str(device),
        "cuda_available": torch.cuda.is_available(),
        "gpus": torch.cuda.device_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "platform": platform.platform(),
        "load_average_1min": os.getloadavg()[0],
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "checks": {},
    }
    for name in selected:
        start = time.perf_counter()
        try:
            result = CHECKS[name](args, device)
        except Skip as skip:
            result = {"status": "skipped", "reason": str(skip)}
        except Exception as exc:  # noqa: BLE001  (one broken path must not hide the others)
            result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc().splitlines()[-6:]}
        result["seconds"] = round(time.perf_counter() - start, 2)
        report["checks"][name] = result
        print(f"{name}: {result['status']}" + (f" ({result['reason']})" if result.get("reason") else ""), flush=True)
        if device.type == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()
        # After every check, so a run stopped by a time limit still leaves the checks it finished.
        atomic_write_text(args.out, json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")
    return 1 if any(c["status"] == "failed" for c in report["checks"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
