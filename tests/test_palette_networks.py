"""Layout networks, layout utilities, the progressive schedule and the objective (beyond parity)."""

from __future__ import annotations

import pytest
import torch

from spadekit.methods.palette.activation import assisted_activation, filter_palette
from spadekit.methods.palette.layout_discriminator import LayoutDiscriminator, official_critic_widths
from spadekit.methods.palette.layout_generator import LayoutGenerator, official_widths
from spadekit.methods.palette.layouts import (
    blur_kernel,
    clean_label_map,
    discretize,
    label_proportions,
    layout_for_image,
    soften_layout,
    to_onehot,
)
from spadekit.methods.palette.objective import PaletteBatch, PaletteObjective, real_layouts
from spadekit.methods.palette.schedule import ProgressiveSchedule, official_steps_per_res


def tiny(joints: int = 2, joint_type: str = "affine", aspect: int = 1, max_dim: int = 16, **kw):
    widths = official_widths(max_dim, 8)
    g = LayoutGenerator(5, 4, widths, aspect, joints, joint_type, **kw)
    d_widths, final = official_critic_widths(max_dim, 8)
    return g, LayoutDiscriminator(5, d_widths, final, aspect)


def palettes(n: int = 3) -> torch.Tensor:
    p = torch.rand(n, 5) + 0.05
    return p / p.sum(1, keepdim=True)


def test_official_widths():
    assert official_widths(1024, 512) == [512, 512, 512, 512, 256, 128, 64, 32, 16]
    assert official_critic_widths(1024, 512) == ([512, 512, 512, 512, 256, 128, 64, 32, 16], 512)
    assert official_widths(128, 24) == [24] * 6


def test_generator_outputs_per_joint_and_resolution():
    g, _ = tiny(joints=2, aspect=2)
    z, p = torch.randn(3, 4), palettes()
    steps = g(z, p, res=16)
    # Blocks 0 and 1 (4 and 8 high) have two joints each, then block 2's final layout.
    assert len(steps) == 5
    assert [s.sem_seg.shape[-2:] for s in steps] == [(4, 8)] * 2 + [(8, 16)] * 2 + [(16, 32)]
    for s in steps:
        torch.testing.assert_close(s.sem_seg.sum(1), torch.ones_like(s.sem_seg[:, 0]))
        # Each class mask covers exactly its requested share of the pixels.
        torch.testing.assert_close(s.sem_mask.mean(dim=(2, 3)), p, rtol=1e-4, atol=1e-6)
    assert len(g(z, p, res=4)) == 1 and g.layout(z, p, res=8).shape == (3, 5, 8, 16)
    with pytest.raises(ValueError, match="above"):
        g(z, p, res=32)
    with pytest.raises(ValueError, match="no fade-in"):
        g(z, p, res=4, alpha=0.5)


def test_joints_share_one_to_mask_and_the_state_dict_lists_every_copy():
    g, _ = tiny(joints=2)
    block = g.blocks[0].cond_joint
    assert all(j.to_mask is block.to_mask for j in block.assisted_blocks)
    keys = g.state_dict().keys()
    assert "blocks.0.cond_joint.assisted_blocks.1.to_mask.sem_conv.weight" in keys
    assert "blocks.3.cond_joint.assisted_blocks.0.conv1.weight" not in keys  # the last block has no joints
    n_params = sum(p.numel() for p in g.parameters())
    assert n_params < sum(v.numel() for v in g.state_dict().values())


def test_joint_types_differ_and_affine_doubles_the_conv():
    outs = {}
    for kind in ("bias", "linear", "affine"):
        torch.manual_seed(0)
        g, _ = tiny(joint_type=kind)
        assert g.blocks[0].cond_joint.assisted_blocks[0].conv1.weight.shape[0] == (16 if kind == "affine" else 8)
        torch.manual_seed(1)
        outs[kind] = g.layout(torch.randn(2, 4), palettes(2))
    assert not torch.allclose(outs["bias"], outs["linear"]) and not torch.allclose(outs["bias"], outs["affine"])


def test_fade_in_mixes_the_two_resolutions():
    g, d = tiny()
    z, p = torch.randn(2, 4), palettes(2)
    assert torch.allclose(g(z, p, res=16, alpha=1.0)[-1].sem_seg, g(z, p, res=16)[-1].sem_seg, atol=1e-6)
    coarse = g(z, p, res=8)[-1].sem_seg.repeat_interleave(2, 2).repeat_interleave(2, 3)
    # alpha = 0: the previous resolution's mask (recomputed on upsampled features, so not identical).
    zero = g(z, p, res=16, alpha=0.0)[-1].sem_seg
    assert (zero.argmax(1) == coarse.argmax(1)).float().mean() > 0.9
    layout = g.layout(z, p, res=16)
    assert torch.allclose(d(layout, alpha=1.0), d(layout), atol=1e-5)


def test_assisted_activation_and_filter():
    raw = torch.randn(2, 5, 4, 4) * 3
    p = torch.tensor([[0.5, 0.3, 0.2, 0.0, 0.0], [0.01, 0.49, 0.5, 0.0, 0.0]])
    layout, mask = assisted_activation(raw, p)
    torch.testing.assert_close(mask.sum(dim=(2, 3)), p * 16)
    torch.testing.assert_close(layout.sum(1), torch.ones(2, 4, 4))
    # 0.01 < 1/16 pixel: the filter drops it and renormalises.
    torch.testing.assert_close(filter_palette(p, 4, 4)[1], torch.tensor([0.0, 0.49, 0.5, 0.0, 0.0]) / 0.99)
    weak, _ = assisted_activation(raw, p, weakly=True)
    assert not torch.allclose(weak, layout)


def test_blur_kernel_facts():
    # res 64 of a 128 model: sigma = max(64*8/128, 2) = 4 -> size odd(min(7, 63)) = 7, centre (4, 4).
    k = blur_kernel(64, 128)
    assert k.shape == (7, 7)
    assert torch.isclose(k.sum(), torch.tensor(1.0))
    assert k.argmax().item() == 4 * 7 + 4
    assert blur_kernel(4, 1024).shape == (3, 3)  # min(2+3, 3) = 3
    assert blur_kernel(1024, 1024).shape == (11, 11)


def test_softened_layout_keeps_a_distribution():
    label = torch.randint(0, 5, (2, 16, 16))
    soft = soften_layout(to_onehot(label, 5), 32)
    torch.testing.assert_close(soft.sum(1), torch.ones(2, 16, 16))
    assert (soft.argmax(1) == label).float().mean() > 0.8
    assert soft.max() < 1.0


def test_label_helpers():
    label = torch.tensor([[[0, 1], [255, 26001]]])
    cleaned = clean_label_map(label, ignored_class=3)
    assert cleaned.tolist() == [[[0, 1], [3, 26]]]
    torch.testing.assert_close(label_proportions(torch.tensor([[[0, 1], [1, 1]]]), 3), torch.tensor([[0.25, 0.75, 0.0]]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        to_onehot(torch.tensor([[[0, 3]]]), 3)


def test_discretizations():
    y = torch.softmax(torch.randn(2, 5, 4, 4), 1).requires_grad_(True)
    assert discretize(y, "none") is y
    hard = discretize(y, "max")
    assert torch.equal(hard.detach(), to_onehot(y.argmax(1), 5))
    hard.sum().backward()
    assert y.grad is not None  # straight-through
    torch.manual_seed(0)
    g = discretize(y, "gumbel", 0.1)
    assert torch.equal(g.detach().sum(1), torch.ones(2, 4, 4))
    with pytest.raises(ValueError, match="unknown discretization"):
        discretize(y, "round")
    big = layout_for_image(y.detach(), "max", 8, 2.0)
    assert big.shape == (2, 5, 8, 16) and set(big.unique().tolist()) <= {0.0, 1.0}
    assert layout_for_image(y.detach(), "none", 8, 2.0).shape == (2, 5, 8, 16)


def test_schedule_phases_alpha_and_checkpointing():
    s = ProgressiveSchedule(16, [2, 3, 2])
    seen = []
    events = []
    while not s.done:
        seen.append((s.res, s.phase, s.iteration, s.fade_alpha, s.global_step))
        events.append(s.step())
    assert [x[:3] for x in seen] == [
        (4, "stabilize", 0), (4, "stabilize", 1),
        (8, "fade", 0), (8, "fade", 1), (8, "fade", 2), (8, "stabilize", 0), (8, "stabilize", 1), (8, "stabilize", 2),
        (16, "fade", 0), (16, "fade", 1), (16, "stabilize", 0), (16, "stabilize", 1),
    ]  # fmt: skip
    assert [x[3] for x in seen][2:5] == [0.0, 1 / 3, 2 / 3]
    assert [x[4] for x in seen] == list(range(12)) and s.total_steps == 12
    assert events.count("resolution_done") == 3 and events.count("phase_done") == 2
    for k in range(13):
        at = ProgressiveSchedule.at_step(16, [2, 3, 2], k)
        assert at.global_step == k
    mid = ProgressiveSchedule.at_step(16, [2, 3, 2], 6)
    again = ProgressiveSchedule(16, [2, 3, 2])
    again.load_state_dict(mid.state_dict())
    assert again.state_dict() == mid.state_dict() == {"res": 8, "phase": "stabilize", "iteration": 1, "done": False}
    with pytest.raises(ValueError, match="no fade"):
        again.load_state_dict({"res": 4, "phase": "fade", "iteration": 0})
    with pytest.raises(ValueError, match="3 entries"):
        ProgressiveSchedule(16, [1, 2])
    assert official_steps_per_res(150, 100, [64, 16], [2, 1]) == [int(2 * int(150 * 100 / 64)), int(150 * 100 / 16)]


def test_objective_trains_through_the_schedule():
    torch.manual_seed(0)
    g, d = tiny(joints=1, joint_type="bias")
    schedule = ProgressiveSchedule(16, [2, 2, 2])
    objective = PaletteObjective(g, d, schedule)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.0, 0.99))
    label = torch.randint(0, 5, (2, 16, 16))
    while not schedule.done:
        real = real_layouts(label, 5, schedule.res, 1, g.max_dim)
        batch = PaletteBatch(palettes(2), real)
        total, terms, carry = objective.generator_losses(batch)
        assert carry.shape == real.shape and not carry.requires_grad
        assert set(terms) >= {"gen", "entropy_0", "spread_0", "recover_0", "true_recover_0"}
        opt_g.zero_grad()
        total.backward()
        grads = [g.blocks[0].fc1.weight.grad, g.blocks[0].conv2.weight.grad, g.blocks[0].cond_joint.to_mask.sem_conv.weight.grad]
        assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
        opt_g.step()
        d_total, d_terms = objective.discriminator_losses(batch, carry)
        assert set(d_terms) == {"wgan", "gp", "real", "fake"}
        opt_d.zero_grad()
        d_total.backward()
        opt_d.step()
        assert torch.isfinite(total) and torch.isfinite(d_total)
        objective.step_schedule()
    assert schedule.res == 16


def test_objective_total_is_the_sum_of_its_terms():
    torch.manual_seed(0)
    g, d = tiny(joints=1)
    objective = PaletteObjective(g, d, ProgressiveSchedule(16, [1, 1, 1], res=16), recover=True, ova_classes=[2], lambda_ova=0.5)
    real = real_layouts(torch.randint(0, 5, (2, 16, 16)), 5, 16, 1, 16)
    total, terms, _ = objective.generator_losses(PaletteBatch(palettes(2), real, torch.randn(2, 4)))
    n = 3  # joints after blocks 0 and 1, then the final layout
    expected = terms["gen"] + sum(
        terms[f"entropy_{i}"] + terms[f"spread_{i}"] + terms[f"recover_{i}"] + 0.5 * terms[f"ova_{i}"] for i in range(n)
    )
    torch.testing.assert_close(total, expected)
    only_final = PaletteObjective(g, d, ProgressiveSchedule(16, [1, 1, 1], res=16), intermediate=False)
    _, terms_final, _ = only_final.generator_losses(PaletteBatch(palettes(2), real, torch.randn(2, 4)))
    assert "entropy_1" not in terms_final


def test_unconditional_generator_has_no_palette_terms():
    g = LayoutGenerator(5, 4, official_widths(8, 8), joints_per_block=0, activation="softmax", conditional=False)
    d = LayoutDiscriminator(5, *official_critic_widths(8, 8))
    objective = PaletteObjective(g, d, ProgressiveSchedule(8, [1, 1], res=8))
    real = real_layouts(torch.randint(0, 5, (2, 8, 8)), 5, 8, 1, 8)
    total, terms, _ = objective.generator_losses(PaletteBatch(None, real))
    # As the official code: without conditioning only the adversarial term counts.
    torch.testing.assert_close(total, terms["gen"])
    with pytest.raises(ValueError, match="conditional"):
        LayoutGenerator(5, 4, [8, 8]).layout(torch.randn(1, 4))
