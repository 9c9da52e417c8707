"""The fast inference generator reproduces the plain one for every option that changes its structure."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from spadekit.fast import FastSPADEGenerator, OneHotConv, plain_conv, tap_index, tap_values
from spadekit.inference import Pipeline, one_hot
from spadekit.models.blocks import maybe_spectral
from spadekit.release import SpadeModel

from helpers import assert_lively, label_batch, lively_model

TINY = {"label_nc": 6, "ngf": 8, "width": 64, "spade_hidden": 16, "norm_G": "batch"}


def tiny_model(**options) -> SpadeModel:
    return lively_model("custom", {**TINY, **options})


CASES = {
    "batch norm, spectral": {},
    "instance channel + don't-care": {"use_instance": True, "contain_dontcare": True},
    "VAE": {"use_vae": True},
    "kernel 5, instance norm": {"spade_kernel": 5, "norm_G": "instance"},
    "more upsampling, 2:1": {"upsampling": "more", "width": 128, "aspect_ratio": 2.0},
    "most upsampling, instance channel": {"upsampling": "most", "width": 128, "use_instance": True},
    "no spectral norm, syncbatch, VAE + edges": {"spectral_G": False, "norm_G": "syncbatch", "use_vae": True, "use_instance": True},
    "VAE, latent in every SPADE layer + edges": {"use_vae": True, "latent_spade": True, "use_instance": True},
    "VAE, latent in every SPADE layer, instance norm": {"use_vae": True, "latent_spade": True, "norm_G": "instance"},
}


PARAMS = [pytest.param(options, True, id=name) for name, options in CASES.items()]
PARAMS += [pytest.param(CASES[name], False, id=f"{name}, contiguous") for name in ("batch norm, spectral", "kernel 5, instance norm", "VAE, latent in every SPADE layer + edges")]


@pytest.mark.parametrize("options, channels_last", PARAMS)
def test_fast_generator_matches_plain(options, channels_last):
    model = tiny_model(**options)
    m = model.config.model
    index, edges = label_batch(model)
    classes = m.label_nc + int(m.contain_dontcare)
    z = torch.randn(index.shape[0], m.z_dim) if m.use_vae else None
    with torch.no_grad():
        expected = model.generator(one_hot(index, classes, edges, torch.float32), z)
        fast = FastSPADEGenerator.from_generator(model.generator, classes, m.use_instance, channels_last=channels_last)
        got = fast(index, edges, z)
        via_semantics = fast.forward_semantics(one_hot(index, classes, edges, torch.float32), z)
    assert_lively(expected)
    assert got.shape == expected.shape == (2, 3, m.output_size[1], m.output_size[0])
    assert (got - expected).abs().max() < 1e-4
    assert (via_semantics - expected).abs().max() < 1e-4


def test_pipeline_fast_and_plain_give_the_same_images():
    model = tiny_model(use_instance=True, contain_dontcare=True, use_vae=True)
    index, _ = label_batch(model, n=2)
    labels = [i.masked_fill(i == model.config.model.label_nc, 255) for i in index]  # don't-care as on disk
    plain = Pipeline(model, fast=False)(labels, seed=5, num_samples=2, output="tensor")
    fast = Pipeline(model, fast=True)(labels, seed=5, num_samples=2, output="tensor")
    assert plain.shape == (4, 3, 64, 64)
    assert (plain - fast).abs().max() < 1e-4


@pytest.mark.parametrize("kernel", [3, 5])
def test_one_hot_conv_is_the_dense_convolution(kernel):
    torch.manual_seed(0)
    classes = 7
    conv = torch.nn.Conv2d(classes + 1, 12, kernel, padding=kernel // 2)
    index = torch.randint(0, classes, (2, 9, 11))
    edges = torch.rand(2, 1, 9, 11)  # not 0/1: the edge term must be a true convolution
    semantics = torch.cat([F.one_hot(index, classes).permute(0, 3, 1, 2).float(), edges], 1)
    expected = conv(semantics)
    gathered = OneHotConv(conv.weight, conv.bias, classes, has_edge=True)(
        tap_index(index, classes, kernel), tap_values(edges, kernel)
    )
    got = gathered.view(2, 9, 11, 12).permute(0, 3, 1, 2)
    assert torch.allclose(got, expected, atol=1e-5)


def test_spectral_norm_is_folded_as_eval_mode_computes_it():
    torch.manual_seed(0)
    conv = maybe_spectral(torch.nn.Conv2d(4, 6, 3, padding=1), True)
    conv.train()
    for _ in range(3):  # move u, v away from their initial values
        conv(torch.randn(1, 4, 5, 5))
    conv.eval()
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        expected = conv(x)
        u_before = conv.weight_u.clone()
        folded = plain_conv(conv)
        assert not hasattr(folded, "weight_orig")
        assert torch.allclose(folded(x), expected, atol=1e-6)
    assert torch.equal(conv.weight_u, u_before)  # folding does not run a power iteration


def test_fast_generator_requires_edges_for_instance_models():
    model = tiny_model(use_instance=True)
    fast = FastSPADEGenerator.from_generator(model.generator, 6, has_edge=True)
    with pytest.raises(ValueError, match="edges"):
        fast(torch.zeros(1, 64, 64, dtype=torch.long))


def test_bf16_pipeline_stays_close_to_fp32():
    # bf16 is meant for GPUs; on the CPU it only shows that the fast path runs in reduced precision.
    model = tiny_model(use_instance=True, use_vae=True)
    index, edges = label_batch(model)
    z = torch.randn(2, 256)
    reference = Pipeline(model, fast=False).generate(index, edges, z)
    half = Pipeline(tiny_model(use_instance=True, use_vae=True), dtype=torch.bfloat16).generate(index, edges.bfloat16(), z)
    assert half.dtype == torch.float32  # outputs come back as float32 whatever the compute dtype
    assert (half - reference).abs().mean() < 0.03


@pytest.mark.slow
def test_compiled_fast_generator_matches_plain():
    model = tiny_model(use_instance=True, contain_dontcare=True)
    index, edges = label_batch(model)
    expected = Pipeline(model, fast=False).generate(index, edges, None)
    compiled = Pipeline(model, compile=True).generate(index, edges, None)
    assert (compiled - expected).abs().max() < 1e-4
