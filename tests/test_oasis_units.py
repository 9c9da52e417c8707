"""OASIS networks, losses and helpers: sizes, options and behaviour beyond the parity fixture."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import fixture_path
from spadekit.methods.oasis.convert import load_official_oasis
from spadekit.methods.oasis.discriminator import OasisDiscriminator
from spadekit.methods.oasis.ema import refresh_batchnorm_stats, update_ema_official
from spadekit.methods.oasis.generator import OasisGenerator, class_mask, official_start_size, region_noise
from spadekit.methods.oasis.losses import class_balancing_weights, labelmix_mask, n1_loss, n1_targets
from spadekit.methods.oasis.objective import OasisObjective

P1 = ("peers", "oasis", "p1_ade20klike_c10_64x64_noise3d")


def one_hot(labels: torch.Tensor, n: int) -> torch.Tensor:
    return torch.zeros(labels.shape[0], n, *labels.shape[1:]).scatter_(1, labels[:, None], 1.0)


def tiny_generator(**kwargs) -> OasisGenerator:
    options = dict(semantic_nc=5, channels=2, z_dim=4, spade_hidden=8)
    options.update(kwargs)
    return OasisGenerator(**options)


@pytest.fixture(scope="module")
def p1():
    directory = fixture_path(*P1)
    return load_official_oasis(directory), torch.load(directory / "io.pt", weights_only=True)


# ----------------------------------------------------------------------------- sizes (facts §2, §4)


@pytest.mark.parametrize(
    "semantic_nc, g_params, d_params",
    [(151, 74_314_691, 22_258_904), (35, 71_107_523, 22_251_364), (183, 75_199_427, 22_260_984)],
    ids=["ade20k", "cityscapes", "coco"],
)
def test_full_size_parameter_counts(semantic_nc, g_params, d_params):
    with torch.device("meta"):
        generator = OasisGenerator(semantic_nc)
        discriminator = OasisDiscriminator(semantic_nc)
    assert sum(p.numel() for p in generator.parameters()) == g_params
    assert sum(p.numel() for p in discriminator.parameters()) == d_params
    shapes = {k: tuple(v.shape) for k, v in generator.state_dict().items()}
    assert shapes["fc.weight"] == (1024, semantic_nc + 64, 3, 3)
    assert shapes["body.3.norm_0.mlp_shared.0.weight"] == (128, semantic_nc + 64, 3, 3)
    assert shapes["conv_img.weight"] == (3, 64, 3, 3)
    assert tuple(discriminator.state_dict()["layer_up_last.weight"].shape) == (semantic_nc + 1, 64, 1, 1)


def test_official_state_dict_order_and_spectral_norm_placement():
    generator = tiny_generator()
    keys = list(generator.state_dict())
    assert keys[0] == "conv_img.weight" and keys[-1] == "fc.bias"
    assert keys[2:6] == ["body.0.conv_0.bias", "body.0.conv_0.weight_orig", "body.0.conv_0.weight_u", "body.0.conv_0.weight_v"]
    assert "body.2.conv_s.weight_orig" in keys and "body.2.conv_s.bias" not in keys and "body.1.conv_s.weight_orig" not in keys
    assert not any("mlp" in k and "weight_orig" in k for k in keys), "no spectral norm inside SPADE"
    d_keys = list(OasisDiscriminator(5, (3, 4, 4, 8, 8, 8, 8), 4).state_dict())
    assert d_keys[0].startswith("body_up.0.") and d_keys[-1] == "layer_up_last.bias"
    assert d_keys.index("body_down.0.conv1.0.weight_orig") > d_keys.index("body_up.5.conv_s.weight_orig")
    assert "body_down.1.conv_s.weight_orig" not in d_keys and "body_down.2.conv_s.weight_orig" in d_keys


# ----------------------------------------------------------------------------- generator options


def test_latent_interface_and_injected_noise():
    generator = tiny_generator().eval()
    assert generator.latent_dim == 4 and generator.spatial_latent
    semantics = one_hot(torch.randint(0, 5, (2, 64, 64)), 5)
    z = torch.randn(2, 4)
    with torch.no_grad():
        vector = generator(semantics, z)
        spatial = generator(semantics, z[:, :, None, None].expand(2, 4, 64, 64).clone())
        torch.manual_seed(7)
        drawn = generator(semantics)
        torch.manual_seed(7)
        recorded = generator(semantics, torch.randn(2, 4))
    assert torch.equal(vector, spatial), "a constant per-pixel map is the vector noise"
    assert torch.equal(drawn, recorded), "z=None draws torch.randn(B, z_dim) from the global RNG"
    assert (vector - drawn).abs().mean() > 1e-3
    with pytest.raises(ValueError, match="z must be"):
        generator(semantics, torch.randn(2, 5))
    with pytest.raises(ValueError, match="multiples of 32"):
        generator(semantics[..., :48])


def test_without_noise_the_generator_is_deterministic():
    generator = tiny_generator(noise=False).eval()
    assert generator.latent_dim is None and not generator.spatial_latent
    assert generator.fc.weight.shape[1] == 5
    semantics = one_hot(torch.randint(0, 5, (1, 32, 32)), 5)
    with torch.no_grad():
        torch.manual_seed(1)
        a = generator(semantics)
        torch.manual_seed(2)
        b = generator(semantics)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="no 3D noise"):
        generator(semantics, torch.randn(1, 4))


def test_aspect_ratios_follow_the_official_start_grid():
    assert official_start_size(256, 1.0) == (8, 8)
    assert official_start_size(512, 2.0) == (8, 16)  # Cityscapes 256x512
    assert official_start_size(64, 0.5) == (4, 2)
    generator = tiny_generator(start_size=official_start_size(128, 2.0)).eval()
    semantics = one_hot(torch.randint(0, 5, (1, 64, 128)), 5)
    with torch.no_grad():
        assert generator(semantics).shape == (1, 3, 64, 128)
        # The official grid is fixed at construction: another input size still gives 64x128.
        assert generator(semantics[..., :64]).shape == (1, 3, 64, 128)
    discriminator = OasisDiscriminator(5, (3, 4, 4, 8, 8, 8, 8), 4)
    assert discriminator(torch.randn(1, 3, 64, 128)).shape == (1, 6, 64, 128)


@pytest.mark.parametrize("norm, buffers", [("syncbatch", 3), ("batch", 3), ("instance", 0)])
def test_param_free_norms(norm, buffers):
    generator = tiny_generator(norm=norm)
    spade_buffers = [k for k, _ in generator.named_buffers() if ".first_norm." in k and k.startswith("body.0.norm_0.")]
    assert len(spade_buffers) == buffers
    if buffers:
        semantics = one_hot(torch.randint(0, 5, (2, 32, 32)), 5)
        with torch.no_grad():
            generator.train()(semantics)
        counter = int(generator.body[0].norm_0.first_norm.num_batches_tracked)
        # The official syncbatch layer never counts batches; nn.BatchNorm2d does.
        assert counter == (1 if norm == "batch" else 0)
        assert generator.body[0].norm_0.first_norm.running_var.ne(1).any()


def test_spade_kernel_and_hidden_width():
    generator = tiny_generator(spade_kernel=5, spade_hidden=6)
    assert generator.body[0].norm_0.mlp_shared[0].weight.shape == (6, 9, 5, 5)
    assert generator.body[0].norm_0.mlp_gamma.padding == (2, 2)


def test_per_region_noise_changes_mostly_the_region(p1):
    official, io = p1
    generator = official.generator.eval()
    semantics = io["input_semantics"]
    mask = class_mask(semantics, 4)
    assert 0.05 < mask.float().mean() < 0.5
    torch.manual_seed(0)
    z_keep, z_new = torch.randn(2, 16), torch.randn(2, 16)
    with torch.no_grad():
        base = generator(semantics, z_keep)
        local = generator(semantics, region_noise(z_keep, z_new, mask))
        whole = generator(semantics, z_new)
        unchanged = generator(semantics, region_noise(z_keep, z_keep, mask))
    assert torch.equal(unchanged, base)
    diff = (local - base).abs().mean(dim=1, keepdim=True)
    inside, outside = diff[mask].mean(), diff[~mask].mean()
    global_change = (whole - base).abs().mean()
    assert inside > 0.5 * global_change, "the region gets a new look"
    assert outside < 0.3 * global_change and inside > 2.5 * outside, (inside, outside, global_change)


def test_region_noise_layout():
    z_out, z_in = torch.zeros(2, 3), torch.ones(2, 3)
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[0, 1:3, 1:3] = True
    noise = region_noise(z_out, z_in, mask)
    assert noise.shape == (2, 3, 4, 4)
    assert torch.equal(noise[0, :, 1, 1], torch.ones(3)) and torch.equal(noise[0, :, 0, 0], torch.zeros(3))
    assert noise[1].abs().sum() == 0
    with pytest.raises(ValueError):
        region_noise(z_out, torch.ones(2, 4), mask)


# ----------------------------------------------------------------------------- losses


def test_class_balancing_weights_by_hand():
    labels = torch.tensor([[[0, 1], [1, 2]]])  # 4 pixels: one dontcare, two of class 1, one of class 2
    semantics = one_hot(labels, 4)  # class 3 absent
    # n = 2 present classes (dontcare excluded): alpha_1 = 4 / (2 * 2) = 1, alpha_2 = 4 / (2 * 1) = 2
    assert torch.equal(class_balancing_weights(semantics), torch.tensor([[[[0.0, 1.0], [1.0, 2.0]]]]))
    # Without a dontcare class: n = 3, alpha_0 = 4 / 3, alpha_1 = 4 / 6, alpha_2 = 4 / 3
    expected = torch.tensor([[[[4 / 3, 2 / 3], [2 / 3, 4 / 3]]]])
    torch.testing.assert_close(class_balancing_weights(semantics, dontcare=False), expected)
    assert torch.equal(class_balancing_weights(semantics, balance=False), torch.ones(1, 1, 2, 2))


def test_class_balancing_counts_over_the_whole_batch():
    labels = torch.tensor([[[1, 1], [1, 1]], [[2, 1], [1, 1]]])  # class 2 once in 8 pixels
    weights = class_balancing_weights(one_hot(labels, 3))
    assert weights[1, 0, 0, 0] == 8 / (2 * 1) and weights[0, 0, 0, 0] == 8 / (2 * 7)


def test_n1_targets_and_loss():
    labels = torch.tensor([[[0, 2]]])
    semantics = one_hot(labels, 3)
    assert torch.equal(n1_targets(semantics, real=True), torch.tensor([[[1, 3]]]))
    assert torch.equal(n1_targets(semantics, real=False), torch.zeros(1, 1, 2, dtype=torch.long))
    logits = torch.zeros(1, 4, 1, 2)
    logits[0, 3, 0, 1] = 2.0  # pixel 1 confident in its true class 2 (channel 3)
    ce_uniform = torch.log(torch.tensor(4.0))
    ce_confident = -torch.log_softmax(torch.tensor([0.0, 0, 0, 2]), 0)[3]
    weights = torch.tensor([[[[0.0, 3.0]]]])
    torch.testing.assert_close(n1_loss(logits, semantics, True, weights), (0 * ce_uniform + 3 * ce_confident) / 2)
    # Fake targets (channel 0) are never weighted.
    ce_fake_1 = -torch.log_softmax(torch.tensor([0.0, 0, 0, 2]), 0)[0]
    torch.testing.assert_close(n1_loss(logits, semantics, False, weights), (ce_uniform + ce_fake_1) / 2)


def _labelmix_batch() -> torch.Tensor:
    labels = torch.tensor([[[0, 0, 1, 2], [3, 3, 1, 0]], [[2, 2, 0, 1], [3, 0, 0, 1]]])
    return one_hot(labels, 5)


@pytest.mark.parametrize("class_1_present", [True, False])
def test_labelmix_official_mask_differs_from_independent_only_on_class_0(class_1_present):
    semantics = _labelmix_batch()
    if not class_1_present:
        semantics = one_hot(torch.where(semantics.argmax(1) == 1, 2, semantics.argmax(1)), 5)
    labels = semantics.argmax(dim=1, keepdim=True)
    classes = torch.unique(labels).tolist()
    seen_inherit = seen_plain = 0
    for seed in range(40):
        torch.manual_seed(seed)
        bits = {c: int(torch.randint(0, 2, (1,))) for c in classes}
        torch.manual_seed(seed)
        official = labelmix_mask(semantics, "official")
        torch.manual_seed(seed)
        independent = labelmix_mask(semantics, "independent")
        expected_independent = torch.tensor([float(bits[c]) for c in labels.flatten().tolist()]).view_as(labels)
        assert torch.equal(independent, expected_independent), "independent: each class its own bit, shared by images"
        expected_official = expected_independent.clone()
        if bits[0] == 1 and class_1_present:
            expected_official[labels == 0] = bits[1]  # the in-place quirk: class 0 inherits class 1's bit
            seen_inherit += bits[1] == 0
        else:
            seen_plain += 1
        assert torch.equal(official, expected_official)
        assert torch.equal(official[labels != 0], independent[labels != 0])
    assert seen_plain and (seen_inherit or not class_1_present), "the seeds must exercise both branches"


def test_fixture_mask_is_the_official_one_not_the_independent_one(p1):
    _, io = p1
    semantics = io["input_semantics"]
    torch.manual_seed(int(io["seeds"][6]))
    torch.randn(2, 16)  # the D step's z comes first
    independent = labelmix_mask(semantics, "independent")
    differ = independent != io["labelmix_mask"]
    assert differ.any()
    assert torch.equal(differ, semantics.argmax(1, keepdim=True) == 0), "they differ exactly on the dontcare pixels"


def test_labelmix_mask_rejects_unknown_mode():
    with pytest.raises(ValueError, match="official"):
        labelmix_mask(_labelmix_batch(), "random")


# ----------------------------------------------------------------------------- objective


class _Batch:
    def __init__(self, semantics, image):
        self.semantics, self.image = semantics, image


def _tiny_objective(**kwargs):
    torch.manual_seed(3)
    generator = tiny_generator()
    discriminator = OasisDiscriminator(5, (3, 4, 4, 8, 8, 8, 8), 4)
    labels = torch.randint(0, 5, (2, 4, 4)).repeat_interleave(16, 1).repeat_interleave(16, 2)
    batch = _Batch(one_hot(labels, 5), torch.rand(2, 3, 64, 64) * 2 - 1)
    return OasisObjective(generator, discriminator, **kwargs).train(), batch


def test_d_step_regenerates_or_reuses_the_fake():
    calls = []
    objective, batch = _tiny_objective()
    objective.generator.register_forward_hook(lambda *_: calls.append(torch.is_grad_enabled()))
    total, terms, carry = objective.generator_losses(batch)
    assert set(terms) == {"G_adv"} and not carry.requires_grad and calls == [True]
    total_d, terms_d = objective.discriminator_losses(batch, carry)
    assert calls == [True, False], "official: G runs again under no_grad with a fresh z"
    assert set(terms_d) == {"D_fake", "D_real", "D_labelmix"}
    torch.testing.assert_close(total_d, terms_d["D_fake"] + terms_d["D_real"] + terms_d["D_labelmix"])
    objective.d_fake = "reuse"
    step = objective.discriminator_step(batch, carry)
    assert calls == [True, False] and torch.equal(step.fake, carry)


def test_labelmix_off_and_weight():
    objective, batch = _tiny_objective(labelmix=False)
    torch.manual_seed(0)
    _, terms = objective.discriminator_losses(batch)
    assert set(terms) == {"D_fake", "D_real"}
    objective, batch = _tiny_objective(lambda_labelmix=5.0)
    torch.manual_seed(0)
    step = objective.discriminator_step(batch)
    torch.testing.assert_close(step.terms["D_labelmix"], 5.0 * step.labelmix_unweighted)
    assert step.labelmix_unweighted > 0
    step.total.backward()
    assert objective.discriminator.layer_up_last.weight.grad.abs().sum() > 0


def test_optional_vgg_term():
    class FakeVGG(nn.Module):
        def forward(self, fake, real):
            return (fake - real).abs().mean()

    objective, batch = _tiny_objective(vgg=FakeVGG(), lambda_vgg=10.0)
    torch.manual_seed(0)
    step = objective.generator_step(batch)
    torch.testing.assert_close(step.terms["G_VGG"], 10.0 * (step.fake - batch.image).abs().mean())
    torch.testing.assert_close(step.total, step.terms["G_adv"] + step.terms["G_VGG"])


def test_objective_rejects_unknown_modes():
    with pytest.raises(ValueError):
        _tiny_objective(labelmix_mask="fixed")
    with pytest.raises(ValueError):
        _tiny_objective(d_fake="cached")


# ----------------------------------------------------------------------------- EMA


def test_batchnorm_refresh_is_a_train_mode_forward(p1):
    """Refreshing with the recorded train seed reproduces the recorded buffers after a train forward."""
    official, io = p1
    directory = fixture_path(*P1)
    generator = load_official_oasis(directory).generator.eval()
    torch.manual_seed(int(io["seeds"][4]))
    assert refresh_batchnorm_stats(generator, [io["input_semantics"]]) == 1
    assert not generator.training
    buffers = dict(generator.named_buffers())
    for key, expected in io.items():
        if key.startswith("bufG_after_train_fwd/"):
            name = key.split("/", 1)[1]
            error = (buffers[name].float() - expected.float()).norm() / expected.float().norm().clamp_min(1e-12)
            assert error < 1e-5, name


def test_batchnorm_refresh_stops_after_51_batches():
    generator = tiny_generator()
    semantics = one_hot(torch.randint(0, 5, (1, 64, 64)), 5)
    assert refresh_batchnorm_stats(generator, (semantics for _ in range(60))) == 51
    assert generator.training


def test_official_ema_averages_every_state_entry():
    torch.manual_seed(0)
    ema, live = tiny_generator(norm="batch"), tiny_generator(norm="batch")
    live.body[0].norm_0.first_norm.num_batches_tracked.fill_(7)
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    update_ema_official(ema, live, 0.9)
    after, now = ema.state_dict(), live.state_dict()
    for key in ("fc.weight", "body.0.conv_0.weight_u", "body.0.norm_0.first_norm.running_var"):
        torch.testing.assert_close(after[key], 0.9 * before[key] + 0.1 * now[key])
    assert int(after["body.0.norm_0.first_norm.num_batches_tracked"]) == 0  # 0.7 truncated


def test_networks_rebuild_from_their_config():
    import json

    generator = tiny_generator(norm="instance", spade_kernel=5, start_size=(2, 4))
    rebuilt = OasisGenerator(**json.loads(json.dumps(generator.config())))
    rebuilt.load_state_dict(generator.state_dict(), strict=True)
    assert rebuilt.config() == generator.config() and rebuilt.start_size == (2, 4)
    discriminator = OasisDiscriminator(5, (3, 4, 4, 8, 8, 8, 8), 4)
    OasisDiscriminator(**discriminator.config()).load_state_dict(discriminator.state_dict(), strict=True)
