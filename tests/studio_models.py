"""Small models for the studio tests (the API and the browser test share them).

- :func:`make_oasis_model`: a tiny random-weight OASIS generator (region noise).
- :func:`box_model`: a ``bachgan-toy`` model at the method's tiny size (64x64) with lively random
  weights (images follow the boxes: see tests/helpers.py) and a memory bank of 8 toy scenes, saved
  as a release model that carries its bank.
- :func:`palette_model`: a ``palette-toy`` layout GAN trained for a few steps at the tiny size; its
  photos come from the bundled toy SPADE model, as the preset says.
"""

from __future__ import annotations

from pathlib import Path

import torch

from spadekit.config import load_config
from spadekit.methods import build_networks, get_method
from spadekit.release import SpadeModel

BOX_CLASSES = {"building": 7, "tree": 9, "car": 10, "person": 11}


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


@torch.no_grad()
def box_model(path: Path) -> Path:
    from spadekit.inference import Pipeline
    from spadekit.methods.bachgan.data import BANK_FILE, training_bank

    method = get_method("bachgan")
    config = load_config("bachgan-toy", list(method.tiny_overrides) + ["model.norm_G=instance"])
    generator = method.build_networks(config, False)["generator"]
    for name, parameter in generator.named_parameters():
        if parameter.dim() > 1:
            torch.nn.init.xavier_normal_(parameter, generator=torch.Generator().manual_seed(parameter.numel()))
    bank = training_bank(config, progress=False)
    model = SpadeModel.from_parts(config, {"generator": generator}, assets={BANK_FILE: bank.save}).eval()
    # Rescale the last convolution so the pre-tanh values of a typical scene have unit spread: the
    # images then follow the boxes and are not saturated at +-1.
    plan = Pipeline(model).box_conditioner.plan([{"class": "car", "box": [8, 40, 30, 56]}, {"class": "tree", "box": [36, 8, 56, 40]}],
                                                num_samples=2, bank=bank)
    seen: list[torch.Tensor] = []
    handle = generator.conv_img.register_forward_hook(lambda _m, _i, out: seen.append(out))
    generator(plan.semantics)
    handle.remove()
    spread = float(seen[0].std())
    generator.conv_img.weight.div_(spread)
    if generator.conv_img.bias is not None:
        generator.conv_img.bias.div_(spread)
    return model.save(path)


def palette_model(path: Path, steps: int = 8) -> Path:
    from spadekit.training.setup import build_trainer

    overrides = list(get_method("palette").tiny_overrides) + ["palette.phase_steps=[1]"]
    torch.manual_seed(0)
    build_trainer(load_config("palette-toy", overrides), path, steps=steps, progress=False, tensorboard=False, log=lambda _: None).fit()
    return path / "model"
