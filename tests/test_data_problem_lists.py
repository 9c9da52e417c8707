"""A dataset with several bad files names them together (up to a limit) and points to
``spadekit data check``, which lists every problem in one pass; files read while training point there too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spadekit.cli import main
from spadekit.config import load_config
from spadekit.data import open_dataset
from spadekit.data.dataset import MAX_LISTED
from spadekit.errors import DataError


def folder_dataset(root: Path, pairs: int, unpaired: int, bad_ids: tuple[int, ...] = ()) -> Path:
    (root / "labels").mkdir(parents=True)
    (root / "images").mkdir()
    for i in range(pairs + unpaired):
        ids = np.full((16, 16), 9 if i in bad_ids else 1, np.uint8)
        Image.fromarray(ids).save(root / "labels" / f"{i:03d}.png")
        if i < pairs:
            Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / "images" / f"{i:03d}.png")
    return root


def config():
    return load_config("custom", ["model.label_nc=4", "model.width=32", "data.crop_size=16", "data.load_size=16"])


def test_every_unpaired_file_is_named_at_once_with_the_check_command(tmp_path):
    root = folder_dataset(tmp_path / "d", pairs=2, unpaired=3)
    c = config()
    with pytest.raises(DataError) as caught:
        open_dataset(root, preset="custom", data=c.data, model=c.model)
    message = str(caught.value)
    assert message.startswith("3 problems in the dataset")
    for i in (2, 3, 4):
        assert f"{i:03d}.png: label map has no matching image" in message
    assert f"spadekit data check {root} --preset custom" in message


def test_the_list_stops_at_the_limit_and_counts_the_rest(tmp_path):
    root = folder_dataset(tmp_path / "d", pairs=1, unpaired=MAX_LISTED + 4)
    c = config()
    with pytest.raises(DataError) as caught:
        open_dataset(root, preset="custom", data=c.data, model=c.model)
    message = str(caught.value)
    assert message.count("has no matching image") == MAX_LISTED and "... and 4 more" in message


def test_a_bad_file_met_while_reading_points_to_data_check_which_finds_them_all(tmp_path, capsys):
    root = folder_dataset(tmp_path / "d", pairs=4, unpaired=0, bad_ids=(1, 3))
    c = config()
    dataset = open_dataset(root, preset="custom", split="train", train=False, data=c.data, model=c.model)
    with pytest.raises(DataError) as caught:
        dataset[1]
    assert "001.png: label ids 9 are out of range" in str(caught.value)
    assert f"spadekit data check {root} --preset custom" in str(caught.value)
    # ... and the command it names reports both bad label maps in one run.
    assert main(["data", "check", str(root), "--set", "model.label_nc=4", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "001.png" in out and "003.png" in out
