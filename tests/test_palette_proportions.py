"""Checking user palettes: the errors and the renormalisation notice the CLI and the API share."""

from __future__ import annotations

import pytest
import torch

from spadekit.errors import ConfigError
from spadekit.methods.palette.proportions import check_palette, parse_proportions

CLASSES = ["sky", "road", "tree", "car", "Building"]


def test_text_palette_near_one_is_renormalised_with_a_notice():
    palette = check_palette("sky=0.4, road=0.3, tree=0.1, car=0.15", CLASSES)
    expected = torch.tensor([0.4, 0.3, 0.1, 0.15, 0.0]) / 0.95
    torch.testing.assert_close(palette.proportions, expected)
    assert palette.notice is not None and "0.95" in palette.notice


def test_exact_palette_has_no_notice():
    palette = check_palette({"sky": 0.5, "road": 0.25, "Building": 0.25}, CLASSES)
    assert palette.notice is None
    torch.testing.assert_close(palette.proportions, torch.tensor([0.5, 0.25, 0.0, 0.0, 0.25]))


def test_percentages_and_case_insensitive_names():
    palette = check_palette("SKY=60%, building=40%", CLASSES)
    torch.testing.assert_close(palette.proportions, torch.tensor([0.6, 0.0, 0.0, 0.0, 0.4]))


def test_unknown_class_names_are_named():
    with pytest.raises(ConfigError, match=r"unknown class 'skyy'.*did you mean 'sky'"):
        check_palette("skyy=0.5, road=0.5", CLASSES)
    with pytest.raises(ConfigError, match="unknown class 'boat'"):
        check_palette({"boat": 1.0}, CLASSES)


def test_negative_values_are_refused():
    with pytest.raises(ConfigError, match=r"negative values \(road=-0.1\)"):
        check_palette("sky=1.1, road=-0.1", CLASSES)


def test_sums_far_from_one_are_refused():
    with pytest.raises(ConfigError, match="sum to 0.3"):
        check_palette("sky=0.2, road=0.1", CLASSES)
    with pytest.raises(ConfigError, match="sum to 2"):
        check_palette([0.5, 0.5, 0.5, 0.5, 0.0], CLASSES)
    with pytest.raises(ConfigError, match="sum to 0"):
        check_palette([0, 0, 0, 0, 0], CLASSES)


def test_vectors_must_match_the_classes_and_be_finite():
    with pytest.raises(ConfigError, match="3 values for 5 classes"):
        check_palette(torch.tensor([0.2, 0.3, 0.5]), CLASSES)
    with pytest.raises(ConfigError, match="finite"):
        check_palette([float("nan"), 0.5, 0.5, 0, 0], CLASSES)
    palette = check_palette(torch.tensor([0.1, 0.2, 0.3, 0.2, 0.2]), CLASSES)
    assert palette.notice is None


def test_malformed_text_is_refused():
    for text, message in [("sky", "NAME=VALUE"), ("sky=abc", "not a number"), ("sky=0.5,sky=0.5", "twice"), (" , ", "nothing given")]:
        with pytest.raises(ConfigError, match=message):
            parse_proportions(text)
