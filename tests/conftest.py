"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
# CI and developers have the project's shared folder beside the checkout; a user's clone does not.
SHARED = Path(os.environ.get("SPADEKIT_SHARED", REPO_ROOT.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with the reason when it is not there."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found: the project's shared fixtures are only present in CI and dev checkouts")
    return path


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)
    # One thread: on small shared CI machines extra OpenMP threads mostly spin (2-3x slower).
    torch.set_num_threads(1)


@pytest.fixture
def coco_samples() -> Path:
    return shared_path("data", "coco_stuff_samples")


@pytest.fixture
def parity_dir() -> Path:
    return shared_path("fixtures", "official_parity")
