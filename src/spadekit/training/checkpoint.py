"""Training-state checkpoints: one ``.pt`` per save, written atomically, the newest K kept.

A checkpoint is a plain nested dict of tensors, numbers and strings (networks, optimisers, gradient
scaler, EMA, step, RNG states, config), so it loads with ``torch.load(weights_only=True)``: a
checkpoint never runs code. Files are ``RUN_DIR/checkpoints/step-00001000.pt``; each is written to a
temporary file, fsynced and renamed, so a run killed at any moment leaves the previous complete
checkpoints and at most a stray ``.step-*.tmp`` (removed on the next start).
"""

from __future__ import annotations

import os
import random
import re
import time
import warnings
from pathlib import Path
from typing import Any

import dataclasses

import numpy as np
import torch

from spadekit.config import ModelConfig, TrainConfig
from spadekit.errors import CheckpointError
from spadekit.io import atomic_write, safe_torch_load

FORMAT = "spadekit-train-state"
VERSION = 1
CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step-(\d+)\.pt$")
SLOW_SAVE_ENV = "SPADEKIT_DEBUG_SLOW_CHECKPOINT"
"""``SECONDS`` or ``STEP=SECONDS``: pause inside the checkpoint write (of every step, or of that step),
after the temporary file is written and before the rename. Tests kill the process there to prove
that a half-written checkpoint is never used."""


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return checkpoint_dir(run_dir) / f"step-{step:08d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of the complete checkpoints in the run, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def remove_stale_temporaries(run_dir: str | Path) -> list[Path]:
    """Delete half-written checkpoint files left by a killed run; returns what was removed."""
    folder = checkpoint_dir(run_dir)
    removed = []
    if folder.is_dir():
        for path in folder.glob(".step-*.tmp"):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def save_checkpoint(state: dict[str, Any], run_dir: str | Path, step: int, keep: int) -> Path:
    """Write ``state`` atomically as the checkpoint of ``step``, then delete all but the newest ``keep``."""
    target = checkpoint_path(run_dir, step)
    payload = {"format": FORMAT, "version": VERSION, **state}
    delay = _debug_delay(step)

    def write(tmp: Path) -> None:
        torch.save(payload, tmp)
        if delay > 0:
            time.sleep(delay)

    atomic_write(target, write)
    if keep > 0:
        for _, old in list_checkpoints(run_dir)[:-keep]:
            old.unlink(missing_ok=True)
    return target


def _debug_delay(step: int) -> float:
    value = os.environ.get(SLOW_SAVE_ENV, "").strip()
    if not value:
        return 0.0
    when, _, seconds = value.rpartition("=")
    if when and int(when) != step:
        return 0.0
    return float(seconds)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training state, loaded with ``weights_only=True``; CheckpointError naming the file otherwise."""
    path = Path(path)
    state = safe_torch_load(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a spadekit training checkpoint (release models go to --init-from)")
    if int(state.get("version", 0)) > VERSION:
        raise CheckpointError(f"{path}: written by a newer spadekit (training-state version {state['version']})")
    return state


TRAIN_DEFAULTS = dataclasses.asdict(TrainConfig())


def check_resumable(state: dict[str, Any], config: dict[str, Any], steps_per_epoch: int, source: Path | str) -> None:
    """Raise a CheckpointError naming ``source`` unless the run that wrote ``state`` can be continued
    with ``config`` (a :meth:`Config.to_dict`): same model section, global batch, accumulation,
    seed and trained parameters (``train.trainable``: the optimiser holds exactly those), and the
    same number of steps per epoch (the same dataset size). Called before the run directory is
    touched, so a refused resume leaves its record (``config.json``) as it was.

    A model or checked train option that the checkpoint does not name was added to spadekit after it
    was written; the run that wrote it had that option's default, so it only matters when this run
    changes it."""
    saved = state.get("config", {})
    checked = [("model", None), ("train", "batch_size"), ("train", "grad_accum"), ("train", "seed"), ("train", "trainable")]
    for section, key in checked:
        if key is None:
            theirs = {**dataclasses.asdict(ModelConfig()), **saved.get(section, {})}
        else:
            theirs = saved.get(section, {}).get(key, TRAIN_DEFAULTS[key])
        ours = config[section] if key is None else config[section][key]
        if theirs != ours:
            if key is None:
                diff = [f"model.{k}={theirs.get(k)!r} (now {v!r})" for k, v in ours.items() if theirs.get(k) != v]
                what = ", ".join(diff[:3]) or "model section"
            else:
                what = f"{section}.{key}={theirs!r} (now {ours!r})"
            raise CheckpointError(f"{source}: written by a run with {what}; resume with the same options or use a new --out")
    if int(state.get("steps_per_epoch", -1)) != steps_per_epoch:
        raise CheckpointError(
            f"{source}: the run had {state.get('steps_per_epoch')} steps per epoch, now "
            f"{steps_per_epoch} (the dataset changed size); use a new --out"
        )


def latest_checkpoint(run_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint of the run that loads, or None when the run has none.

    An unreadable newest file (a damaged disk; atomic writes rule out half-written ones) is skipped
    with a warning in favour of the one before it.
    """
    candidates = list_checkpoints(run_dir)
    problems = []
    for _, path in reversed(candidates):
        try:
            return path, load_checkpoint(path)
        except CheckpointError as exc:
            problems.append(str(exc))
            warnings.warn(f"skipping unreadable checkpoint: {exc}", stacklevel=2)
    if problems:
        raise CheckpointError(f"{checkpoint_dir(run_dir)}: no readable checkpoint ({problems[0]})")
    return None


# ----------------------------------------------------------------------------- RNG states


def capture_rng(device: torch.device) -> dict[str, Any]:
    """torch (CPU and the CUDA device), NumPy and ``random`` states as tensors and plain numbers."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    """Undo :func:`capture_rng`."""
    torch.set_rng_state(state["torch"].cpu())
    numpy = state["numpy"]
    np.random.set_state(
        ("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"], numpy["cached"])
    )
    python = state["python"]
    random.setstate((python["version"], tuple(int(v) for v in python["internal"].tolist()), python["gauss_next"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
