"""Segmentation scores (mIoU, pixel accuracy) from a confusion matrix, and the mappings from each
dataset's stored label ids to the classes its paper segmenter predicts.

Rules (the same as the segmenters' own evaluation code):
- A pixel whose ground truth is ``ignore_index`` (255 by default) counts nowhere.
- IoU of class c = TP / (TP + FP + FN) over all accumulated pixels.
- mIoU = mean IoU over the classes that are *present*: by default a class whose union
  (TP + FP + FN) is zero is excluded, because its IoU is undefined (0/0), not 0 (DRN's and
  deeplab-pytorch's ``nanmean``). ``present="ground_truth"`` instead keeps only classes that occur
  in the ground truth (deeplab-pytorch's later rule; a class only ever predicted then does not
  lower the mean).
- Pixel accuracy = correctly labelled pixels / pixels not ignored.
"""

from __future__ import annotations

import numpy as np
import torch

from spadekit.errors import DataError

IGNORE_INDEX = 255


class ConfusionMatrix:
    """Accumulates a ``(C, C)`` int64 confusion matrix: rows = ground truth, columns = prediction.

    ``update(pred, target)`` with integer tensors of the same shape (any shape, e.g. ``(N, H, W)``);
    pixels whose target is ``ignore_index`` are skipped. ``compute()`` returns a dict with
    ``miou``, ``pixel_accuracy``, ``mean_accuracy``, ``per_class_iou`` (NaN where undefined) and
    ``present`` (bool per class). Scores are fractions in [0, 1].
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, present: str = "union"):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if present not in ("union", "ground_truth"):
            raise ValueError(f"present must be 'union' or 'ground_truth', got {present!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.present = present
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def reset(self) -> None:
        self.matrix.zero_()

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
        if pred.is_floating_point() or target.is_floating_point():
            raise ValueError("prediction and target must be integer class maps (use argmax over logits first)")
        c = self.num_classes
        pred = pred.reshape(-1).long().cpu()
        target = target.reshape(-1).long().cpu()
        keep = target != self.ignore_index
        pred, target = pred[keep], target[keep]
        bad = (target < 0) | (target >= c)
        if bad.any():
            value = int(target[bad][0])
            raise DataError(
                f"ground-truth label {value} is outside [0, {c}) and is not the ignore index "
                f"{self.ignore_index}: map the dataset's ids to the segmenter's classes first "
                "(e.g. cityscapes_label_to_train_id)"
            )
        bad = (pred < 0) | (pred >= c)
        if bad.any():
            raise ValueError(f"predicted class {int(pred[bad][0])} is outside [0, {c})")
        self.matrix += torch.bincount(target * c + pred, minlength=c * c).reshape(c, c)

    def compute(self) -> dict:
        return scores_from_confusion(self.matrix, present=self.present)


def scores_from_confusion(matrix: torch.Tensor | np.ndarray, present: str = "union") -> dict:
    """mIoU, pixel accuracy, mean class accuracy and per-class IoU from a ``(C, C)`` confusion
    matrix (rows ground truth, columns prediction). See the module docstring for the rules."""
    m = torch.as_tensor(matrix).to(torch.float64)
    tp = m.diagonal()
    gt = m.sum(dim=1)
    predicted = m.sum(dim=0)
    union = gt + predicted - tp
    total = m.sum()
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
    mask = union > 0 if present == "union" else gt > 0
    class_acc = torch.where(gt > 0, tp / gt.clamp(min=1), torch.full_like(tp, float("nan")))
    has_gt = gt > 0
    return {
        "miou": float(iou[mask].mean()) if mask.any() else float("nan"),
        "pixel_accuracy": float(tp.sum() / total) if total > 0 else float("nan"),
        "mean_accuracy": float(class_acc[has_gt].mean()) if has_gt.any() else float("nan"),
        "per_class_iou": iou.tolist(),
        "present": mask.tolist(),
        "pixels": int(total),
    }


# ----------------------------------------------------------------------------- label mappings

# Cityscapes labelId → trainId, from the dataset's official label table (cityscapesScripts
# labels.py). 19 evaluated classes; every other id (void, flat/parking, rail track, guard rail,
# bridge, tunnel, polegroup, caravan, trailer, license plate) is ignored.
CITYSCAPES_TRAIN_IDS: dict[int, int] = {
    7: 0,  # road
    8: 1,  # sidewalk
    11: 2,  # building
    12: 3,  # wall
    13: 4,  # fence
    17: 5,  # pole
    19: 6,  # traffic light
    20: 7,  # traffic sign
    21: 8,  # vegetation
    22: 9,  # terrain
    23: 10,  # sky
    24: 11,  # person
    25: 12,  # rider
    26: 13,  # car
    27: 14,  # truck
    28: 15,  # bus
    31: 16,  # train
    32: 17,  # motorcycle
    33: 18,  # bicycle
}
CITYSCAPES_TRAIN_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)


def _lookup_table(mapping: dict[int, int], size: int = 256, default: int = IGNORE_INDEX) -> torch.Tensor:
    table = torch.full((size,), default, dtype=torch.int64)
    for src, dst in mapping.items():
        table[src] = dst
    return table


_CITYSCAPES_TABLE = _lookup_table(CITYSCAPES_TRAIN_IDS)


def cityscapes_label_to_train_id(labels: torch.Tensor) -> torch.Tensor:
    """Cityscapes ``*_gtFine_labelIds.png`` values (0..33) → trainIds 0..18, 255 elsewhere.

    Any integer tensor shape; values outside 0..255 map to 255 as well.
    """
    labels = labels.long()
    inside = (labels >= 0) & (labels < 256)
    table = _CITYSCAPES_TABLE.to(labels.device)
    return torch.where(inside, table[labels.clamp(0, 255)], torch.full_like(labels, IGNORE_INDEX))


def ade20k_label_to_class(labels: torch.Tensor) -> torch.Tensor:
    """ADE20K SceneParsing label PNG values (0 = unlabelled, 1..150 classes) → 0..149, 255 for
    unlabelled (the CSAIL UperNet predicts the 150 classes, 0-based)."""
    labels = labels.long()
    valid = (labels >= 1) & (labels <= 150)
    return torch.where(valid, labels - 1, torch.full_like(labels, IGNORE_INDEX))


def coco_stuff_label_to_class(labels: torch.Tensor) -> torch.Tensor:
    """COCO-Stuff ``stuffthingmaps`` PNG values (0..181, 255 unlabelled) are already the
    DeepLabV2 model's 182 classes: identity, with anything else set to 255."""
    labels = labels.long()
    valid = (labels >= 0) & (labels < 182)
    return torch.where(valid, labels, torch.full_like(labels, IGNORE_INDEX))


LABEL_MAPPINGS = {
    "cityscapes": cityscapes_label_to_train_id,
    "ade20k": ade20k_label_to_class,
    "ade20k-outdoor": ade20k_label_to_class,
    "coco": coco_stuff_label_to_class,
}
