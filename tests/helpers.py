"""Test helpers shared by several test files: tiny random models whose outputs mean something.

A comparison between two ways of computing an image (fast path vs plain, export vs PyTorch, studio
vs Pipeline) proves nothing on a model whose output is flat (every input gives about the same image)
or saturated (tanh at +-1 almost everywhere, where one float's rounding flips a pixel from -1 to +1).
The paper's initialisation (Xavier, gain 0.02) gives both; PyTorch's default initialisation with
batch-norm statistics taken from one training-mode pass gives images that follow the labels.
"""

from __future__ import annotations

import torch

from spadekit.config import Config, LossConfig, ModelConfig, load_config
from spadekit.inference import one_hot
from spadekit.methods import layout_batch
from spadekit.models import build_networks
from spadekit.objective import SpadeObjective
from spadekit.release import SpadeModel


def assert_lively(images: torch.Tensor, what: str = "images") -> None:
    """Fail unless ``images`` (in [-1, 1]) are neither flat nor mostly saturated."""
    images = images.detach().float()
    std = float(images.std())
    saturated = float((images.abs() > 0.999).float().mean())
    assert std > 0.05, f"{what}: std {std:.3g}; a flat output cannot tell two computations apart"
    assert saturated < 0.2, f"{what}: {saturated:.0%} of the values are saturated at +-1"


def label_batch(model: SpadeModel, n: int = 2, seed: int = 0, block: int = 4) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(N, H, W) blocky class indices that use every class (don't-care included) and touch the
    borders, plus random instance edges (N, 1, H, W) when the model takes them."""
    m = model.config.model
    classes = m.label_nc + int(m.contain_dontcare)
    w, h = m.output_size
    gen = torch.Generator().manual_seed(seed)
    index = torch.randint(0, classes, (n, h // block, w // block), generator=gen)
    index = index.repeat_interleave(block, 1).repeat_interleave(block, 2)
    index[:, 0, :classes] = torch.arange(classes)
    edges = (torch.rand(n, 1, h, w, generator=gen) < 0.2).float() if m.use_instance else None
    return index, edges


@torch.no_grad()
def lively_model(preset: str = "custom", overrides: dict | None = None, *, discriminator: bool = False, seed: int = 0) -> SpadeModel:
    """A tiny random :class:`SpadeModel` (eval mode) whose images follow its labels.

    PyTorch's default init (not the paper's 0.02); batch-norm running statistics set by one
    training-mode pass over random blocky labels (momentum None: the plain batch average); then the
    last convolution is rescaled so that the pre-tanh values have unit spread on those labels (few
    saturated pixels). ``overrides`` are ``model.*`` options; the encoder is kept with ``use_vae``.
    """
    cfg = load_config(preset, [f"model.{k}={v}" for k, v in (overrides or {}).items()])
    torch.manual_seed(seed)
    generator, disc, encoder = build_networks(cfg.model, init=False)
    m = cfg.model
    classes = m.label_nc + int(m.contain_dontcare)
    w, h = m.output_size
    gen = torch.Generator().manual_seed(seed + 1)
    index = torch.randint(0, classes, (8, h // 8, w // 8), generator=gen).repeat_interleave(8, 1).repeat_interleave(8, 2)
    edges = (torch.rand(8, 1, h, w, generator=gen) < 0.2).float() if m.use_instance else None
    semantics = one_hot(index, classes, edges, torch.float32)
    z = torch.randn(8, m.z_dim, generator=gen) if m.use_vae else None
    batch_norms = [b for b in generator.modules() if isinstance(b, torch.nn.modules.batchnorm._BatchNorm)]
    if batch_norms:
        for module in batch_norms:
            module.momentum = None
        generator.train()(semantics, z)
    last = getattr(generator, "conv_img", None)
    if last is not None:
        seen = []
        handle = last.register_forward_hook(lambda _m, _i, out: seen.append(out))
        generator.eval()(semantics, z)
        handle.remove()
        spread = float(seen[0].std())
        last.weight.div_(spread)
        if last.bias is not None:
            last.bias.div_(spread)
    return SpadeModel(cfg, generator, disc if discriminator else None, encoder).eval()


def tiny_spade_objective(losses: LossConfig, use_vae: bool = True):
    """(objective, batch, generator, discriminator, encoder): a tiny VAE SPADE objective on a random
    two-image 64² batch of 4 classes, seeded, for tests of single loss terms."""
    torch.manual_seed(0)
    cfg = ModelConfig(label_nc=4, use_instance=True, ngf=8, ndf=8, width=64, use_vae=use_vae, norm_G="batch")
    g, d, e = build_networks(cfg)
    batch = {
        "label": torch.randint(0, 4, (2, 1, 64, 64)),
        "instance": torch.randint(0, 3, (2, 1, 64, 64)),
        "image": torch.rand(2, 3, 64, 64) * 2 - 1,
    }
    return SpadeObjective(g, d, e, losses), layout_batch(batch, Config(model=cfg), "cpu"), g, d, e
