"""Networks: full-size structure against the official code, tiny-width behaviour of everything registered."""

from __future__ import annotations

import json

import pytest
import torch

import spadekit.methods  # noqa: F401  (registers every method's networks, whatever ran before)
from spadekit.config import ModelConfig, load_config
from spadekit.models import SPADE, SPADEResBlock, build_discriminator, build_encoder, build_generator, build_networks
from spadekit.models.registry import available
from spadekit.release import SpadeModel, load_model

OFFICIAL_COUNTS = {  # SPEC §2 / issue: parameters of the official full-size networks
    "cityscapes": 93_048_003,
    "ade20k": 96_492_483,
    "coco": 97_480_899,
}


def count(network: torch.nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


@pytest.mark.parametrize("preset", ["cityscapes", "ade20k", "coco"])
def test_full_size_presets_match_official_counts(preset):
    cfg = load_config(preset).model
    with torch.device("meta"):  # shapes only: nothing is allocated or run
        generator, discriminator, _ = build_networks(cfg, init=False)
        encoder = build_encoder(load_config(preset, ["model.use_vae=true"]).model, init=False)
    assert count(generator) == OFFICIAL_COUNTS[preset]
    assert count(encoder) == 10_463_424


@pytest.mark.parametrize("preset", ["cityscapes", "ade20k", "coco"])
def test_full_size_state_dicts_match_official_keys_and_shapes(parity_dir, preset):
    reference = json.loads((parity_dir / f"shapes_{preset}.json").read_text())
    cfg = load_config(preset).model
    assert list(cfg.latent_size) == reference["latent_sw_sh"]
    assert [cfg.output_size[1], cfg.output_size[0]] == reference["output_hw"]
    with torch.device("meta"):
        generator, discriminator, _ = build_networks(cfg, init=False)
        encoder = build_encoder(load_config(preset, ["model.use_vae=true"]).model, init=False)
        vae_generator = build_generator(load_config(preset, ["model.use_vae=true"]).model, init=False)
    for network, key in ((generator, "G"), (discriminator, "D"), (encoder, "E")):
        ours = {k: list(v.shape) for k, v in network.state_dict().items()}
        theirs = {e["key"]: e["shape"] for e in reference[f"{key}_state_dict"]}
        assert ours == theirs, key
        assert count(network) == reference["param_count"][key]
    assert count(vae_generator) == reference["param_count"]["G_with_use_vae"]


def test_spade_is_norm_times_one_plus_gamma_plus_beta():
    torch.manual_seed(0)
    spade = SPADE(channels=4, semantic_nc=3, norm="instance", kernel_size=3, hidden=8)
    x = torch.randn(2, 4, 8, 8)
    seg = torch.zeros(2, 3, 16, 16)
    seg[:, 0] = 1
    out = spade(x, seg)
    seg_small = torch.nn.functional.interpolate(seg, size=(8, 8), mode="nearest")
    hidden = torch.relu(spade.mlp_shared[0](seg_small))
    gamma, beta = spade.mlp_gamma(hidden), spade.mlp_beta(hidden)
    normalized = (x - x.mean((2, 3), keepdim=True)) / torch.sqrt(x.var((2, 3), unbiased=False, keepdim=True) + 1e-5)
    torch.testing.assert_close(out, normalized * (1 + gamma) + beta, atol=1e-5, rtol=1e-5)


def test_resblock_shortcut_and_spectral_norm_placement():
    block = SPADEResBlock(16, 8, semantic_nc=5, norm="batch", spectral=True)
    keys = set(block.state_dict())
    assert {"conv_0.weight_orig", "conv_1.weight_orig", "conv_s.weight_orig"} <= keys
    assert "conv_s.bias" not in keys  # 1x1 shortcut has no bias
    assert not any(k.startswith("norm_0.mlp") and k.endswith("weight_orig") for k in keys)  # SPADE convs: no spectral norm
    same = SPADEResBlock(8, 8, semantic_nc=5, norm="batch", spectral=False)
    assert not hasattr(same, "conv_s") and "conv_0.weight" in same.state_dict()


TINY = dict(label_nc=5, ngf=8, ndf=8, width=64)


def tiny_configs() -> list[tuple[str, ModelConfig]]:
    cases = []
    # SPADE's generators (other methods' networks are covered by tests/test_methods.py).
    for generator in ("spade", "pix2pixhd"):
        assert generator in available("generator")["generator"]
        cases.append((f"{generator}", ModelConfig(generator=generator, **TINY)))
    cases += [
        ("spade-vae-instance", ModelConfig(use_vae=True, use_instance=True, contain_dontcare=True, norm_G="instance", **TINY)),
        ("spade-vae-latent-spade", ModelConfig(use_vae=True, latent_spade=True, use_instance=True, **TINY)),
        ("spade-more-aspect2", ModelConfig(upsampling="more", aspect_ratio=2.0, label_nc=5, ngf=8, ndf=8, width=128)),
        ("spade-most-k5", ModelConfig(upsampling="most", spade_kernel=5, spectral_G=False, label_nc=5, ngf=8, ndf=8, width=128)),
    ]
    return cases


@pytest.mark.parametrize("name,cfg", tiny_configs(), ids=[c[0] for c in tiny_configs()])
def test_registry_wide_forward_backward_round_trip(name, cfg, tmp_path):
    torch.manual_seed(0)
    generator, discriminator, encoder = build_networks(cfg)
    width, height = cfg.output_size
    labels = torch.randint(0, cfg.semantic_nc, (2, 1, height, width))
    semantics = torch.zeros(2, cfg.semantic_nc, height, width).scatter_(1, labels, 1.0)
    image = torch.rand(2, 3, height, width) * 2 - 1
    z = None
    if encoder is not None:
        mu, logvar = encoder(image)
        assert mu.shape == logvar.shape == (2, cfg.z_dim)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
    fake = generator(semantics, z)
    assert fake.shape == (2, 3, height, width)
    assert fake.min() >= -1 and fake.max() <= 1
    outputs = discriminator(torch.cat([semantics, fake], 1))
    assert len(outputs) == cfg.num_D and all(len(scale) == cfg.n_layers_D + 1 for scale in outputs)
    loss = sum(scale[-1].mean() for scale in outputs) + fake.mean()
    loss.backward()
    for network in (generator, discriminator) + ((encoder,) if encoder is not None else ()):
        grads = [p.grad for p in network.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads)

    model = SpadeModel(load_config("custom", extra={"model": cfg.__dict__}), generator, discriminator, encoder).eval()
    model.save(tmp_path / "model")
    reloaded = load_model(tmp_path / "model")
    with torch.no_grad():
        # Generators with a latent (a VAE's z, OASIS's noise) get the same one in both runs.
        latent_dim = getattr(model.generator, "latent_dim", None)
        z_fixed = torch.randn(2, latent_dim) if latent_dim is not None else None
        expected = model.generator(semantics, z_fixed)
        actual = reloaded.generator(semantics, z_fixed)
    assert torch.equal(expected, actual)


def test_vae_generator_samples_z_on_the_input_device_and_dtype():
    cfg = ModelConfig(use_vae=True, norm_G="instance", **TINY)
    generator = build_generator(cfg).double().eval()
    semantics = torch.zeros(1, cfg.semantic_nc, 64, 64, dtype=torch.float64)
    semantics[:, 0] = 1
    torch.manual_seed(1)
    first = generator(semantics)
    torch.manual_seed(1)
    again = generator(semantics)
    second = generator(semantics)
    assert first.dtype == torch.float64
    assert torch.equal(first, again) and not torch.equal(first, second)


def test_discriminator_returns_features_of_every_layer():
    cfg = ModelConfig(**TINY)
    discriminator = build_discriminator(cfg)
    outputs = discriminator(torch.randn(1, cfg.semantic_nc + 3, 64, 64))
    # 4x4 convs with padding 2: sizes follow floor((n + 4 - 4) / s) + 1
    assert [tuple(f.shape[1:]) for f in outputs[0]] == [(8, 33, 33), (16, 17, 17), (32, 9, 9), (64, 10, 10), (1, 11, 11)]
    assert [tuple(f.shape[2:]) for f in outputs[1]] == [(17, 17), (9, 9), (5, 5), (6, 6), (7, 7)]
