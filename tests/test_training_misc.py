"""The training layer's contracts: data order, checkpoints, failures that stop cleanly, fine-tuning,
precision options, and the ``spadekit train`` command line."""

from __future__ import annotations

import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spadekit.cli import main
from spadekit.config import load_config
from spadekit.data import open_dataset
from spadekit.models import build_networks
from spadekit.release import SpadeModel, load_model
from spadekit.training import checkpoint as ckpt
from spadekit.training.sampling import EpochSampler, SeededSamples, epoch_layout
from spadekit.training.setup import build_trainer, networks_for

from grad_probe import relative_errors, step_gradients

TINY = [
    "model.ngf=8",
    "model.ndf=8",
    "model.width=32",
    "model.spade_hidden=16",
    "model.use_vae=false",
    "data.crop_size=32",
    "data.load_size=36",
    "data.toy_scenes=8",
    "train.batch_size=2",
    "loss.lambda_vgg=0",
]


def cli_args(out: Path, *extra: str, overrides: list[str] = TINY) -> list[str]:
    args = ["train", "--preset", "toy", "--out", str(out), "--device", "cpu", "--no-progress", "--no-tensorboard"]
    for override in overrides:
        args += ["--set", override]
    return args + list(extra)


# ----------------------------------------------------------------------------- data order


def test_two_process_split_covers_each_global_batch_and_resumes_mid_epoch() -> None:
    data = list(range(23))
    micro_one, steps_one = epoch_layout(len(data), 1, 4, 1)
    micro_two, steps_two = epoch_layout(len(data), 2, 4, 1)
    assert (micro_one, micro_two, steps_one, steps_two) == (4, 2, 5, 5)
    one = EpochSampler(data, 1, 0, seed=3, batch_size=4, batches_per_epoch=5)
    ranks = [EpochSampler(data, 2, r, seed=3, batch_size=2, batches_per_epoch=5) for r in range(2)]
    for epoch in (0, 1):
        for sampler in (one, *ranks):
            sampler.set_epoch(epoch)
        whole = [i for _, i in one]
        parts = [[i for _, i in s] for s in ranks]
        assert len(whole) == 20 and len(set(whole)) == 20
        for j in range(5):
            assert sorted(whole[4 * j : 4 * j + 4]) == sorted(parts[0][2 * j : 2 * j + 2] + parts[1][2 * j : 2 * j + 2])
    one.set_epoch(0)
    epoch0 = [i for _, i in one]
    one.set_epoch(1)
    assert [i for _, i in one] != epoch0
    one.set_epoch(0, start_batch=3)
    assert [i for _, i in one] == epoch0[12:] and len(one) == 8


def test_augmentation_depends_only_on_seed_epoch_index_and_leaves_global_rng_alone() -> None:
    config = load_config("toy", TINY + ["data.load_size=48"])  # room for random crops
    dataset = SeededSamples(open_dataset(None, split="train", train=True, data=config.data, model=config.model), seed=5)
    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    first = dataset[(0, 3)]
    after = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    assert torch.equal(before[0], after[0]) and before[1] == after[1] and (before[2] == after[2]).all()
    torch.manual_seed(99)
    assert torch.equal(dataset[(0, 3)]["image"], first["image"])
    crops = {tuple(dataset[(epoch, 3)]["image"][:, 0, 0].tolist()) for epoch in range(6)}
    assert len(crops) > 1, "different epochs should draw different crops/flips"


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_files_rng_roundtrip_pruning_and_damaged_newest(tmp_path: Path) -> None:
    device = torch.device("cpu")
    torch.manual_seed(7)
    random.seed(7)
    np.random.seed(7)
    rng = ckpt.capture_rng(device)
    expected = (torch.rand(3), random.random(), np.random.rand())
    for step in (10, 20, 30, 40):
        ckpt.save_checkpoint({"step": step, "rng": [rng]}, tmp_path, step, keep=2)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [30, 40]
    loaded = ckpt.load_checkpoint(ckpt.checkpoint_path(tmp_path, 40))  # weights_only=True inside
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    ckpt.restore_rng(loaded["rng"][0], device)
    again = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(expected[0], again[0]) and expected[1:] == again[1:]

    (ckpt.checkpoint_dir(tmp_path) / ".step-00000050.pt.abc.tmp").write_bytes(b"half")
    assert len(ckpt.remove_stale_temporaries(tmp_path)) == 1
    ckpt.checkpoint_path(tmp_path, 40).write_bytes(b"\x00" * 10)  # a damaged newest file
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path, state = ckpt.latest_checkpoint(tmp_path)
    assert state["step"] == 30 and path.name == "step-00000030.pt"
    assert any("step-00000040.pt" in str(w.message) for w in caught)


def test_a_release_model_is_not_a_training_checkpoint(tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(Exception, match="not a spadekit training checkpoint"):
        ckpt.load_checkpoint(other)


# ----------------------------------------------------------------------------- failures


def test_missing_vgg_weights_stop_before_the_first_step(tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "run"
    weights = tmp_path / "nowhere" / "vgg19.pth"
    overrides = [o for o in TINY if not o.startswith("loss.")] + ["loss.lambda_vgg=10"]
    code = main(cli_args(out, "--steps", "1", overrides=overrides + [f"loss.vgg_weights={weights}"]))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and str(weights) in err and len(err.splitlines()) == 1
    assert not out.exists()
    # No path given: the message names torchvision's file and the cache folder it belongs in.
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    code = main(cli_args(out, "--steps", "1", overrides=overrides))
    err = capsys.readouterr().err
    assert code == 2 and "vgg19-dcbb9e9d.pth" in err and str(tmp_path / "hub" / "checkpoints") in err and "--no-vgg" in err
    assert not out.exists()


class _PoisonAfter(torch.utils.data.Dataset):
    """Real toy items, then NaN images once ``clean`` items have been served."""

    def __init__(self, dataset, clean: int):
        self.dataset, self.clean, self.served = dataset, clean, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.dataset[index])
        self.served += 1
        if self.served > self.clean:
            item["image"] = torch.full_like(item["image"], float("nan"))
        return item


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path: Path, capsys, monkeypatch) -> None:
    import spadekit.training.setup as trainer_module

    real_open = trainer_module.open_training_data

    def poisoned(config, split="train", train=True):
        dataset = real_open(config, split, train)
        return _PoisonAfter(dataset, clean=4) if split == "train" else dataset

    monkeypatch.setattr(trainer_module, "open_training_data", poisoned)
    out = tmp_path / "run"
    code = main(cli_args(out, "--steps", "6", "--checkpoint-every", "2"))
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 3, err
    assert "non-finite loss at step 3" in err and "step-00000002.pt" in err
    assert [s for s, _ in ckpt.list_checkpoints(out)] == [2]
    good = ckpt.load_checkpoint(ckpt.checkpoint_path(out, 2))
    assert all(torch.isfinite(v).all() for v in good["generator"].values() if v.dtype.is_floating_point)


def test_an_existing_run_is_not_overwritten_without_resume(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(cli_args(out, "--steps", "1")) == 0
    capsys.readouterr()
    assert main(cli_args(out, "--steps", "2")) == 2
    assert "--resume auto" in capsys.readouterr().err
    assert main(cli_args(out, "--steps", "2", "--resume", "auto")) == 0
    assert "resumed from" in capsys.readouterr().out
    assert [s for s, _ in ckpt.list_checkpoints(out)] == [1, 2]
    # A different model in the same run directory is refused, naming the checkpoint and the option.
    assert main(cli_args(out, "--steps", "3", "--resume", "auto", overrides=TINY + ["model.ngf=4"])) == 2
    err = capsys.readouterr().err
    assert "step-00000002.pt" in err and "model.ngf=8" in err


def test_dry_run_prints_config_and_parameter_counts_and_writes_nothing(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "--preset", "coco", "--out", str(out), "--dry-run", "--no-vgg"]) == 0
    text = capsys.readouterr().out
    assert '"label_nc": 182' in text and "generator 97.48M" in text and "global batch 32" in text
    assert not out.exists()


# ----------------------------------------------------------------------------- fine-tuning


def test_init_from_release_model_takes_its_generator_and_architecture(tmp_path: Path, capsys) -> None:
    source_config = load_config("toy", TINY + ["model.ngf=4"])
    generator, discriminator, encoder = build_networks(source_config.model)
    with torch.no_grad():
        for p in generator.parameters():
            p.add_(0.5)  # distinguishable from any fresh initialisation
    SpadeModel(source_config, generator, discriminator, encoder).save(tmp_path / "source")
    out = tmp_path / "run"
    # The preset says ngf 16; the model section (architecture) follows the weights unless --set says otherwise.
    overrides = [o for o in TINY if not o.startswith("model.ngf")]
    assert main(cli_args(out, "--steps", "0", "--init-from", str(tmp_path / "source"), overrides=overrides)) == 0
    capsys.readouterr()
    tuned = load_model(out / "model")
    assert tuned.config.model.ngf == 4
    for key, value in generator.state_dict().items():
        assert torch.equal(tuned.generator.state_dict()[key], value), key
    fresh_D = networks_for(tuned.config)["discriminator"]
    for key, value in fresh_D.state_dict().items():
        assert torch.equal(tuned.discriminator.state_dict()[key], value), f"D should start fresh: {key}"


def test_init_from_official_checkpoint_folder(tmp_path: Path, parity_dir: Path, capsys) -> None:
    official = tmp_path / "official"
    official.mkdir()
    shutil.copy(parity_dir / "p2b_custom_noinst_batch5x5" / "latest_net_G.pth", official)
    data = tmp_path / "data"
    (data / "labels").mkdir(parents=True)
    (data / "images").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 10, (64, 64), dtype=np.uint8)).save(data / "labels" / f"{name}.png")
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(data / "images" / f"{name}.png")
    out = tmp_path / "run"
    args = ["train", "--preset", "custom", "--data", str(data), "--out", str(out), "--steps", "1", "--no-vgg"]
    args += ["--init-from", str(official), "--device", "cpu", "--no-progress", "--no-tensorboard"]
    args += ["--set", "model.width=64", "--set", "data.load_size=64", "--set", "data.crop_size=64", "--set", "train.batch_size=2"]
    assert main(args) == 0, capsys.readouterr().err
    capsys.readouterr()
    tuned = load_model(out / "model")
    assert (tuned.config.model.ngf, tuned.config.model.label_nc, tuned.config.model.spade_kernel) == (4, 10, 5)
    state = ckpt.load_checkpoint(ckpt.checkpoint_path(out, 1))
    official_G = torch.load(official / "latest_net_G.pth", weights_only=True)
    moved = (state["generator"]["conv_img.weight"] - official_G["conv_img.weight"]).abs().max().item()
    assert 0 < moved < 1e-3, "one small step away from the official weights"


# ----------------------------------------------------------------------------- speed options


def test_bf16_channels_last_ema_and_accumulation_train(tmp_path: Path) -> None:
    # 64 px: with micro-batches of 1 the generator's batch norm needs a latent map larger than 1x1.
    wider = [o for o in TINY if not o.startswith(("model.width", "data.crop", "data.load"))]
    wider += ["model.width=64", "data.crop_size=64", "data.load_size=64"]
    config = load_config(
        "toy",
        wider + ["model.use_vae=true", "train.precision=bf16", "train.channels_last=true", "train.ema_decay=0.5",
                "train.grad_accum=2", "train.checkpoint_every=2"],
    )
    trainer = build_trainer(config, tmp_path / "run", steps=2, progress=False, tensorboard=False, log=lambda _: None)
    assert trainer.options.micro_batch == 1 and trainer.options.grad_accum == 2
    result = trainer.fit()
    assert result.step == 2 and all(np.isfinite(v) for v in result.last_losses.values())
    released = load_model(tmp_path / "run" / "model")
    ema = trainer.ema.state_dict()
    assert all(torch.equal(released.generator.state_dict()[k], v.cpu()) for k, v in ema.items())


def test_fp16_runs_in_half_precision_with_a_checkpointed_gradient_scaler(tmp_path: Path) -> None:
    states = {}
    for precision in ("fp32", "fp16"):
        config = load_config("toy", TINY + [f"train.precision={precision}"])
        trainer = build_trainer(config, tmp_path / precision, steps=1, progress=False, tensorboard=False, log=lambda _: None)
        seen = []
        trainer.G.conv_img.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
        trainer.fit()
        assert seen == [torch.float16 if precision == "fp16" else torch.float32]
        states[precision] = ckpt.load_checkpoint(ckpt.checkpoint_path(tmp_path / precision, 1))["scaler"]
    assert states["fp32"] == {}  # no scaler without fp16
    # The scaler updated once: a finite step keeps the initial 2^16 and counts one good step; an
    # overflow in fp16 halves the scale and skips the step (what this tiny model does on some CPUs).
    assert (states["fp16"]["scale"], states["fp16"]["_growth_tracker"]) in ((2.0**16, 1), (2.0**15, 0))


def test_gradient_accumulation_gives_the_full_batch_gradients_with_vae(tmp_path: Path) -> None:
    # No spectral norm (its power iteration runs once per forward pass, i.e. per micro-batch) and
    # instance norm (no batch statistics): then 2 x 1 accumulated samples equal one batch of 2, the
    # KL term (a sum over the samples, see SpadeObjective's kl_scale) included.
    base = [o for o in TINY if not o.startswith(("model.width", "model.use_vae", "data.crop", "data.load"))]
    base += ["model.width=64", "data.crop_size=64", "data.load_size=64", "model.norm_G=instance", "model.use_vae=true",
             "model.spectral_G=false", "model.spectral_D=false", "model.spectral_E=false"]
    full = step_gradients(base + ["train.grad_accum=1"], tmp_path / "a1")
    accumulated = step_gradients(base + ["train.grad_accum=2"], tmp_path / "a2")
    errors = relative_errors(accumulated["grads"], full["grads"])
    assert set(errors) == {"G", "D", "E"} and all(e < 1e-5 for e in errors.values()), errors


def test_dataloader_workers_do_not_change_the_result(tmp_path: Path) -> None:
    """Augmentation is seeded per (seed, epoch, index), so a worker process draws what the main process would."""
    states = []
    for workers in (0, 1):
        config = load_config("toy", TINY + ["model.use_vae=true", "data.load_size=40", f"data.num_workers={workers}"])
        trainer = build_trainer(config, tmp_path / f"w{workers}", steps=3, progress=False, tensorboard=False, log=lambda _: None)
        trainer.fit()
        states.append(trainer.G.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_local_batchnorm_updates_the_sync_layers_own_statistics() -> None:
    # Rank 0 refreshes the EMA generator's statistics alone: its sync layers must then act like plain
    # batch norm (no collective the other ranks would never join) and keep what they gather.
    from spadekit.training.distributed import GlobalBatchNorm2d, convert_sync_batchnorm, local_batchnorm

    torch.manual_seed(0)
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4), torch.nn.Sequential(torch.nn.BatchNorm2d(4, affine=False)))
    synced = convert_sync_batchnorm(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4),
                                                        torch.nn.Sequential(torch.nn.BatchNorm2d(4, affine=False))), torch.device("cpu"))
    synced.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 5, 5) * 3 + 1
    with local_batchnorm(synced.train()):
        assert not any(isinstance(m, GlobalBatchNorm2d) for m in synced.modules())
        out = synced(x)
    assert isinstance(synced[1], GlobalBatchNorm2d) and isinstance(synced[2][0], GlobalBatchNorm2d)
    assert torch.allclose(out, plain.train()(x))
    state = synced.state_dict()
    assert not torch.equal(state["1.running_mean"], torch.zeros(4)), "the statistics did not reach the sync layer"
    for key, value in plain.state_dict().items():
        assert torch.equal(state[key], value), key
