"""``train.frozen`` and ``loss.lambda_gan``: a phase that trains only the style encoder of a released
model leaves its generator (weights and batch-norm statistics) and discriminator exactly as they were."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from spadekit.batch import Batch
from spadekit.cli import main
from spadekit.config import LossConfig, load_config
from spadekit.models import build_networks
from spadekit.objective import SpadeObjective
from spadekit.release import SpadeModel, load_model
from spadekit.training.checkpoint import load_checkpoint
from spadekit.training.setup import networks_for

TINY_VAE = [
    "model.ngf=8",
    "model.ndf=8",
    "model.width=32",
    "model.spade_hidden=16",
    "model.use_vae=true",
    "data.crop_size=32",
    "data.load_size=36",
    "data.toy_scenes=8",
    "train.batch_size=2",
    "train.ema_decay=0",
    "loss.lambda_vgg=0",
    "loss.lambda_l1=1",
]
ENCODER_ONLY = ["train.frozen=[generator,discriminator]", "loss.lambda_gan=0", "loss.lambda_feat=0"]


def train(out: Path, *extra: str, overrides: list[str]) -> int:
    args = ["train", "--preset", "toy", "--out", str(out), "--device", "cpu", "--no-progress", "--no-tensorboard"]
    for override in overrides:
        args += ["--set", override]
    return main(args + list(extra))


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A release model whose generator differs from any fresh one, with non-trivial batch-norm statistics
    (a generator left in train mode would overwrite them with the batches' statistics)."""
    config = load_config("toy", TINY_VAE)
    generator, discriminator, encoder = build_networks(config.model)
    torch.manual_seed(5)
    with torch.no_grad():
        for p in generator.parameters():
            p.add_(0.05 * torch.randn_like(p))
        for name, buffer in generator.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(0.3 * torch.randn_like(buffer))
            elif name.endswith("running_var"):
                buffer.copy_(0.5 + torch.rand_like(buffer))
    SpadeModel(config, generator, discriminator, encoder).save(tmp_path / "source")
    return tmp_path / "source"


def states_equal(a: torch.nn.Module, b: torch.nn.Module) -> list[str]:
    """Names of the state entries (parameters and buffers) that differ."""
    sa, sb = a.state_dict(), b.state_dict()
    return [k for k in sa if not torch.equal(sa[k], sb[k])]


def test_encoder_phase_changes_only_the_encoder_and_resumes(tmp_path: Path, source: Path, capsys) -> None:
    out = tmp_path / "run"
    assert train(out, "--steps", "3", "--init-from", str(source), overrides=TINY_VAE + ENCODER_ONLY) == 0
    plan = capsys.readouterr().out
    assert "frozen (not trained, eval mode): generator, discriminator" in plan
    before, after = load_model(source), load_model(out / "model")
    assert states_equal(before.generator, after.generator) == []
    assert states_equal(before.encoder, after.encoder), "the encoder should have been trained"

    state = load_checkpoint(out / "checkpoints" / "step-00000003.pt")
    assert state["optimizer_D"] is None  # no D step at all
    fresh_D = networks_for(load_config("toy", TINY_VAE))["discriminator"]
    assert all(torch.equal(v, state["discriminator"][k]) for k, v in fresh_D.state_dict().items())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert "G_L1" in records[-1] and "KLD" in records[-1]
    assert not {"G_GAN", "G_feat", "D_fake", "D_real"} & set(records[-1])

    assert train(out, "--steps", "5", "--resume", "auto", overrides=TINY_VAE + ENCODER_ONLY) == 0
    resumed = load_model(out / "model")
    assert states_equal(before.generator, resumed.generator) == []
    assert states_equal(after.encoder, resumed.encoder)


def test_frozen_generator_with_a_training_discriminator(tmp_path: Path, source: Path, capsys) -> None:
    out = tmp_path / "run"
    assert train(out, "--steps", "2", "--init-from", str(source), overrides=TINY_VAE + ["train.frozen=[generator]"]) == 0
    capsys.readouterr()
    state = load_checkpoint(out / "checkpoints" / "step-00000002.pt")
    assert state["optimizer_D"] is not None
    fresh_D = networks_for(load_config("toy", TINY_VAE))["discriminator"].state_dict()
    assert any(not torch.equal(v, state["discriminator"][k]) for k, v in fresh_D.items()), "D should train"
    assert states_equal(load_model(source).generator, load_model(out / "model").generator) == []


def test_frozen_discriminator_with_a_training_generator(tmp_path: Path, source: Path, capsys) -> None:
    out = tmp_path / "run"
    assert train(out, "--steps", "2", "--init-from", str(source), overrides=TINY_VAE + ["train.frozen=[discriminator]"]) == 0
    capsys.readouterr()
    state = load_checkpoint(out / "checkpoints" / "step-00000002.pt")
    assert state["optimizer_D"] is None
    source_D = load_model(source).discriminator.state_dict()
    assert all(torch.equal(v, state["discriminator"][k]) for k, v in source_D.items()), "D must not change"
    assert states_equal(load_model(source).generator, load_model(out / "model").generator), "G should train"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert "G_GAN" in records[-1] and not {"D_fake", "D_real"} & set(records[-1])


def test_resuming_with_another_frozen_list_is_refused(tmp_path: Path, source: Path, capsys) -> None:
    out = tmp_path / "run"
    assert train(out, "--steps", "2", "--init-from", str(source), overrides=TINY_VAE + ENCODER_ONLY) == 0
    capsys.readouterr()
    assert train(out, "--steps", "3", "--resume", "auto", overrides=TINY_VAE) != 0
    assert "was train.frozen changed?" in capsys.readouterr().err
    assert not (out / "checkpoints" / "step-00000003.pt").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.frozen=[genrator]"], "genrator is not a part of this model; its parts are generator, discriminator, encoder"),
        (["train.frozen=[generator,encoder]"], "nothing is left to train in the generator step"),
        (["train.frozen=[generator]", "train.ema_decay=0.999"], "set train.ema_decay=0"),
        (["train.frozen=[encoder,encoder]"], "names a part twice"),
    ],
    ids=["unknown-part", "nothing-to-train", "frozen-generator-with-ema", "twice"],
)
def test_bad_frozen_lists_stop_before_the_run_directory_exists(tmp_path: Path, capsys, overrides, message) -> None:
    out = tmp_path / "run"
    assert train(out, "--steps", "1", overrides=TINY_VAE + overrides) != 0
    assert message in capsys.readouterr().err
    assert not out.exists()


class CountingDiscriminator(torch.nn.Module):
    """One scale, one feature map: the mean of the input per image (so the GAN term is easy to check)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, pairs: torch.Tensor) -> list[list[torch.Tensor]]:
        self.calls += 1
        return [[pairs.mean(dim=(1, 2, 3), keepdim=True)]]


def test_lambda_gan_scales_the_adversarial_term_and_zero_skips_the_discriminator() -> None:
    torch.manual_seed(0)
    semantics = torch.zeros(2, 3, 8, 8)
    semantics[:, 0] = 1
    batch = Batch(semantics=semantics, image=torch.rand(2, 3, 8, 8) * 2 - 1)
    fake = torch.rand(2, 3, 8, 8) * 2 - 1
    fake_pairs = torch.cat([semantics, fake], 1)
    hinge = -fake_pairs.mean()  # the generator's hinge term: -mean(D(fake))

    def terms(**weights) -> tuple[dict, int]:
        disc = CountingDiscriminator()
        objective = SpadeObjective(torch.nn.Identity(), disc, None, LossConfig(lambda_vgg=0, **weights))
        return objective.generator_terms(batch, fake, None, None), disc.calls

    one, _ = terms(lambda_feat=0)
    three, _ = terms(lambda_feat=0, lambda_gan=3.0)
    assert torch.allclose(one["G_GAN"], hinge) and torch.allclose(three["G_GAN"], 3 * hinge)
    none, calls = terms(lambda_feat=0, lambda_gan=0, lambda_l1=1)
    assert calls == 0 and set(none) == {"G_L1"}
    matching_only, calls = terms(lambda_gan=0)
    assert calls == 1 and set(matching_only) == {"G_feat"}


def test_init_parts_generator_starts_a_new_encoder(tmp_path: Path, source: Path, capsys) -> None:
    out = tmp_path / "run"
    overrides = TINY_VAE + ENCODER_ONLY + ["model.norm_E=none"]  # another encoder architecture than the source's
    assert train(out, "--steps", "0", "--init-from", str(source), "--init-parts", "generator", overrides=overrides) == 0
    capsys.readouterr()
    tuned = load_model(out / "model")
    assert tuned.config.model.norm_E == "none"
    assert states_equal(load_model(source).generator, tuned.generator) == []
    fresh = networks_for(load_config("toy", overrides))["encoder"]
    assert states_equal(fresh, tuned.encoder) == []


def test_init_parts_errors(tmp_path: Path, source: Path, capsys) -> None:
    no_encoder = load_model(source)
    no_encoder.encoder = None
    no_encoder.save(tmp_path / "no-encoder")
    out = tmp_path / "run"
    assert train(out, "--steps", "0", "--init-from", str(tmp_path / "no-encoder"), "--init-parts", "encoder", overrides=TINY_VAE) != 0
    assert "--init-parts encoder" in capsys.readouterr().err and not out.exists()
    assert train(out, "--steps", "0", "--init-parts", "generator", overrides=TINY_VAE) != 0
    assert "--init-parts needs --init-from" in capsys.readouterr().err and not out.exists()


SPADE_LAYERS_ONLY = ["train.trainable=[generator.*.mlp_shared.*,generator.*.mlp_gamma.*]"]


def test_trainable_patterns_train_only_the_matching_parameters(tmp_path: Path, source: Path, capsys) -> None:
    out = tmp_path / "run"
    overrides = TINY_VAE + SPADE_LAYERS_ONLY + ["loss.lambda_gan=0", "loss.lambda_feat=0"]
    assert train(out, "--steps", "3", "--init-from", str(source), overrides=overrides) == 0
    assert "trained parameters: only those matching generator.*.mlp_shared.*, generator.*.mlp_gamma.*" in capsys.readouterr().out
    before, after = load_model(source), load_model(out / "model")
    changed = states_equal(before.generator, after.generator)
    parameters = [name for name, _ in before.generator.named_parameters()]
    trained = [n for n in parameters if ".mlp_shared." in n or ".mlp_gamma." in n]
    assert trained and set(trained) <= set(changed)
    assert not [n for n in changed if n in parameters and n not in trained]  # mlp_beta, convs, fc untouched
    # The generator still ran in training mode: its batch norms kept updating their statistics.
    assert any(name.endswith("running_mean") for name in changed)
    # Matched by no pattern: the encoder's weights stay (spectral norm's power-iteration vectors, buffers, move on).
    encoder_parameters = {name for name, _ in before.encoder.named_parameters()}
    assert encoder_parameters and not encoder_parameters & set(states_equal(before.encoder, after.encoder))
    state = load_checkpoint(out / "checkpoints" / "step-00000003.pt")
    assert state["optimizer_D"] is None  # nothing of D matches: no D step
    assert len(state["optimizer_G"]["param_groups"][0]["params"]) == len(trained)
    # Resuming with the same patterns goes on; with others it is refused before anything is written.
    assert train(out, "--steps", "4", "--resume", "auto", overrides=overrides) == 0
    capsys.readouterr()
    assert train(out, "--steps", "5", "--resume", "auto", overrides=TINY_VAE + ["loss.lambda_gan=0", "loss.lambda_feat=0"]) != 0
    assert "train.trainable" in capsys.readouterr().err
    assert not (out / "checkpoints" / "step-00000005.pt").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.trainable=[generator.*.mlp_latnet.*]"], "'generator.*.mlp_latnet.*' matches no parameter"),
        (["train.trainable=[encoder.*]", "train.frozen=[encoder]"], "'encoder.*' matches no parameter"),
        (["train.trainable=[discriminator.*]"], "leaves nothing to train in the generator step"),
    ],
    ids=["no-match", "frozen-part", "nothing-in-the-generator-step"],
)
def test_bad_trainable_patterns_stop_before_the_run_directory_exists(tmp_path: Path, capsys, overrides, message) -> None:
    out = tmp_path / "run"
    assert train(out, "--steps", "1", overrides=TINY_VAE + overrides) != 0
    assert message in capsys.readouterr().err
    assert not out.exists()
