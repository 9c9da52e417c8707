"""benchmarks/gpu_check.py: without a GPU every CUDA check is skipped with its reason (exit 0);
on the CPU (``--device cpu --tiny``) the same code runs and its checks pass, so the script is
known to work before a GPU session runs it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from conftest import REPO_ROOT


def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO_ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_cuda_every_check_is_skipped_with_a_reason(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "report.json"
    assert gpu_check().main(["--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["checks"]) == {
        "inference_precisions", "inference_compile", "training", "sync_batchnorm_torchrun", "resume_exactness", "vs_official",
    }
    for name, check in report["checks"].items():
        assert check["status"] == "skipped" and "CUDA" in check["reason"], name


def test_the_checks_run_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    code = gpu_check().main(
        ["--device", "cpu", "--tiny", "--preset", "custom", "--batch", "1", "--steps", "3", "--only", "inference_precisions,training,vs_official", "--out", str(out)]
    )
    report = json.loads(out.read_text())
    checks = report["checks"]
    assert code == 0, checks
    paths = checks["inference_precisions"]["paths"]
    assert paths["float32"]["within_tolerance"] and paths["float32"]["max_abs_diff_vs_fp32_plain"] < 1e-4
    assert paths["bfloat16"]["within_tolerance"]
    variants = checks["training"]["variants"]
    assert {"fp32", "bf16", "fp16 + scaler", "bf16 + channels-last"} <= set(variants)
    assert all(v["finite"] for v in variants.values()) and variants["fp16 + scaler"]["grad_scale"] > 0
    assert checks["training"]["layout_paths"]["band_relative_grad_difference"] < 1e-2
    assert checks["vs_official"]["status"] == "skipped" and "--official" in checks["vs_official"]["reason"]


def test_a_broken_path_is_reported_as_failed_not_a_crash(tmp_path: Path, monkeypatch) -> None:
    module = gpu_check()

    def broken(args, device):
        raise RuntimeError("simulated CUDA error")

    monkeypatch.setitem(module.CHECKS, "inference_compile", broken)
    out = tmp_path / "report.json"
    assert module.main(["--device", "cpu", "--only", "inference_compile", "--out", str(out)]) == 1
    check = json.loads(out.read_text())["checks"]["inference_compile"]
    assert check["status"] == "failed" and "simulated CUDA error" in check["reason"]
