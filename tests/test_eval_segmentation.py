"""mIoU / pixel accuracy from the confusion matrix, and dataset label-id mappings."""

from __future__ import annotations

import math

import pytest
import torch

from spadekit.errors import DataError
from spadekit.evaluation.segmentation import (
    CITYSCAPES_TRAIN_CLASSES,
    ConfusionMatrix,
    ade20k_label_to_class,
    cityscapes_label_to_train_id,
    coco_stuff_label_to_class,
    scores_from_confusion,
)

TARGET = torch.tensor([[0, 0, 1], [1, 2, 2]])
PRED = torch.tensor([[0, 1, 1], [1, 2, 0]])
# By hand: TP = (1, 2, 1); ground-truth counts (2, 2, 2); predicted counts (2, 3, 1);
# unions (3, 3, 2) → IoU (1/3, 2/3, 1/2), mIoU 0.5; 4 of 6 pixels right.


def test_perfect_segmentation():
    labels = torch.randint(0, 5, (2, 16, 16))
    metric = ConfusionMatrix(5)
    metric.update(labels, labels)
    scores = metric.compute()
    assert scores["miou"] == 1.0
    assert scores["pixel_accuracy"] == 1.0


def test_hand_computed_case():
    metric = ConfusionMatrix(3)
    metric.update(PRED, TARGET)
    scores = metric.compute()
    assert metric.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert scores["per_class_iou"] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert scores["miou"] == pytest.approx(0.5)
    assert scores["pixel_accuracy"] == pytest.approx(4 / 6)
    assert scores["mean_accuracy"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)


def test_ignore_index_pixels_count_nowhere():
    target = torch.cat([TARGET, torch.full((1, 3), 255)])
    pred = torch.cat([PRED, torch.tensor([[2, 0, 1]])])  # wrong everywhere, but ignored
    metric = ConfusionMatrix(3)
    metric.update(pred, target)
    assert metric.compute()["miou"] == pytest.approx(0.5)
    assert metric.compute()["pixels"] == 6


def test_other_ignore_index():
    target = TARGET.clone()
    target[0, 0] = -1
    metric = ConfusionMatrix(3, ignore_index=-1)
    metric.update(PRED, target)
    assert metric.compute()["pixels"] == 5


def test_absent_class_is_excluded_from_the_mean():
    metric = ConfusionMatrix(4)  # class 3 never occurs in target or prediction
    metric.update(PRED, TARGET)
    scores = metric.compute()
    assert scores["miou"] == pytest.approx(0.5)
    assert math.isnan(scores["per_class_iou"][3])
    assert scores["present"] == [True, True, True, False]


def test_class_only_predicted_counts_under_union_rule_not_ground_truth_rule():
    target = torch.zeros(1, 4, dtype=torch.long)
    pred = torch.tensor([[0, 0, 1, 1]])
    union = ConfusionMatrix(2)
    union.update(pred, target)
    assert union.compute()["miou"] == pytest.approx((0.5 + 0.0) / 2)
    gt_rule = ConfusionMatrix(2, present="ground_truth")
    gt_rule.update(pred, target)
    assert gt_rule.compute()["miou"] == pytest.approx(0.5)


def test_accumulating_batches_equals_one_shot():
    target = torch.randint(0, 6, (4, 10, 10))
    pred = torch.randint(0, 6, (4, 10, 10))
    whole, parts = ConfusionMatrix(6), ConfusionMatrix(6)
    whole.update(pred, target)
    for p, t in zip(pred, target):
        parts.update(p, t)
    assert torch.equal(whole.matrix, parts.matrix)
    assert scores_from_confusion(whole.matrix.numpy())["miou"] == pytest.approx(parts.compute()["miou"])


def test_bad_inputs():
    metric = ConfusionMatrix(3)
    with pytest.raises(DataError, match="33"):
        metric.update(torch.zeros(1, 2, dtype=torch.long), torch.tensor([[0, 33]]))
    with pytest.raises(ValueError):
        metric.update(torch.tensor([[0, 3]]), torch.tensor([[0, 1]]))
    with pytest.raises(ValueError):
        metric.update(torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError):
        metric.update(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))


def test_cityscapes_label_ids_to_train_ids():
    ids = torch.tensor([7, 8, 11, 26, 33, 0, 1, 6, 9, 10, 14, 15, 16, 18, 29, 30, 34, 255, -1])
    expected = [0, 1, 2, 13, 18] + [255] * 14  # road, sidewalk, building, car, bicycle; the rest void
    assert cityscapes_label_to_train_id(ids).tolist() == expected
    all_ids = cityscapes_label_to_train_id(torch.arange(34))
    assert sorted(set(all_ids.tolist()) - {255}) == list(range(19))
    assert len(CITYSCAPES_TRAIN_CLASSES) == 19
    # Works on (N, H, W) maps of uint8, as read from the PNGs.
    assert cityscapes_label_to_train_id(torch.full((1, 2, 2), 24, dtype=torch.uint8)).unique().tolist() == [11]


def test_ade20k_and_coco_mappings():
    assert ade20k_label_to_class(torch.tensor([0, 1, 150, 151])).tolist() == [255, 0, 149, 255]
    assert coco_stuff_label_to_class(torch.tensor([0, 181, 182, 255])).tolist() == [0, 181, 255, 255]
