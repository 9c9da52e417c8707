"""``spadekit bench`` on a tiny model: the report's numbers hang together (no timing targets here)."""

from __future__ import annotations

import json

import torch

from spadekit.bench import bench_inputs, count_flops
from spadekit.cli import main
from spadekit.config import load_config
from spadekit.inference import one_hot
from spadekit.models import build_networks

from helpers import assert_lively, lively_model


def conv_flops_by_hooks(generator: torch.nn.Module, *inputs) -> int:
    """2·MACs of every Conv2d/Linear, counted from their output shapes."""
    total = 0

    def hook(module, args, output):
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total += 2 * output.numel() * module.in_channels // module.groups * k
        else:
            total += 2 * output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in generator.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        generator(*inputs)
    for h in handles:
        h.remove()
    return total


def test_flop_count_is_two_macs_of_convolutions():
    cfg = load_config("custom", ["model.label_nc=4", "model.ngf=4", "model.width=64", "model.spade_hidden=8", "model.use_vae=true"])
    generator = build_networks(cfg.model)[0].eval()
    inputs = (one_hot(torch.zeros(1, 64, 64, dtype=torch.long), 4, None, torch.float32), torch.randn(1, 256))
    with torch.no_grad():
        counted = count_flops(lambda: generator(*inputs))
    assert counted == conv_flops_by_hooks(generator, *inputs)


def test_bench_reports_both_paths(tmp_path, capsys):
    # A model whose outputs follow the labels and are not saturated: the paper's init gives tanh
    # outputs at +-1 almost everywhere, where one float's rounding flips a pixel from -1 to +1.
    model = lively_model("custom", {"label_nc": 7, "ngf": 8, "width": 64, "spade_hidden": 16,
                                    "use_instance": True, "contain_dontcare": True})
    model.save(tmp_path / "model")
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", str(tmp_path / "model"), "--iters", "2", "--batch", "2", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    plain, fast = report["paths"]["plain"], report["paths"]["fast"]
    assert report["batch"] == 2 and report["size"] == [64, 64] and report["peak_flops"] > 0
    for r in (plain, fast):
        assert len(r["seconds_per_batch"]) == 2
        assert abs(r["images_per_second"] - 2 / r["median_seconds_per_batch"]) < 1e-9
        assert abs(r["achieved_flops"] - r["flops_per_image"] * 2 / r["median_seconds_per_batch"]) < 1e-3 * r["achieved_flops"]
    # The fast path replaces the dense SPADE convolutions over the 8 one-hot channels by gathers.
    assert fast["flops_per_image"] < plain["flops_per_image"]
    index, edges, _ = bench_inputs(model, 1)
    assert plain["flops_per_image"] == conv_flops_by_hooks(model.generator, one_hot(index, 8, edges, torch.float32))
    index, edges, _ = bench_inputs(model, 2)  # the batch the report compares the two paths on
    with torch.no_grad():
        assert_lively(model.generator(one_hot(index, 8, edges, torch.float32)))
    assert report["max_abs_diff"] < 1e-4 and report["output_std"] > 0.05
    assert abs(report["speedup"] - fast["images_per_second"] / plain["images_per_second"]) < 1e-9
    assert "fast / plain" in capsys.readouterr().out


def test_bench_needs_a_model_or_a_preset(capsys):
    assert main(["bench"]) == 2
    assert "--preset" in capsys.readouterr().err
