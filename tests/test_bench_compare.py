"""``spadekit bench --compare``: methods timed side by side at one size, with a JSON report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from spadekit.bench_compare import network_flops, preset_for
from spadekit.cli import main
from spadekit.errors import ConfigError


def test_compare_reports_every_method_at_one_size(tmp_path: Path, capsys) -> None:
    out = tmp_path / "compare.json"
    args = ["bench", "--compare", "spade,clade,asapnet", "--preset-size", "toy", "--iters", "1",
            "--threads", "1", "--device", "cpu", "--json", str(out)]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "| spade | fast |" in table and "| asapnet | fast |" in table
    report = json.loads(out.read_text())
    assert report["size"] == [128, 128] and list(report["methods"]) == ["spade", "clade", "asapnet"]
    runs = report["methods"]
    assert [r["preset"] for r in runs.values()] == ["toy", "clade-toy", "asapnet-toy"]
    assert runs["spade"]["speed_vs_spade"] == 1.0
    for r in runs.values():
        assert r["images_per_second"] > 0 and len(r["seconds_per_batch"]) == 1
        assert r["path_flops_per_image"] <= r["flops_per_image"]
    # CLADE drops SPADE's modulation convolutions: far fewer FLOPs for the same layout.
    assert runs["clade"]["flops_vs_spade"] < 0.5
    assert report["load_average_before"] is not None


def test_network_flops_are_the_plain_generators(tmp_path: Path) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    from spadekit.bench import bench_inputs, random_model
    from spadekit.inference import one_hot

    model = random_model("asapnet-toy", ["model.width=64", "asapnet.learned_downsampling=4"])
    index, edges, _ = bench_inputs(model, 1)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.generator(one_hot(index, 12, edges, torch.float32))
    assert network_flops(model, index, edges, None) == counter.get_total_flops()


def test_unknown_methods_and_missing_presets_are_named() -> None:
    assert preset_for("spade", "cityscapes") == "cityscapes" and preset_for("asapnet", "cityscapes") == "asapnet-cityscapes"
    with pytest.raises(ConfigError, match="no preset for 'facades'"):
        preset_for("clade", "facades")
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        from spadekit.bench_compare import compare_methods

        compare_methods(["spade", "nope"], "toy")
