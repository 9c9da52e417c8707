"""Every registered method works through the method-agnostic layers: a training step with the
generic trainer, a release model, loading it back and a synthesis through ``Pipeline``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spadekit.config import load_config
from spadekit.errors import ConfigError
from spadekit.inference import Pipeline
from spadekit.methods import get_method, list_methods, register_method
from spadekit.release import load_model
from spadekit.training.setup import build_trainer

METHODS = sorted(list_methods())


def tiny_config(name: str):
    method = get_method(name)
    assert method.toy_preset, f"{name} has no toy preset"
    return load_config(method.toy_preset, list(method.tiny_overrides) + ["train.log_every=1", "train.checkpoint_every=1"])


@pytest.mark.parametrize("name", METHODS)
def test_every_method_trains_a_step_releases_and_synthesizes(name: str, tmp_path: Path) -> None:
    config = tiny_config(name)
    assert config.method == name
    torch.manual_seed(0)
    trainer = build_trainer(config, tmp_path / "run", steps=1, progress=False, tensorboard=False, log=lambda _: None)
    before = {k: v.clone() for k, v in trainer.G.state_dict().items()}
    result = trainer.fit()
    assert result.step == 1 and result.last_losses
    assert all(torch.isfinite(torch.tensor(v)) for v in result.last_losses.values())
    moved = [k for k, v in trainer.G.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert moved, "one training step changed no generator weight"

    model = load_model(result.model_dir)
    assert model.config.method == name
    pipe = Pipeline(model)
    width, height = pipe.size
    label = torch.zeros(height, width, dtype=torch.long)
    label[: height // 2] = 1
    images = pipe(label, seed=3, output="tensor")
    assert images.shape == (1, 3, height, width)
    assert torch.isfinite(images).all()
    again = pipe(label, seed=3, output="tensor")
    assert torch.equal(images, again), "the same seed must give the same image"


def test_unknown_method_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        load_config("toy", extra={"method": "nope"})


def test_a_method_is_added_by_registration_alone() -> None:
    # A new method reusing SPADE's pieces under another name: no framework code changes.
    spade = get_method("spade")
    from dataclasses import replace

    copy = register_method(replace(spade, name="spade-copy-for-test", title="copy"))
    try:
        config = load_config("toy", list(spade.tiny_overrides), extra={"method": "spade-copy-for-test"})
        assert config.method == "spade-copy-for-test"
        parts = copy.build_networks(config, False)
        assert {"generator", "discriminator"} <= set(parts)
    finally:
        from spadekit.methods import _METHODS

        _METHODS.pop("spade-copy-for-test", None)


def test_release_does_not_import_the_converters() -> None:
    # The old convert <-> release import cycle: release must stand alone.
    code = "import sys, spadekit.release; assert 'spadekit.convert' not in sys.modules, 'release imports convert'"
    subprocess.run([sys.executable, "-c", code], check=True)
