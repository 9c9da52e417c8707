"""Label-map layouts: the gather and the band-sparse modulation equal the dense SPADE convolutions,
in the forward pass and in every gradient (training), and in the fast inference generator.

Exactness is checked in float64: the rewrites only change the order of float summation, so in
float64 they agree to ~1e-13, while in float32 a value that rounds across a leaky-ReLU kink can
legitimately move one gradient entry (a bug would show as an error of order 1 in float64).
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F

from conftest import fixture_cases
from peer_checks import spade_model_overrides, unpack_bits
from test_fast import tiny_model as calibrated_model
from spadekit.config import load_config
from spadekit.convert import convert_official
from spadekit.data.labels import instance_edges
from spadekit.fast import FastSPADEGenerator
from spadekit.inference import one_hot
from spadekit.models import build_networks
from spadekit.models import layout as layout_module
from spadekit.models.layout import Layout, make_band
from spadekit.models.norms import SPADE


def region_labels(n: int, h: int, w: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Label maps made of large regions (so most pixels are away from boundaries), every class
    present, plus instance maps that split one region into two instances (edges inside a class)."""
    gen = torch.Generator().manual_seed(seed)
    index = torch.zeros(n, h, w, dtype=torch.long)
    for b in range(n):
        for c in range(1, classes):
            y0 = int(torch.randint(0, h - h // 3, (1,), generator=gen))
            x0 = int(torch.randint(0, w - w // 3, (1,), generator=gen))
            index[b, y0 : y0 + h // 3 + c % 3, x0 : x0 + w // 4 + c % 2] = c
    instance = index.clone()
    instance[:, :, w // 2 :] += 100
    return index, instance


def brute_force_band(index: torch.Tensor, edges: torch.Tensor | None, radius: int) -> torch.Tensor:
    """The band by its definition: a pixel is outside it only when every pixel within ``radius``
    (Chebyshev) lies inside the map, has its class and carries no edge."""
    n, h, w = index.shape
    band = torch.zeros(n, h, w, dtype=torch.bool)
    for b in range(n):
        for y in range(h):
            for x in range(w):
                if y < radius or x < radius or y >= h - radius or x >= w - radius:
                    band[b, y, x] = True
                    continue
                window = index[b, y - radius : y + radius + 1, x - radius : x + radius + 1]
                inside = bool((window == index[b, y, x]).all())
                if edges is not None:
                    inside &= bool((edges[b, 0, y - radius : y + radius + 1, x - radius : x + radius + 1] == 0).all())
                band[b, y, x] = not inside
    return band


@pytest.mark.parametrize("radii", [(1, 1), (2, 2), (1, 0)])
def test_band_is_every_pixel_near_a_boundary_an_edge_or_the_border(radii):
    index, instance = region_labels(2, 48, 40, 5)
    edges = instance_edges(instance[:, None])
    band = make_band(index, edges, *radii)
    expected = brute_force_band(index, edges, sum(radii))
    got = torch.zeros(expected.numel(), dtype=torch.bool)
    got[band.pixels] = True
    assert torch.equal(got.view_as(expected), expected)
    assert 0.1 < band.fraction < 0.9  # both kinds of pixels are exercised
    h, w = index.shape[1:]
    radius = sum(radii)

    def neighbourhood(p: int) -> tuple:
        b, y, x = p // (h * w), (p % (h * w)) // w, p % w
        return tuple(
            (int(index[b, y + dy, x + dx]), float(edges[b, 0, y + dy, x + dx])) if 0 <= y + dy < h and 0 <= x + dx < w else None
            for dy in range(-radius, radius + 1)
            for dx in range(-radius, radius + 1)
        )

    # A band pixel shares its representative's gamma/beta only when their neighbourhoods are equal,
    # and distinct neighbourhoods have distinct representatives.
    representative_of = band.representatives[band.pattern]
    for p, rep in list(zip(band.pixels.tolist(), representative_of.tolist()))[::7]:
        assert neighbourhood(p) == neighbourhood(rep)
    keys = [neighbourhood(p) for p in band.representatives.tolist()]
    assert len(set(keys)) == len(keys) and band.work < band.fraction
    # Each representative's windows read the hidden rows of exactly its k x k neighbours (zero row outside).
    r = radii[1]
    for j, p in enumerate(band.representatives.tolist()[::5]):
        b, y, x = p // (h * w), (p % (h * w)) // w, p % w
        rows = band.windows[j * 5].tolist()
        for t, (dy, dx) in enumerate((dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)):
            yy, xx = y + dy, x + dx
            if 0 <= yy < h and 0 <= xx < w:
                assert band.support[rows[t]].item() == b * h * w + yy * w + xx
            else:
                assert rows[t] == band.support.numel()


def _spade_outputs(spade: SPADE, x: torch.Tensor, seg, weights: torch.Tensor):
    spade = copy.deepcopy(spade).train()
    x = x.clone().requires_grad_()
    out = spade(x, seg)
    (out * weights).sum().backward()
    return out.detach(), x.grad, {name: p.grad for name, p in spade.named_parameters()}


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("edge", ["none", "binary", "graded"])
def test_spade_layer_from_a_layout_equals_the_dense_layer(kernel, edge):
    torch.manual_seed(0)
    classes, h, w = 6, 96, 112
    index, instance = region_labels(2, h, w, classes)
    edges = instance_edges(instance[:, None]).double() if edge != "none" else None
    if edge == "graded":  # any float map may ride in the edge channel
        edges[:, :, :, : w // 3] *= 0.5
    semantics = one_hot(index, classes, edges, torch.float64)
    spade = SPADE(12, classes + int(edges is not None), "batch", kernel_size=kernel, hidden=10).double()
    x = torch.randn(2, 12, h // 2, w // 2, dtype=torch.float64)
    weights = torch.randn(2, 12, h // 2, w // 2, dtype=torch.float64)
    expected = _spade_outputs(spade, x, semantics, weights)
    for threshold in (0.0, 1.0):  # gather + dense conv; band-sparse everywhere
        layout = Layout.from_semantics(semantics, classes, threshold)
        assert layout is not None
        got = _spade_outputs(spade, x, layout, weights)
        assert (got[0] - expected[0]).abs().max() < 1e-12
        assert (got[1] - expected[1]).abs().max() < 1e-12
        for name, grad in expected[2].items():
            assert (got[2][name] - grad).abs().max() <= 1e-11 * (1 + grad.abs().max()), name
    band = Layout.from_semantics(semantics, classes).level((h // 2, w // 2), kernel, torch.float64).band(kernel)
    assert band.fraction < 0.95  # the constant (per-class) pixels were exercised


@pytest.mark.parametrize("norm", ["batch", "instance"])
@pytest.mark.parametrize("n", [1, 2])
def test_norm_modulation_equals_the_plain_ops_for_every_memory_layout(norm, n):
    from spadekit.models.norms import modulated_norm, param_free_norm

    torch.manual_seed(0)
    c, h, w = 16, 2, 3
    layouts = {"contiguous": torch.contiguous_format, "channels-last": torch.channels_last}
    for x_layout, grad_layout, scale_layout in [(a, b, d) for a in layouts for b in layouts for d in layouts]:
        x0 = torch.randn(n, c, h, w, dtype=torch.float64)
        scale0, shift0, grad = (torch.randn(n, c, h, w, dtype=torch.float64) for _ in range(3))
        results = []
        for fused in (False, True):
            module = param_free_norm(norm, c).double().train()
            x = x0.clone(memory_format=layouts[x_layout]).requires_grad_()
            scale = scale0.clone(memory_format=layouts[scale_layout]).requires_grad_()
            shift = shift0.clone().requires_grad_()
            out = modulated_norm(module, x, scale, shift) if fused else torch.addcmul(shift, module(x.contiguous()), scale)
            # The reference gets its gradient in the plain layout: PyTorch's instance norm gets a
            # channels-last gradient wrong for a batch of one (torch 2.14).
            out.backward(grad.clone(memory_format=layouts[grad_layout] if fused else torch.contiguous_format))
            results.append([out.detach(), x.grad, scale.grad, shift.grad, *module.buffers()])
        for a, b in zip(*results):
            assert torch.allclose(a.double(), b.double(), rtol=1e-12, atol=1e-12), (x_layout, grad_layout, scale_layout)


GENERATOR_CASES = {
    "instance edges + don't-care, batch norm": ["model.use_instance=true", "model.contain_dontcare=true"],
    "batch of one, batch norm": ["model.use_instance=true", "train.batch_size=1"],
    "batch of one, instance norm": ["model.norm_G=instance", "train.batch_size=1"],
    "VAE, instance norm": ["model.use_vae=true", "model.norm_G=instance"],
    "kernel 5, no spectral norm": ["model.spade_kernel=5", "model.spectral_G=false"],
    "more upsampling, 2:1": ["model.upsampling=more", "model.width=128", "model.aspect_ratio=2.0", "model.use_instance=true"],
}


@pytest.mark.parametrize("overrides", list(GENERATOR_CASES.values()), ids=list(GENERATOR_CASES))
def test_training_generator_layout_paths_give_the_dense_outputs_and_gradients(overrides, monkeypatch):
    config = load_config("custom", ["model.label_nc=6", "model.ngf=8", "model.width=64", "model.spade_hidden=16"] + overrides)
    m = config.model
    torch.manual_seed(0)
    generator = build_networks(config.model, init=False)[0].double().train()
    classes = m.label_nc + int(m.contain_dontcare)
    w, h = m.output_size
    n = config.train.batch_size if "train.batch_size=1" in overrides else 2
    index, instance = region_labels(n, h, w, classes)
    edges = instance_edges(instance[:, None]) if m.use_instance else None
    semantics = one_hot(index, classes, edges, torch.float64)
    z = torch.randn(n, m.z_dim, dtype=torch.float64) if m.use_vae else None
    weights = torch.linspace(-1, 1, n * 3 * h * w, dtype=torch.float64).view(n, 3, h, w)
    band_calls = []
    original = layout_module.BandModulation.apply
    monkeypatch.setattr(layout_module.BandModulation, "apply", lambda *a: band_calls.append(1) or original(*a))

    def run(path: str):
        g = copy.deepcopy(generator)
        g.layout_path, g.band_threshold = path, 0.9
        out = g(semantics, z)
        (out * weights).sum().backward()
        return out.detach(), {name: p.grad for name, p in g.named_parameters()}, dict(g.named_buffers())

    expected = run("dense")
    assert 0.1 < expected[0].std() and (expected[0].abs() > 0.99).float().mean() < 0.5  # lively, not saturated
    scale = max(g.abs().max() for g in expected[1].values())
    for path in ("gather", "band"):
        got = run(path)
        assert (got[0] - expected[0]).abs().max() < 1e-12, path
        for name, grad in expected[1].items():
            assert (got[1][name] - grad).abs().max() <= 1e-10 * scale, f"{path}: {name}"
        for name, buffer in expected[2].items():  # batch-norm statistics, spectral-norm vectors
            assert torch.allclose(got[2][name].double(), buffer.double(), rtol=1e-10, atol=1e-12), f"{path}: {name}"
    assert band_calls, "the band-sparse path never ran"


def test_float32_training_outputs_match_and_soft_or_eval_inputs_stay_dense():
    config = load_config("custom", ["model.label_nc=5", "model.ngf=8", "model.width=64", "model.spade_hidden=16"])
    torch.manual_seed(0)
    generator = build_networks(config.model, init=False)[0].train()
    index, _ = region_labels(2, 64, 64, 5)
    semantics = one_hot(index, 5, None, torch.float32)
    outputs = {}
    for path in ("dense", "band"):
        g = copy.deepcopy(generator)
        g.layout_path = path
        with torch.no_grad():
            outputs[path] = g(semantics)
    assert (outputs["band"] - outputs["dense"]).abs().max() < 1e-5
    assert isinstance(generator.layout(semantics), Layout)
    soft = semantics * 0.9 + 0.02  # not one-hot: the dense path
    assert generator.layout(soft) is soft
    assert generator.eval().layout(semantics) is semantics


# ----------------------------------------------------------------------------- fast inference


FAST_CASES = {
    "batch norm, spectral": {},
    "instance channel + don't-care": {"use_instance": True, "contain_dontcare": True},
    "VAE": {"use_vae": True},
    "kernel 5, instance norm": {"spade_kernel": 5, "norm_G": "instance"},
    "most upsampling, instance channel": {"upsampling": "most", "width": 128, "use_instance": True},
}


@pytest.mark.parametrize("options", list(FAST_CASES.values()), ids=list(FAST_CASES))
@pytest.mark.parametrize("threshold", [1.0, 0.7])  # band-sparse everywhere; at the top levels only
def test_band_sparse_fast_generator_matches_plain(options, threshold):
    model = calibrated_model(**options)
    m = model.config.model
    classes = m.label_nc + int(m.contain_dontcare)
    w, h = m.output_size
    index, instance = region_labels(2, h, w, classes, seed=3)
    edges = instance_edges(instance[:, None]) if m.use_instance else None
    z = torch.randn(2, m.z_dim) if m.use_vae else None
    with torch.no_grad():
        expected = model.generator(one_hot(index, classes, edges, torch.float32), z)
        fast = FastSPADEGenerator.from_generator(model.generator, classes, m.use_instance, band_threshold=threshold)
        got = fast(index, edges, z)
    assert 0.05 < expected.std() and (expected.abs() > 0.999).float().mean() < 0.5
    assert (got - expected).abs().max() < 1e-4
    fractions = fast.band_fractions(index, edges)
    assert fractions[f"{h}x{w}"] < min(threshold, 0.9)  # the top level took the band path
    assert threshold == 1.0 or max(fractions.values()) > threshold  # and, at 0.7, some level the dense one


@pytest.mark.parametrize("case", fixture_cases("official_parity"), ids=lambda p: p.name)
@pytest.mark.parametrize("threshold", [1.0, 0.4])
def test_band_sparse_fast_generator_reproduces_the_official_outputs(case, threshold):
    opt = json.loads((case / "opt.json").read_text())
    io = torch.load(case / "io.pt", weights_only=True)
    model = convert_official(case, "custom", overrides=spade_model_overrides(opt))
    m = model.config.model
    classes = m.label_nc + int(m.contain_dontcare)
    semantics = unpack_bits(io)
    fast = FastSPADEGenerator.from_generator(model.generator, classes, m.use_instance, band_threshold=threshold)
    with torch.no_grad():
        got = fast.forward_semantics(semantics, io.get("z_eval"))
    expected = io["G_eval"]
    error = (got - expected).norm() / expected.norm()
    assert error <= 1e-5 and (got - expected).abs().max() < 1e-4
    index = semantics[:, :classes].argmax(1)
    edges = semantics[:, classes:] if m.use_instance else None
    top = fast.band_fractions(index, edges)[f"{expected.shape[2]}x{expected.shape[3]}"]
    assert top < 0.95  # per-class constants were used for part of the image


@pytest.mark.parametrize("path", ["gather", "band"])
def test_layout_paths_train_under_bf16_autocast(path):
    """Mixed precision (train.precision=bf16): the layout path runs in the autocast dtype and its
    gradients come back to the float32 parameters, as close to the float32 result as the dense
    path's under the same autocast."""
    config = load_config("custom", ["model.label_nc=5", "model.ngf=8", "model.width=64", "model.spade_hidden=16", "model.use_instance=true"])
    torch.manual_seed(0)
    generator = build_networks(config.model, init=False)[0].train()
    index, instance = region_labels(2, 64, 64, 5)
    semantics = one_hot(index, 5, instance_edges(instance[:, None]), torch.float32)
    results = {}
    for name, autocast in (("reference", False), ("dense", True), (path, True)):
        g = copy.deepcopy(generator)
        g.layout_path, g.band_threshold = ("dense" if name == "reference" else name), 1.0
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = g(semantics)
        out.float().square().mean().backward()
        results[name] = out.detach().float(), torch.cat([p.grad.flatten() for p in g.parameters() if p.grad is not None])
        assert all(p.grad.dtype == torch.float32 for p in g.parameters() if p.grad is not None)
    reference_out, reference_grad = results["reference"]

    def errors(name: str) -> tuple[float, float]:
        out, grad = results[name]
        return float((out - reference_out).abs().mean()), float((grad - reference_grad).norm() / reference_grad.norm())

    dense, ours = errors("dense"), errors(path)
    assert ours[0] < 2 * dense[0] + 1e-3 and ours[1] < 2 * dense[1] + 1e-2, (ours, dense)
