"""Training learns: the toy generator's L1 to real photos falls, two real COCO-Stuff samples are
overfitted, and a run directory holds everything the issue promises."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from torch.utils.data import default_collate

from spadekit.config import Config, load_config
from spadekit.data import open_dataset
from spadekit.models import build_networks
from spadekit.methods import layout_batch
from spadekit.release import load_model
from spadekit.training.checkpoint import load_checkpoint
from spadekit.training.setup import build_trainer

# 32x32 keeps these CPU runs short; the generator still has every block (a 1x1 latent map).
TINY = [
    "model.ngf=8",
    "model.ndf=8",
    "model.width=32",
    "model.spade_hidden=16",
    "data.crop_size=32",
    "data.load_size=36",
    "train.batch_size=2",
    "train.lr=2e-3",
    "loss.lambda_vgg=0",
]


def fixed_l1(config: Config, generator_state: dict, items: list[dict]) -> float:
    """Mean |G(semantics) - real| over ``items``, with a fresh generator holding ``generator_state``
    in train mode (batch statistics of this fixed batch), so the measurement never touches the run."""
    batch = layout_batch(default_collate(items), config, "cpu")
    generator, _, _ = build_networks(config.model, init=False)
    generator.load_state_dict(generator_state)
    with torch.no_grad():
        return (generator(batch.semantics) - batch.image).abs().mean().item()


def test_toy_training_lowers_l1_and_fills_the_run_directory(tmp_path: Path) -> None:
    wider = [o for o in TINY if not o.startswith(("model.width", "data.crop", "data.load"))]
    config = load_config(
        "toy",
        wider
        + [
            "model.width=64",
            "data.crop_size=64",
            "data.load_size=72",
            "model.use_vae=false",
            "data.toy_scenes=64",
            "train.checkpoint_every=10",
            "train.keep_checkpoints=3",
            "train.log_every=25",
            "train.image_every=50",
            "train.ema_decay=0.9",
        ],
    )
    val = open_dataset(None, split="val", train=False, data=config.data, model=config.model)
    items = [val[i] for i in range(8)]
    run = tmp_path / "run"
    trainer = build_trainer(config, run, steps=100, progress=False, log=lambda _: None)
    before = fixed_l1(config, trainer.G.state_dict(), items)
    result = trainer.fit()
    assert result.step == 100
    # GAN training oscillates: average the L1 of the last three checkpoints (steps 80, 90, 100).
    kept = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert kept == ["step-00000080.pt", "step-00000090.pt", "step-00000100.pt"]
    after = [fixed_l1(config, load_checkpoint(run / "checkpoints" / name)["generator"], items) for name in kept]
    assert sum(after) / 3 < 0.8 * before, (before, after)

    # The run directory: resolved config, metrics, TensorBoard, gallery, release model.
    assert json.loads((run / "config.json").read_text())["model"]["ngf"] == 8
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [25, 50, 75, 100]
    assert {"G_GAN", "G_feat", "D_fake", "D_real", "lr_G", "it_per_s"} <= set(records[-1])
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "tensorboard").iterdir())
    page = (run / "gallery" / "index.html").read_text()
    assert "step-00000050.png" in page and "step-00000100.png" in page
    assert (run / "gallery" / "step-00000100.png").stat().st_size > 0
    released = load_model(run / "model")
    assert released.config.model == config.model
    # EMA on: the release holds the EMA generator, not the live one.
    ema_state = trainer.ema.state_dict()
    for key, value in released.generator.state_dict().items():
        assert torch.equal(value, ema_state[key]), key
    assert not all(torch.equal(ema_state[k], v) for k, v in trainer.G.state_dict().items())


def test_overfits_two_real_coco_stuff_samples(tmp_path: Path, coco_samples: Path) -> None:
    root = tmp_path / "coco"
    stems = sorted(p.stem for p in (coco_samples / "train_img").iterdir())[:2]
    for folder, ext in (("train_img", ".jpg"), ("train_label", ".png"), ("train_inst", ".png")):
        (root / folder).mkdir(parents=True)
        for stem in stems:
            shutil.copy(coco_samples / folder / f"{stem}{ext}", root / folder / f"{stem}{ext}")
    config = load_config(
        "coco",
        TINY + ["data.preprocess=fixed", "data.no_flip=true", "model.num_D=1", "train.checkpoint_every=1000"],
        {"data": {"root": str(root)}},
    )
    dataset = open_dataset(root, split="train", train=True, data=config.data, model=config.model)
    assert len(dataset) == 2
    items = [dataset[0], dataset[1]]
    trainer = build_trainer(config, tmp_path / "run", steps=40, progress=False, tensorboard=False, log=lambda _: None)
    before = fixed_l1(config, trainer.G.state_dict(), items)
    trainer.fit()
    after = fixed_l1(config, trainer.G.state_dict(), items)
    assert after < 0.75 * before, (before, after)
