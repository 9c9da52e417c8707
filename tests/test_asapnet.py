"""ASAPNet networks and the fast inference twin, beyond the official parity cases."""

from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spadekit.errors import CheckpointError, ConfigError
from spadekit.methods.asapnet import (
    ASAPNetDiscriminator,
    ASAPNetGenerator,
    FastASAPNetGenerator,
    PixelMLP,
    TentDownsample,
    allowed_widths,
    positional_encoding,
)
from spadekit.methods.asapnet.convert import load_official, save_official
from spadekit.models.discriminator import MultiscaleDiscriminator


# Facts sheet §1.8 (official define_G): HR channels, parameters per cell, generator parameters (M).
FULL_SIZE = {
    "cityscapes 512x256": (dict(semantic_nc=36, width=512, aspect_ratio=2.0), [51, 64, 64, 64, 64, 3], 16003, 83.20),
    "facades 512": (dict(semantic_nc=13, width=512, lr_instance=False), [33, 64, 64, 64, 64, 3], 14851, 82.01),
    "facades 1024": (dict(semantic_nc=13, width=1024, lr_instance=False), [37, 64, 64, 64, 64, 3], 15107, 82.27),
}


@pytest.mark.parametrize("name", list(FULL_SIZE))
def test_full_size_parameter_counts(name):
    kwargs, channels, per_cell, total = FULL_SIZE[name]
    with torch.device("meta"):
        generator = ASAPNetGenerator(**kwargs)
    assert generator.highres_stream.channels == channels
    assert generator.num_params == per_cell
    assert round(sum(p.numel() for p in generator.parameters()) / 1e6, 2) == total
    assert all(k.startswith("lowres_stream.model.") for k in generator.state_dict())


def test_positional_encoding_formula_and_order():
    code = positional_encoding(8, 12, 4)
    assert code.shape == (1, 8, 8, 12) and code.dtype == torch.float32
    y, x = np.mgrid[0:8, 0:12].astype(np.float64)
    expected = []
    for f in (4, 2):  # lowest frequency first
        expected += [np.cos(2 * np.pi * (x % f) / f), np.sin(2 * np.pi * (x % f) / f)]
        expected += [np.cos(2 * np.pi * (y % f) / f), np.sin(2 * np.pi * (y % f) / f)]
    assert np.allclose(code[0].numpy(), np.stack(expected), atol=1e-6)
    assert positional_encoding(4, 4, 1).shape == (1, 0, 4, 4)


def naive_pixel_mlp(x: torch.Tensor, params: torch.Tensor, channels: list[int], tile: int) -> torch.Tensor:
    """Pixel by pixel, reading the parameter layout of the facts sheet (biases, then row-major weights)."""
    n, _, h, w = x.shape
    out = torch.zeros(n, channels[-1], h, w, dtype=torch.float64)
    for b in range(n):
        for r in range(h):
            for c in range(w):
                vector = params[b, :, r // tile, c // tile].double()
                feature = x[b, :, r, c].double()
                start = 0
                for layer, (nci, nco) in enumerate(zip(channels[:-1], channels[1:])):
                    bias = vector[start : start + nco]
                    weight = vector[start + nco : start + nco + nci * nco].view(nci, nco)
                    start += nco + nci * nco
                    feature = feature @ weight + bias
                    feature = torch.tanh(feature) if layer == len(channels) - 2 else F.leaky_relu(feature, 0.01)
                out[b, :, r, c] = feature
    return out


@pytest.mark.parametrize("positional", [True, False])
def test_pixel_mlp_layout_tiling_and_activations(positional):
    torch.manual_seed(0)
    mlp = PixelMLP(in_channels=3, out_channels=2, width=4, depth=3, tile=2, positional=positional)
    assert mlp.channels == [3 + 4 * positional, 4, 4, 2]
    x = torch.randn(2, 3, 4, 6)
    params = torch.randn(2, mlp.num_params, 2, 3) * 0.4
    features = torch.cat([x, positional_encoding(4, 6, 2).expand(2, -1, -1, -1)], 1) if positional else x
    expected = naive_pixel_mlp(features, params, mlp.channels, 2)
    got = mlp(x, params)
    assert expected.std() > 0.2 and (expected.abs() > 0.999).float().mean() < 0.3
    assert torch.allclose(got.double(), expected, atol=1e-5)
    with pytest.raises(ValueError, match="covers"):
        mlp(torch.randn(1, 3, 6, 6), params[:1])


def test_tent_kernels_and_downsampling():
    layer = TentDownsample(2, 1)
    assert torch.allclose(layer.kernel_w.flatten(), torch.tensor([1.0, 3, 3, 1]) / 8)
    assert torch.allclose(TentDownsample(4, 1).kernel_h.flatten(), torch.tensor([1.0, 3, 5, 7, 7, 5, 3, 1]) / 32)
    assert "kernel_w" not in layer.state_dict()
    x = torch.randn(1, 2, 8, 12, dtype=torch.float64)
    out = TentDownsample(4, 2).double()(x)
    assert out.shape == (1, 2, 2, 3)
    # Reference: reflect by 2, separable [1,3,5,7,7,5,3,1]/32 with stride 4 starting at the padded origin.
    k = np.array([1, 3, 5, 7, 7, 5, 3, 1]) / 32
    padded = np.pad(x[0].numpy(), ((0, 0), (2, 2), (2, 2)), mode="reflect")
    ref = np.einsum("i,j,cij->c", k, k, padded[:, 4:12, 8:16])
    assert np.allclose(out[0, :, 1, 2].numpy(), ref)


def test_size_constraints_are_config_errors_naming_the_allowed_sizes():
    assert allowed_widths(2.0, 16)[0] == 512 and allowed_widths(1.0, 16)[:2] == [256, 512]
    with pytest.raises(ConfigError, match=r"width 500 .* 500 // \(16·2.0\) = 15.*allowed widths: 512, 1024"):
        ASAPNetGenerator(36, width=500, aspect_ratio=2.0)
    with pytest.raises(ConfigError, match=r"≥ the learned factor 16.*allowed widths: 256"):
        ASAPNetGenerator(36, width=128, aspect_ratio=1.0)
    with pytest.raises(ConfigError, match="power of two"):
        ASAPNetGenerator(36, width=512, learned_downsampling=3)
    generator = ASAPNetGenerator(5, width=64, aspect_ratio=1.0, learned_downsampling=2, lr_width=4, lr_max_width=4, lr_depth=1, hr_width=4)
    assert generator.downsampling == 4
    with pytest.raises(ConfigError, match=r"multiples of 4, got 30×64 .*e\.g\. 28×64"):
        generator(torch.zeros(1, 5, 30, 64))
    assert generator(torch.zeros(1, 5, 12, 20)).shape == (1, 3, 12, 20)  # any size that tiles works


def test_lowres_key_layout_follows_the_official_indices():
    # Facts sheet §1.4: zero padding (fixture p1) and reflection padding, spectral norm.
    plain = ASAPNetGenerator(8, width=128, aspect_ratio=2.0, learned_downsampling=4, lr_width=8, lr_max_width=32, lr_depth=2, hr_width=8)
    shapes = {k: tuple(v.shape) for k, v in plain.state_dict().items()}
    assert shapes["lowres_stream.model.0.0.weight"] == (8, 8, 3, 3)
    assert shapes["lowres_stream.model.4.0.weight"] == (32, 8, 3, 3)
    assert shapes["lowres_stream.model.7.conv_block.0.0.weight"] == (32, 32, 3, 3)
    assert shapes["lowres_stream.model.8.weight"] == (371, 32, 1, 1) and "lowres_stream.model.8.bias" in shapes
    reflect = ASAPNetGenerator(8, width=128, aspect_ratio=2.0, learned_downsampling=4, lr_depth=1, spectral=True, reflection_pad=True)
    keys = set(reflect.state_dict())
    assert {"lowres_stream.model.1.0.weight_orig", "lowres_stream.model.4.0.weight_u", "lowres_stream.model.9.conv_block.1.1.weight"} <= keys
    assert not any(k.startswith("lowres_stream.model.0.") for k in keys)
    no_norm = ASAPNetGenerator(8, width=128, aspect_ratio=2.0, learned_downsampling=4, lr_depth=1, norm="none").state_dict()
    assert "lowres_stream.model.0.bias" in no_norm and "lowres_stream.model.6.conv_block.0.weight" in no_norm


def test_lr_instance_hides_the_last_channel_from_the_pixel_mlp():
    torch.manual_seed(0)
    generator = ASAPNetGenerator(4, width=64, aspect_ratio=1.0, learned_downsampling=4, lr_width=4, lr_max_width=8, lr_depth=1, hr_width=4)
    semantics = torch.zeros(1, 4, 8, 8)
    semantics[:, 0] = 1
    params = torch.randn(1, generator.num_params, 2, 2)
    edged = semantics.clone()
    edged[:, 3, 2:5] = 1
    assert torch.equal(generator.render(semantics, params), generator.render(edged, params))
    assert not torch.equal(generator.predict_parameters(semantics), generator.predict_parameters(edged))


def test_discriminator_width_cap():
    d = ASAPNetDiscriminator(11, ndf=8, num_D=1, n_layers=5, max_channels=32, norm="instanceaffine")
    state = d.state_dict()
    assert state["discriminator_0.model0.0.weight"].shape[0] == 8
    assert [state[f"discriminator_0.model{j}.0.0.weight_orig"].shape[0] for j in (1, 2, 3, 4)] == [16, 32, 32, 32]
    assert state["discriminator_0.model1.0.1.weight"].shape == (16,)  # instanceaffine has a learned scale
    ours = ASAPNetDiscriminator(11, ndf=64, n_layers=5)
    spade = MultiscaleDiscriminator(11, ndf=64, n_layers=5)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in spade.state_dict().items()}
    spade.load_state_dict(ours.state_dict())
    x = torch.randn(2, 11, 64, 64)
    with torch.no_grad():
        for a, b in zip(ours.eval()(x), spade.eval()(x)):
            assert all(torch.equal(u, v) for u, v in zip(a, b))


# -- fast inference twin ---------------------------------------------------------------------------

FAST_CASES = {
    "instance channel to the LR stream only": dict(),
    "reflection padding, spectral norm (gather with reflection)": dict(reflection_pad=True, spectral=True),
    "pre-downsampling by 2, edges in the MLP": dict(learned_downsampling=2, lr_instance=False),
    "pre-downsampling by 4, reflection padding": dict(learned_downsampling=1, reflection_pad=True),
    "batch norm, no positional code, S2 = 1": dict(learned_downsampling=1, norm="batch", positional=False, width=32),
    "lr_instance without an instance channel": dict(has_edge=False),
    "single-layer MLP, no norm": dict(hr_depth=1, norm="none"),
}


def random_asapnet(has_edge: bool = True, **options) -> ASAPNetGenerator:
    """A random ASAPNet whose pixel MLPs are far from linear yet not saturated: default conv init
    (the final predictor scaled by 0.7), random affine norms, batch-norm statistics from one pass."""
    kwargs = {"semantic_nc": 5 + int(has_edge), "width": 128, "aspect_ratio": 2.0, "learned_downsampling": 4, "lr_width": 8, "lr_max_width": 16, "lr_depth": 2, "hr_width": 8, **options}
    torch.manual_seed(0)
    generator = ASAPNetGenerator(**kwargs)
    with torch.no_grad():
        generator.lowres_stream.model[-1].weight.mul_(0.7)
        for module in generator.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None
            if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d)) and module.affine:
                module.weight.normal_(1, 0.2)
                module.bias.normal_(0, 0.2)
        generator.train()
        generator(semantics_of(*label_batch(generator, has_edge, n=4, seed=1), 5))
    return generator.eval()


def label_batch(generator: ASAPNetGenerator, has_edge: bool, n: int = 2, seed: int = 0):
    h, w = 32, 64
    gen = torch.Generator().manual_seed(seed)
    index = torch.randint(0, 5, (n, h // 2, w // 2), generator=gen).repeat_interleave(2, 1).repeat_interleave(2, 2)
    index[:, 0, :5] = torch.arange(5)
    edges = (torch.rand(n, 1, h, w, generator=gen) < 0.2).float() if has_edge else None
    return index, edges


def semantics_of(index: torch.Tensor, edges: torch.Tensor | None, classes: int) -> torch.Tensor:
    semantics = F.one_hot(index, classes).permute(0, 3, 1, 2).float()
    return semantics if edges is None else torch.cat([semantics, edges], 1)


@pytest.mark.parametrize("channels_last", [True, False], ids=["channels-last", "contiguous"])
@pytest.mark.parametrize("name", list(FAST_CASES))
def test_fast_generator_matches_plain(name, channels_last):
    options = dict(FAST_CASES[name])
    has_edge = options.pop("has_edge", True)
    generator = random_asapnet(has_edge, **options)
    index, edges = label_batch(generator, has_edge)
    with torch.no_grad():
        expected, params = generator.forward_with_parameters(semantics_of(index, edges, 5))
        fast = FastASAPNetGenerator.from_generator(generator, 5, has_edge, channels_last=channels_last)
        got = fast(index, edges)
        fast_params = fast.predict_parameters(index, edges)
        via_semantics = fast.forward_semantics(semantics_of(index, edges, 5))
    # The comparison means something only when the images are neither flat nor saturated.
    assert expected.std() > 0.1 and (expected.abs() > 0.999).float().mean() < 0.3
    assert (got - expected).abs().max() < 1e-4
    assert (fast_params - params).abs().max() < 1e-4 * params.abs().max()
    assert torch.equal(got, via_semantics)
    assert not any(k.endswith("weight_orig") for k in fast.state_dict()), "spectral norm must be folded"


# -- official conversion ---------------------------------------------------------------------------


def test_conversion_infers_the_mlp_size_and_reports_bad_options(tmp_path):
    generator = ASAPNetGenerator(8, width=128, aspect_ratio=2.0, learned_downsampling=4, lr_width=8, lr_max_width=32, lr_depth=2, hr_width=8)
    save_official(tmp_path, generator)
    # hr_width / hr_depth missing: the defaults (64, 5) do not fit 371 parameters, the only fit is (8, 5).
    loaded = load_official(tmp_path, {"crop_size": 128, "aspect_ratio": 2.0, "contain_dontcare_label": True})
    assert (loaded.kwargs["generator"]["hr_width"], loaded.kwargs["generator"]["hr_depth"]) == (8, 5)
    assert loaded.options["label_nc"] == 6
    with pytest.raises(CheckpointError, match=r"latest_net_G.pth: the low-res stream predicts 371 parameters per cell"):
        load_official(tmp_path, {"crop_size": 128, "aspect_ratio": 2.0, "hr_coor": None, "hr_width": 8})
    with pytest.raises(CheckpointError, match=r"latest_net_G.pth: .*total downsampling.*allowed widths"):
        load_official(tmp_path, {"crop_size": 100, "aspect_ratio": 2.0, "hr_width": 8})
    with pytest.raises(CheckpointError, match=r"label_nc 3"):
        load_official(tmp_path, {"crop_size": 128, "aspect_ratio": 2.0, "hr_width": 8, "label_nc": 3})
    with pytest.raises(ConfigError, match="use_vae"):
        load_official(tmp_path, {"use_vae": True})
    (tmp_path / "spade").mkdir()
    torch.save({"fc.weight": torch.zeros(2, 2, 3, 3)}, tmp_path / "spade" / "latest_net_G.pth")
    with pytest.raises(CheckpointError, match="not an ASAPNet generator checkpoint"):
        load_official(tmp_path / "spade")
