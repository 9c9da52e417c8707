"""OASIS networks and losses reproduce every tensor the official code recorded.

Data-driven over every case folder in ``tests/assets/peers/oasis/`` (ids = folder names): the
networks are built from the case's ``opt.json`` (widths the fixture patched are read from the
checkpoint shapes), loaded from its ``G.pth``/``D.pth`` and run through the recording's blocks
(see the case README): A eval, B train forward, C generator step, D discriminator step, each from
the saved state with the recorded seed. Tolerance: relative L2 error <= 1e-5 per tensor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from conftest import fixture_cases
from spadekit.errors import MissingWeightsError
from spadekit.methods.oasis.convert import infer_discriminator_options, infer_generator_options
from spadekit.methods.oasis.discriminator import OasisDiscriminator
from spadekit.methods.oasis.generator import OasisGenerator, official_start_size
from spadekit.methods.oasis.objective import OasisObjective

CASES = fixture_cases("peers", "oasis")
RTOL = 1e-5

# Seeds in io.pt["seeds"]: data, init, eval, eval2 (-1 = unused), train forward, losses_G, losses_D, warm-up...
SEED_EVAL, SEED_EVAL2, SEED_TRAIN, SEED_LOSS_G, SEED_LOSS_D = 2, 3, 4, 5, 6
INPUTS = {"label_map", "input_semantics", "image_uint8", "image", "seeds", "labelmix_classes", "labelmix_bits"}
BUFFER_GROUPS = ("bufG_after_train_fwd", "bufD_after_lossG", "bufG_after_lossD", "bufD_after_lossD")
# Every recorded tensor one of the tests below compares; a case with other tensors fails the coverage test.
COMPARED = {
    "G_eval_out", "z_eval", "G_eval_out_seed2", "z_eval_seed2", "D_eval_real", "D_eval_fake",
    "G_train_out", "z_train",
    "loss_G", "loss_G_adv", "loss_G_vgg", "z_lossG", "weight_map",
    "loss_D", "loss_D_fake", "loss_D_real", "loss_D_labelmix", "loss_D_labelmix_unweighted",
    "labelmix_mixed_image", "labelmix_mask", "lossD_D_out_mixed", "lossD_fake", "lossD_D_out_fake",
    "lossD_D_out_real", "z_lossD",
}  # fmt: skip


@dataclass
class Case:
    name: str
    opt: dict
    io: dict
    g_state: dict
    d_state: dict

    def seed(self, index: int) -> int:
        return int(self.io["seeds"][index])

    @property
    def semantics(self) -> torch.Tensor:
        return self.io["input_semantics"]

    def networks(self) -> tuple[OasisGenerator, OasisDiscriminator]:
        """Fresh networks built from opt.json (+ checkpoint shapes for patched widths), states loaded."""
        opt = self.opt
        assert opt["num_res_blocks"] == 6, "official OASIS only runs with 6 residual blocks"
        assert not opt["no_spectral_norm"], "official --no_spectral_norm crashes; no case can use it"
        spade_hidden = self.g_state["body.0.norm_0.mlp_shared.0.weight"].shape[0]
        generator = OasisGenerator(
            semantic_nc=opt["semantic_nc"],
            channels=opt["channels_G"],
            z_dim=opt["z_dim"],
            noise=not opt["no_3dnoise"],
            norm=opt["param_free_norm"],
            spade_kernel=opt["spade_ks"],
            spade_hidden=spade_hidden,
            start_size=official_start_size(opt["crop_size"], opt["aspect_ratio"]),
        )
        d_options = infer_discriminator_options(self.d_state, Path(self.name, "D.pth"))
        discriminator = OasisDiscriminator(opt["semantic_nc"], d_options["widths"], d_options["last_width"])
        generator.load_state_dict(self.g_state, strict=True)
        discriminator.load_state_dict(self.d_state, strict=True)
        return generator, discriminator

    def objective(self, generator: OasisGenerator, discriminator: OasisDiscriminator, vgg=None) -> OasisObjective:
        opt = self.opt
        return OasisObjective(
            generator,
            discriminator,
            lambda_labelmix=opt["lambda_labelmix"],
            labelmix=not opt["no_labelmix"],
            class_balancing=not opt["no_balancing_inloss"],
            labelmix_mask="official",
            vgg=vgg,
            lambda_vgg=opt["lambda_vgg"],
            dontcare=opt["contain_dontcare_label"],
            d_fake="regenerate",
        )


_LOADED: dict[Path, Case] = {}


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request) -> Case:
    directory: Path = request.param
    if directory not in _LOADED:
        _LOADED[directory] = Case(
            name=directory.name,
            opt=json.loads((directory / "opt.json").read_text()),
            io=torch.load(directory / "io.pt", weights_only=True),
            g_state=torch.load(directory / "G.pth", weights_only=True),
            d_state=torch.load(directory / "D.pth", weights_only=True),
        )
    return _LOADED[directory]


def assert_close(actual: torch.Tensor, expected: torch.Tensor, name: str) -> None:
    actual = actual.detach()
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    if not expected.is_floating_point():
        assert torch.equal(actual.to(expected.dtype), expected), f"{name}: {actual} != {expected}"
        return
    actual = actual.float()
    norm = expected.norm()
    if norm == 0:
        assert torch.equal(actual, expected), f"{name}: expected all zeros, max abs {actual.abs().max():.2e}"
        return
    error = ((actual - expected).norm() / norm).item()
    assert error <= RTOL, f"{name}: relative L2 error {error:.2e} > {RTOL:.0e} (max abs {(actual - expected).abs().max():.2e})"


def assert_buffers(network: torch.nn.Module, case: Case, group: str) -> None:
    recorded = {k.split("/", 1)[1]: v for k, v in case.io.items() if k.startswith(group + "/")}
    ours = dict(network.named_buffers())
    assert recorded, f"{group}: nothing recorded"
    assert set(recorded) == set(ours), f"{group}: buffer names differ: {sorted(set(recorded) ^ set(ours))[:4]}"
    for key, expected in recorded.items():
        assert_close(ours[key], expected, f"{group}/{key}")


def test_there_are_cases():
    assert CASES, "no OASIS parity case under tests/assets/peers/oasis/ (or $SPADEKIT_FIXTURES)"


def test_every_recorded_tensor_is_compared(case):
    unknown = sorted(k for k in case.io if k not in INPUTS | COMPARED and k.split("/")[0] not in BUFFER_GROUPS)
    assert not unknown, f"io.pt has tensors no test compares: {unknown}"


def test_converter_infers_the_case_options(case):
    options = infer_generator_options(case.g_state, Path("G.pth"), semantic_nc=case.opt["semantic_nc"])
    noise = not case.opt["no_3dnoise"]
    assert options["noise"] == noise
    if noise:
        assert options["z_dim"] == case.opt["z_dim"]
    assert options["channels"] == case.opt["channels_G"]
    assert options["spade_kernel"] == case.opt["spade_ks"]
    # syncbatch and batch compute the same; only batch counts batches, so a fresh batch state reads as syncbatch.
    expected_norm = {"instance": "instance"}.get(case.opt["param_free_norm"], options["norm"])
    assert options["norm"] == expected_norm and options["norm"] in ("syncbatch", "batch", "instance")
    assert infer_discriminator_options(case.d_state, Path("D.pth"))["semantic_nc"] == case.opt["semantic_nc"]


def test_semantics_are_the_one_hot_label_map(case):
    expected = torch.zeros_like(case.semantics).scatter_(1, case.io["label_map"].long(), 1.0)
    assert torch.equal(case.semantics, expected)


def test_generator_eval(case):
    """Block A: eval mode, z drawn inside forward right after manual_seed (and injected explicitly)."""
    generator, _ = case.networks()
    generator.eval()
    runs = [("G_eval_out", "z_eval", SEED_EVAL), ("G_eval_out_seed2", "z_eval_seed2", SEED_EVAL2)]
    for out_key, z_key, index in runs:
        if out_key not in case.io:
            continue
        torch.manual_seed(case.seed(index))
        with torch.no_grad():
            assert_close(generator(case.semantics), case.io[out_key], out_key)
        if z_key in case.io:
            torch.manual_seed(case.seed(index))
            assert_close(torch.randn(case.semantics.shape[0], generator.z_dim), case.io[z_key], z_key)
            torch.manual_seed(12345)  # the injected z must win over the RNG
            with torch.no_grad():
                assert_close(generator(case.semantics, case.io[z_key]), case.io[out_key], f"{out_key} (injected z)")
    if "G_eval_out_seed2" in case.io and generator.latent_dim is not None:
        gap = (case.io["G_eval_out"] - case.io["G_eval_out_seed2"]).abs().mean()
        assert gap > 1e-3, "the two recorded seeds should give different images"


def test_discriminator_eval(case):
    _, discriminator = case.networks()
    discriminator.eval()
    with torch.no_grad():
        assert_close(discriminator(case.io["image"]), case.io["D_eval_real"], "D_eval_real")
        assert_close(discriminator(case.io["G_eval_out"]), case.io["D_eval_fake"], "D_eval_fake")
    logits = case.io["D_eval_real"]
    assert logits.std() > 1e-2 and logits.abs().max() < 50, "fixture logits should be neither flat nor saturated"


def test_generator_train_forward_and_buffers(case):
    """Block B: batch statistics, one power iteration per spectral-normed conv, BN running stats moved."""
    generator, _ = case.networks()
    generator.train()
    torch.manual_seed(case.seed(SEED_TRAIN))
    with torch.no_grad():
        out = generator(case.semantics)
    assert_close(out, case.io["G_train_out"], "G_train_out")
    if "z_train" in case.io:
        torch.manual_seed(case.seed(SEED_TRAIN))
        assert_close(torch.randn(case.semantics.shape[0], generator.z_dim), case.io["z_train"], "z_train")
    assert_buffers(generator, case, "bufG_after_train_fwd")


def _vgg_for(case: Case):
    if not case.opt["add_vgg_loss"]:
        return None
    from spadekit.losses import VGG19Features, VGGLoss

    try:
        return VGGLoss(VGG19Features())
    except MissingWeightsError as exc:
        pytest.skip(f"case uses --add_vgg_loss; the ImageNet VGG19 weights are not on this machine ({exc})")


def test_generator_step(case):
    """Block C: G (train, fresh z) → D (train) → balanced (N+1)-CE with real targets."""
    generator, discriminator = case.networks()
    objective = case.objective(generator, discriminator, _vgg_for(case))
    objective.train()
    batch = _Batch(case.semantics, case.io["image"])
    torch.manual_seed(case.seed(SEED_LOSS_G))
    step = objective.generator_step(batch)
    assert_close(step.total, case.io["loss_G"], "loss_G")
    assert_close(step.terms["G_adv"], case.io["loss_G_adv"], "loss_G_adv")
    if "loss_G_vgg" in case.io:
        assert_close(step.terms["G_VGG"], case.io["loss_G_vgg"], "loss_G_vgg")
    recorded = case.io["weight_map"]
    # With --no_balancing_inloss the official weight map is ones shaped like D's logits (B, N+1, H, W).
    assert_close(step.weights.expand_as(recorded), recorded, "weight_map")
    if "z_lossG" in case.io:
        torch.manual_seed(case.seed(SEED_LOSS_G))
        assert_close(torch.randn(case.semantics.shape[0], generator.z_dim), case.io["z_lossG"], "z_lossG")
    assert_buffers(discriminator, case, "bufD_after_lossG")
    # The loss must be differentiable for the G update.
    step.total.backward()
    assert generator.fc.weight.grad is not None and generator.fc.weight.grad.abs().sum() > 0


def test_discriminator_step(case):
    """Block D: G again under no_grad (new z) → D(fake), D(real) → LabelMix with the recorded bits."""
    generator, discriminator = case.networks()
    objective = case.objective(generator, discriminator)
    objective.train()
    batch = _Batch(case.semantics, case.io["image"])
    torch.manual_seed(case.seed(SEED_LOSS_D))
    step = objective.discriminator_step(batch, carry=None)
    io = case.io
    assert_close(step.fake, io["lossD_fake"], "lossD_fake")
    assert_close(step.logits_fake, io["lossD_D_out_fake"], "lossD_D_out_fake")
    assert_close(step.logits_real, io["lossD_D_out_real"], "lossD_D_out_real")
    assert_close(step.total, io["loss_D"], "loss_D")
    assert_close(step.terms["D_fake"], io["loss_D_fake"], "loss_D_fake")
    assert_close(step.terms["D_real"], io["loss_D_real"], "loss_D_real")
    if case.opt["no_labelmix"]:
        assert step.mask is None and "D_labelmix" not in step.terms
        assert "labelmix_mask" not in io
    else:
        assert_close(step.mask, io["labelmix_mask"], "labelmix_mask")
        assert_close(step.mixed, io["labelmix_mixed_image"], "labelmix_mixed_image")
        assert_close(step.logits_mixed, io["lossD_D_out_mixed"], "lossD_D_out_mixed")
        assert_close(step.terms["D_labelmix"], io["loss_D_labelmix"], "loss_D_labelmix")
        assert_close(step.labelmix_unweighted, io["loss_D_labelmix_unweighted"], "loss_D_labelmix_unweighted")
    if "z_lossD" in io:
        torch.manual_seed(case.seed(SEED_LOSS_D))
        assert_close(torch.randn(case.semantics.shape[0], generator.z_dim), io["z_lossD"], "z_lossD")
    assert_buffers(generator, case, "bufG_after_lossD")
    assert_buffers(discriminator, case, "bufD_after_lossD")
    step.total.backward()
    assert discriminator.layer_up_last.weight.grad.abs().sum() > 0


def test_labelmix_bits_are_the_recorded_draws(case):
    """The recorded per-class bits follow the z draw in the RNG stream, one randint per present class."""
    if case.opt["no_labelmix"]:
        pytest.skip("case trains without LabelMix")
    classes = case.io["labelmix_classes"]
    assert torch.equal(classes, torch.unique(case.semantics.argmax(dim=1)))
    torch.manual_seed(case.seed(SEED_LOSS_D))
    if not case.opt["no_3dnoise"]:
        torch.randn(case.semantics.shape[0], case.opt["z_dim"])
    bits = torch.cat([torch.randint(0, 2, (1,)) for _ in classes])
    assert torch.equal(bits, case.io["labelmix_bits"])


@dataclass
class _Batch:
    semantics: torch.Tensor
    image: torch.Tensor
