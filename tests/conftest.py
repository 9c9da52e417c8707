"""Shared test fixtures.

Every fixture file lives under one root: ``tests/assets/`` in the repository, or ``$SPADEKIT_FIXTURES``
when that is set (same layout: ``official_parity/``, ``peers/<method>/<case>/``, ``data/``). A missing
fixture is a failure, never a skip: the proofs travel with the code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("SPADEKIT_FIXTURES") or REPO_ROOT / "tests" / "assets")


def fixture_path(*parts: str) -> Path:
    """A path under the fixture root; fails the test (with the path) when it is not there."""
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"{path} not found: fixtures ship in tests/assets/ (or set SPADEKIT_FIXTURES to a folder with the same layout)")
    return path


def fixture_cases(*parts: str) -> list[Path]:
    """Every case folder (one holding an ``opt.json``) under ``FIXTURES/parts``, sorted by name.

    Used at collection time to parametrize data-driven parity tests (ids = folder names)."""
    root = FIXTURES.joinpath(*parts)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "opt.json").is_file())


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)
    # One thread: on small shared CI machines extra OpenMP threads mostly spin (2-3x slower).
    torch.set_num_threads(1)


@pytest.fixture
def coco_samples() -> Path:
    return fixture_path("data", "coco_stuff_samples")


@pytest.fixture
def parity_dir() -> Path:
    return fixture_path("official_parity")
