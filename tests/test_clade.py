"""CLADE networks, ICPE offset maps and the fast inference twin, beyond the official parity cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spadekit.errors import CheckpointError
from spadekit.methods.clade import CLADE, CLADEGenerator, FastCLADEGenerator, flip_offsets, intra_class_offsets
from spadekit.methods.clade.convert import load_official, save_official


def count(module: torch.nn.Module, part: str = "") -> float:
    return sum(p.numel() for name, p in module.named_parameters() if part in name) / 1e6


# Facts sheet §2.6 (official define_G, ngf 64): total and norm-layer parameters in millions.
FULL_SIZE = {
    "cityscapes": (dict(num_classes=35, width=512, aspect_ratio=2.0, upsampling="more", use_instance=True), 67.90, 0.77),
    "ade20k": (dict(num_classes=151, width=256), 71.43, 3.31),
    "coco": (dict(num_classes=183, width=256, use_instance=True), 72.51, 4.01),
}


@pytest.mark.parametrize("name", list(FULL_SIZE))
def test_full_size_parameter_counts(name):
    kwargs, total, norms = FULL_SIZE[name]
    with torch.device("meta"):
        generator = CLADEGenerator(**kwargs)
    assert round(count(generator), 2) == total
    assert round(count(generator, ".norm_"), 2) == norms
    with torch.device("meta"):
        icpe = CLADEGenerator(**kwargs, use_dist=True)
    layers = sum(isinstance(m, CLADE) for m in icpe.modules())
    assert count(icpe) * 1e6 - count(generator) * 1e6 == pytest.approx(6 * layers)  # 6 parameters per ICPE layer


def test_class_affine_is_a_lookup_without_one_plus():
    torch.manual_seed(0)
    layer = CLADE(channels=2, num_classes=3, norm="instance").eval()
    with torch.no_grad():
        layer.class_specified_affine.weight.copy_(torch.tensor([[2.0, -1.0], [0.5, 3.0], [0.0, 1.0]]))
        layer.class_specified_affine.bias.copy_(torch.tensor([[1.0, 0.0], [-2.0, 0.25], [4.0, 4.0]]))
    x = torch.randn(1, 2, 4, 4)
    classes = torch.tensor([[0, 1, 2, 1], [2, 2, 0, 0], [1, 1, 1, 1], [0, 2, 0, 2]])
    segmap = torch.nn.functional.one_hot(classes, 3).permute(2, 0, 1)[None].float()
    normalized = (x - x.mean((2, 3), keepdim=True)) / torch.sqrt(x.var((2, 3), unbiased=False, keepdim=True) + 1e-5)
    w, b = layer.class_specified_affine.weight, layer.class_specified_affine.bias
    expected = normalized * w[classes].permute(2, 0, 1)[None] + b[classes].permute(2, 0, 1)[None]
    with torch.no_grad():
        assert torch.allclose(layer(x, segmap), expected, atol=1e-5)


def test_instance_channel_becomes_an_extra_output_channel():
    layer = CLADE(channels=3, num_classes=2, norm="instance", use_instance=True)
    with torch.no_grad():
        layer.inst_conv.weight.fill_(2.0)
        layer.inst_conv.bias.fill_(-0.5)
    segmap = torch.zeros(1, 3, 8, 8)
    segmap[:, 0] = 1
    segmap[:, 2, 2:4] = 1  # edges: not a class, even where they are 1
    out = layer(torch.randn(1, 3, 4, 4), segmap)
    assert out.shape == (1, 4, 4, 4)
    edges_small = torch.zeros(4, 4)
    edges_small[1] = 1  # nearest resize of rows 2..3 to 4 rows
    assert torch.allclose(out[0, 3], 2 * edges_small - 0.5)


def test_icpe_scales_gamma_and_beta_by_the_offset_convs():
    layer = CLADE(channels=1, num_classes=1, norm="instance", use_dist=True).eval()
    affine = layer.class_specified_affine
    with torch.no_grad():
        affine.weight.fill_(2.0)
        affine.bias.fill_(3.0)
        affine.dist_conv_w.weight.copy_(torch.tensor([0.5, -1.0]).view(1, 2, 1, 1))
        affine.dist_conv_w.bias.fill_(0.1)
        affine.dist_conv_b.weight.copy_(torch.tensor([1.0, 2.0]).view(1, 2, 1, 1))
        affine.dist_conv_b.bias.fill_(0.0)
    x = torch.randn(1, 1, 2, 2)
    dist = torch.rand(1, 2, 2, 2) * 2 - 1
    normalized = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-5)
    a = 0.5 * dist[:, :1] - dist[:, 1:] + 0.1
    b = dist[:, :1] + 2 * dist[:, 1:]
    expected = normalized * 2 * (1 + a) + 3 * (1 + b)
    with torch.no_grad():
        assert torch.allclose(layer(x, torch.ones(1, 1, 2, 2), dist), expected, atol=1e-5)
    with pytest.raises(ValueError, match="dist"):
        layer(x, torch.ones(1, 1, 2, 2))


def test_block_convs_take_one_more_input_per_instance_channel():
    generator = CLADEGenerator(num_classes=7, ngf=6, width=128, aspect_ratio=2.0, upsampling="more", use_instance=True)
    state = generator.state_dict()
    # Facts sheet §2.4 (fixture p1 shapes) and key order within a block.
    assert state["head_0.conv_0.weight_orig"].shape == (96, 97, 3, 3)
    assert state["up_0.conv_s.weight_orig"].shape == (48, 97, 1, 1)
    assert "up_0.conv_s.bias" not in state
    assert state["head_0.norm_0.class_specified_affine.weight"].shape == (7, 96)
    block = [k.split(".")[1] for k in state if k.startswith("up_0.")]
    assert [b for i, b in enumerate(block) if b not in block[:i]] == ["conv_0", "conv_1", "conv_s", "norm_0", "norm_1", "norm_s"]
    icpe = CLADEGenerator(num_classes=7, ngf=6, width=128, use_dist=True).state_dict()
    assert icpe["up_1.norm_0.class_specified_affine.dist_conv_b.weight"].shape == (1, 2, 1, 1)


# -- ICPE offset maps ------------------------------------------------------------------------------


def test_offsets_of_a_hand_worked_example():
    label = np.array(
        [
            [0, 1, 1, 0, 2],
            [0, 1, 0, 0, 2],
            [3, 0, 0, 1, 0],
            [3, 3, 0, 0, 1],
        ]
    )
    raw = intra_class_offsets(label, normalize=False)
    # Class 1: {(0,1),(0,2),(1,1)} centroid (1/3, 4/3); {(2,3),(3,4)} touch diagonally: one component, centroid (2.5, 3.5).
    assert raw[0, 0, 1] == pytest.approx(-1 / 3) and raw[1, 0, 1] == pytest.approx(-1 / 3)
    assert raw[0, 1, 1] == pytest.approx(2 / 3) and raw[1, 0, 2] == pytest.approx(2 / 3)
    assert raw[0, 2, 3] == pytest.approx(-0.5) and raw[1, 3, 4] == pytest.approx(0.5)
    # Class 2: a vertical pair, centroid row 0.5; class 3: an L, centroid (8/3, 1/3).
    assert raw[0, 0, 4] == pytest.approx(-0.5) and raw[1, 0, 4] == 0
    assert raw[0, 3, 1] == pytest.approx(1 / 3) and raw[1, 3, 1] == pytest.approx(2 / 3)
    assert not raw[:, label == 0].any(), "value 0 gets no offsets"
    normed = intra_class_offsets(label)
    assert normed.dtype == np.float32 and normed.shape == (2, 4, 5)
    # Each component divided by its own largest |offset| + 1e-5.
    assert normed[0, 1, 1] == pytest.approx((2 / 3) / (2 / 3 + 1e-5))
    assert normed[0, 0, 1] == pytest.approx((-1 / 3) / (2 / 3 + 1e-5))
    assert normed[1, 3, 4] == pytest.approx(0.5 / (0.5 + 1e-5))
    assert normed[0, 3, 1] == pytest.approx((1 / 3) / (2 / 3 + 1e-5))
    assert np.abs(normed).max() < 1
    with_zero = intra_class_offsets(label, normalize=False, ignore_value=None)
    assert with_zero[:, label == 0].any()


def test_single_pixels_get_zero_and_bad_shapes_fail():
    label = np.zeros((3, 3), dtype=np.uint8)
    label[1, 1] = 5
    assert not intra_class_offsets(label).any()
    with pytest.raises(ValueError, match="one"):
        intra_class_offsets(np.zeros((1, 3, 3)))


def test_flip_equals_the_offsets_of_the_flipped_annotation():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 4, (6, 4)).repeat(4, 0).repeat(5, 1)
    ours = flip_offsets(torch.from_numpy(intra_class_offsets(label)))
    direct = torch.from_numpy(intra_class_offsets(label[:, ::-1].copy()))
    assert direct.abs().max() > 0.5
    assert torch.allclose(ours, direct, atol=1e-6)
    # The paper's loader flips along the height and keeps the sign: not the flipped annotation's map.
    assert not torch.allclose(torch.from_numpy(intra_class_offsets(label)).flip(1), direct, atol=1e-3)
    assert torch.allclose(flip_offsets(ours[None])[0], torch.from_numpy(intra_class_offsets(label)), atol=1e-6)


# -- fast inference twin ---------------------------------------------------------------------------

FAST_CASES = {
    "syncbatch, spectral, instance channel": dict(use_instance=True),
    "ICPE + instance, instance norm": dict(use_instance=True, use_dist=True, norm="instance"),
    "ICPE, batch norm, more, 2:1": dict(use_dist=True, norm="batch", upsampling="more", width=128, aspect_ratio=2.0),
    "VAE, no spectral norm": dict(use_vae=True, spectral=False, z_dim=8),
    "most upsampling, instance channel": dict(upsampling="most", width=128, use_instance=True),
}


def random_clade(**options) -> CLADEGenerator:
    """A random CLADE generator with non-trivial tables, convs and batch-norm statistics."""
    kwargs = {"num_classes": 5, "ngf": 8, "width": 64, **options}
    torch.manual_seed(0)
    generator = CLADEGenerator(**kwargs)
    with torch.no_grad():
        for module in generator.modules():
            if hasattr(module, "dist_conv_w"):
                module.weight.normal_(1, 0.3)
                module.bias.normal_(0, 0.3)
                for conv in (module.dist_conv_w, module.dist_conv_b):
                    conv.weight.normal_(0, 0.5)
                    conv.bias.normal_(0, 0.1)
            elif hasattr(module, "class_specified_affine"):
                module.class_specified_affine.weight.normal_(1, 0.3)
                module.class_specified_affine.bias.normal_(0, 0.3)
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None
    generator.train()
    index, edges, dist = label_batch(generator, n=4, seed=1)
    with torch.no_grad():
        generator(one_hot(generator, index, edges), torch.randn(4, generator.z_dim) if generator.use_vae else None, dist)
    return generator.eval()


def label_batch(generator: CLADEGenerator, n: int = 2, seed: int = 0):
    w = generator.sw * 2 ** {"normal": 5, "more": 6, "most": 7}[generator.upsampling]
    h = generator.sh * 2 ** {"normal": 5, "more": 6, "most": 7}[generator.upsampling]
    gen = torch.Generator().manual_seed(seed)
    index = torch.randint(0, generator.num_classes, (n, h // 4, w // 4), generator=gen).repeat_interleave(4, 1).repeat_interleave(4, 2)
    edges = (torch.rand(n, 1, h, w, generator=gen) < 0.2).float() if generator.use_instance else None
    dist = torch.rand(n, 2, h, w, generator=gen) * 2 - 1 if generator.use_dist else None
    return index, edges, dist


def one_hot(generator: CLADEGenerator, index: torch.Tensor, edges: torch.Tensor | None) -> torch.Tensor:
    semantics = torch.nn.functional.one_hot(index, generator.num_classes).permute(0, 3, 1, 2).float()
    return semantics if edges is None else torch.cat([semantics, edges], 1)


@pytest.mark.parametrize("channels_last", [True, False], ids=["channels-last", "contiguous"])
@pytest.mark.parametrize("name", list(FAST_CASES))
def test_fast_generator_matches_plain(name, channels_last):
    generator = random_clade(**FAST_CASES[name])
    index, edges, dist = label_batch(generator)
    z = torch.randn(index.shape[0], generator.z_dim) if generator.use_vae else None
    with torch.no_grad():
        expected = generator(one_hot(generator, index, edges), z, dist)
        fast = FastCLADEGenerator.from_generator(generator, channels_last=channels_last)
        got = fast(index, edges, z, dist)
        via_semantics = fast.forward_semantics(one_hot(generator, index, edges), z, dist)
    # The comparison means something only when the images are neither flat nor saturated.
    assert expected.std() > 0.1 and (expected.abs() > 0.999).float().mean() < 0.3
    assert (got - expected).abs().max() < 1e-4
    assert torch.equal(got, via_semantics)
    assert not any(k.endswith("weight_orig") for k in fast.state_dict()), "spectral norm must be folded"


def test_fast_generator_uses_the_running_statistics_not_the_batch():
    generator = random_clade(use_instance=True)
    index, edges, _ = label_batch(generator, n=1)
    fast = FastCLADEGenerator.from_generator(generator)
    with torch.no_grad():
        for module in generator.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.add_(1.0)
        moved = generator(one_hot(generator, index, edges))
        assert (fast(index, edges) - moved).abs().max() > 1e-2  # the fast twin copied the statistics it was built with


# -- official conversion errors --------------------------------------------------------------------


def test_conversion_errors_name_the_file_and_the_problem(tmp_path):
    generator = CLADEGenerator(num_classes=5, ngf=4, width=64, use_instance=True)
    save_official(tmp_path, generator)
    with pytest.raises(CheckpointError, match=r"latest_net_G.pth: the weights have 5 class channels but label_nc 7"):
        load_official(tmp_path, {"label_nc": 7, "crop_size": 64})
    assert load_official(tmp_path, {"label_nc": 4, "contain_dontcare_label": True, "crop_size": 64}).options["label_nc"] == 4
    vae = CLADEGenerator(num_classes=5, ngf=4, width=64, use_vae=True, z_dim=8)
    save_official(tmp_path / "vae", vae)
    with pytest.raises(CheckpointError, match=r"fc maps z to .* crop_size 128"):
        load_official(tmp_path / "vae", {"crop_size": 128})
    (tmp_path / "other").mkdir()
    torch.save({"lowres_stream.model.0.weight": torch.zeros(1)}, tmp_path / "other" / "latest_net_G.pth")
    with pytest.raises(CheckpointError, match=r"other/latest_net_G.pth: not a CLADE/SPADE generator checkpoint"):
        load_official(tmp_path / "other")
    with pytest.raises(CheckpointError, match="file not found"):
        load_official(tmp_path / "missing")
