"""Semantic Palette through the framework: config checks, training through the generic trainer with
the progressive schedule as checkpointed state (bit-exact resume through a fade-in and resolution
changes), the fitted mixture, previews, the release model, Pipeline's image stage and DDP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spadekit.config import load_config
from spadekit.errors import ConfigError
from spadekit.inference import Pipeline
from spadekit.methods import get_method
from spadekit.release import load_model
from spadekit.training.checkpoint import load_checkpoint
from spadekit.training.setup import build_trainer

# 4 -> 8 -> 16 -> 32, two steps per phase: res 4 steps 1-2, res 8 fade 3-4 / stabilize 5-6,
# res 16 fade 7-8 / stabilize 9-10, res 32 fade 11-12 / stabilize 13-14.
TINY = list(get_method("palette").tiny_overrides) + ["palette.phase_steps=[2]", "train.log_every=1", "train.checkpoint_every=1000"]
QUIET = {"progress": False, "tensorboard": False, "log": lambda _: None}


def tiny(*extra: str):
    return load_config("palette-toy", TINY + list(extra))


def train(run: Path, steps: int, *extra: str, resume: str | None = None):
    trainer = build_trainer(tiny(*extra), run, steps=steps, resume=resume, **QUIET)
    trainer.fit()
    return trainer


def test_config_checks_name_the_field():
    with pytest.raises(ConfigError, match="model.width=32 is below the layout width"):
        load_config("palette-toy", TINY + ["palette.max_dim=64", "palette.final_res=64"])
    with pytest.raises(ConfigError, match="model.contain_dontcare=false"):
        tiny("model.contain_dontcare=true")
    with pytest.raises(ConfigError, match="integer aspect ratio"):
        tiny("model.aspect_ratio=1.5")
    with pytest.raises(ConfigError, match="phase_steps needs 1 or 4 entries"):
        tiny("palette.phase_steps=[1,2]")
    with pytest.raises(ConfigError, match="palette.final_res=8"):
        load_config("palette-toy", TINY + ["palette.max_dim=4", "palette.final_res=8"])
    with pytest.raises(ConfigError, match=r"excluded_classes: classes \[12\]"):
        tiny("palette.excluded_classes=[12]")


def test_training_runs_the_progressive_schedule_and_fits_the_mixture(tmp_path: Path):
    from spadekit.training.setup import networks_for

    trainer = train(tmp_path / "run", 6)
    schedule = trainer.networks["schedule"].schedule()
    assert (schedule.res, schedule.phase, schedule.iteration) == (16, "fade", 0)
    assert trainer.networks["mixture"].fitted
    state = load_checkpoint(trainer.last_checkpoint)
    assert state["schedule"]["state"].tolist() == [16, 0, 0, 0]
    # Only the stages' blocks trained: the 8x8 block moved, the 16x16 and 32x32 blocks (of both
    # networks) are still at their initial weights.
    fresh = networks_for(tiny())
    g, d = trainer.networks["generator"], trainer.networks["discriminator"]
    assert not torch.equal(g.blocks[1].conv2.weight, fresh["generator"].blocks[1].conv2.weight)
    for i in (2, 3):
        for name, value in g.blocks[i].state_dict().items():
            assert torch.equal(value, fresh["generator"].blocks[i].state_dict()[name]), f"generator block {i} {name}"
    for k in (0, 1):  # critic list order is high -> low resolution: entries 0, 1 are 32x32 and 16x16
        for name, value in d.blocks[k].state_dict().items():
            assert torch.equal(value, fresh["discriminator"].blocks[k].state_dict()[name]), f"critic block {k} {name}"
    # Previews: the generated layouts as pictures beside the real label pictures, same size.
    labels, fake, real = trainer.preview_images()
    assert fake.shape == labels.shape == real.shape and fake.min() >= -1 and fake.max() <= 1


def _states(run: Path, step: int) -> dict:
    return load_checkpoint(run / "checkpoints" / f"step-{step:08d}.pt")


def _assert_same(a, b, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys differ"
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_resume_is_bit_exact_through_a_fade_in_and_resolution_changes(tmp_path: Path):
    straight = train(tmp_path / "straight", 10)
    # Stop in the middle of the fade into 8x8 (step 3 of 4 taken: iteration 1 of 2) ...
    train(tmp_path / "resumed", 3)
    stopped = _states(tmp_path / "resumed", 3)
    assert stopped["schedule"]["state"].tolist() == [8, 0, 1, 0]
    # ... and resume through the end of the fade, the 8x8 stabilize phase and the fade into 16x16.
    resumed = train(tmp_path / "resumed", 10, resume="auto")
    assert resumed.networks["schedule"].schedule().res == 32
    a, b = _states(tmp_path / "straight", 10), _states(tmp_path / "resumed", 10)
    for key in ("generator", "discriminator", "schedule", "mixture", "optimizer_G", "optimizer_D", "rng", "step"):
        _assert_same(a[key], b[key], key)
    assert straight.step == resumed.step == 10


def test_a_different_schedule_refuses_to_resume(tmp_path: Path):
    train(tmp_path / "run", 2)
    with pytest.raises(Exception, match="palette"):
        build_trainer(tiny("palette.phase_steps=[3]"), tmp_path / "run", steps=4, resume="auto", **QUIET)


def test_release_holds_the_parts_and_pipeline_uses_the_image_stage(tmp_path: Path):
    trainer = train(tmp_path / "run", 14)
    model = load_model(tmp_path / "run" / "model")
    assert set(model.networks()) == {"generator", "discriminator", "schedule", "mixture"}
    assert model.extras["schedule"].done and model.extras["mixture"].fitted
    torch.testing.assert_close(model.extras["mixture"].means, trainer.networks["mixture"].means, rtol=0, atol=0)
    assert model.output_size == (32, 32)
    # Pipeline turns label maps into photos with the palette model's image stage (the bundled toy SPADE).
    pipe = Pipeline(model)
    toy = Pipeline.from_pretrained("toy")
    assert pipe.size == toy.size == (128, 128)
    label = torch.zeros(128, 128, dtype=torch.long)
    label[64:] = 5
    torch.testing.assert_close(pipe(label, seed=1, output="tensor"), toy(label, seed=1, output="tensor"), rtol=0, atol=0)


def test_a_model_without_image_model_says_so(tmp_path: Path):
    train(tmp_path / "run", 1, "palette.image_model=null")
    model = load_model(tmp_path / "run" / "model")
    with pytest.raises(ConfigError, match="makes layouts only"):
        Pipeline(model)


def test_regenerated_fakes_train_too(tmp_path: Path):
    trainer = train(tmp_path / "run", 2, "train.regenerate_fakes=true", "palette.estimated_cond=false")
    assert trainer.step == 2


def test_two_processes_train_with_ddp(tmp_path: Path):
    """torchrun (gloo, CPU): the progressive networks run only the current blocks, so DDP must look
    for unused parameters; the run trains through a resolution change and releases."""
    run = tmp_path / "ddp"
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "spadekit.cli",
            "train", "--preset", "palette-toy", "--out", str(run), "--steps", "4", "--no-progress", "--no-tensorboard",
            "--device", "cpu"]
    for override in TINY + ["train.batch_size=4"]:
        args += ["--set", override]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    state = _states(run, 4)
    assert state["world_size"] == 2 and state["schedule"]["state"].tolist() == [8, 1, 0, 0]
    assert load_model(run / "model").extras["mixture"].fitted


E2E = ["palette.end_to_end=true", "model.width=128", "data.crop_size=128", "data.load_size=128", "model.ndf=8",
       "model.num_D=1", "model.n_layers_D=2"]


def _one_finished_step(run: Path, *extra: str):
    trainer = build_trainer(tiny(*E2E, *extra), run, steps=1, **QUIET)
    trainer.networks["schedule"].finish()  # at the final resolution, where the photo terms apply
    before = {name: {k: v.clone() for k, v in net.state_dict().items()} for name, net in trainer.networks.items()}
    trainer.fit()
    return trainer, before


def test_end_to_end_tunes_both_generators_through_the_photo_critic(tmp_path: Path):
    trainer, before = _one_finished_step(tmp_path / "e2e")
    assert {"image_generator", "image_discriminator"} <= set(trainer.networks)
    for name, key in (("image_generator", "conv_img.weight"), ("image_discriminator", "discriminator_0.model0.0.weight")):
        assert not torch.equal(before[name][key], trainer.networks[name].state_dict()[key]), f"{name} did not train"
    # The photo term reaches the layout generator: without it (lambda_d2=0) its update differs.
    plain, _ = _one_finished_step(tmp_path / "plain", "palette.lambda_d2=0")
    key = "blocks.3.conv2.weight"
    assert not torch.equal(trainer.networks["generator"].state_dict()[key], plain.networks["generator"].state_dict()[key])
    # The release carries the tuned image generator; the pipeline draws its photos with it.
    model = load_model(tmp_path / "e2e" / "model")
    tuned = trainer.networks["image_generator"].state_dict()["conv_img.weight"]
    assert torch.equal(Pipeline(model).model.generator.state_dict()["conv_img.weight"], tuned)
    assert not torch.equal(load_model("toy").generator.state_dict()["conv_img.weight"], tuned)


def test_end_to_end_needs_an_image_model_at_the_data_size():
    with pytest.raises(ConfigError, match="end_to_end tunes the image model"):
        tiny(*E2E, "palette.image_model=null")
    from spadekit.methods.palette.method import networks

    with pytest.raises(ConfigError, match="makes \\(128, 128\\) photos"):
        networks(tiny("palette.end_to_end=true"), False)
