"""Small random-weight release models for the studio tests (the API and the browser test share them)."""

from __future__ import annotations

from pathlib import Path

import torch

from spadekit.config import load_config
from spadekit.methods import build_networks
from spadekit.release import SpadeModel


def make_oasis_model(path: Path, names: list[str], colors: list[list[int]]) -> Path:
    """A tiny OASIS generator (64x64, one class per name; 3D noise of 8 channels) saved at ``path``.

    PyTorch's default init (not OASIS's 0.02 one, whose outputs are nearly flat) and batch-norm
    statistics set from one pass over random layouts, so images vary visibly with the noise.
    """
    overrides = [
        f"model.label_nc={len(names)}", "model.ngf=4", "model.spade_hidden=8", "model.width=64", "oasis.z_dim=8",
        "oasis.d_widths=[4,4,8,8,8,8]", "oasis.d_last_width=4",
    ]
    config = load_config("oasis-toy", overrides)
    config.data.class_names = list(names)
    config.data.colors = [list(c) for c in colors]
    torch.manual_seed(0)
    generator = build_networks(config, init=False)["generator"]
    norms = [m for m in generator.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.momentum = None  # a cumulative average: one pass sets the statistics of that pass
    generator.train()
    with torch.no_grad():
        layouts = torch.randint(0, len(names), (8, 8, 8)).repeat_interleave(8, 1).repeat_interleave(8, 2)
        generator(torch.nn.functional.one_hot(layouts, len(names)).permute(0, 3, 1, 2).float())
    for norm in norms:
        norm.momentum = 0.1
    return SpadeModel(config, generator.eval()).save(path)
