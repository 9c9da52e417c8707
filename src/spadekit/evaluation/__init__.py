"""Evaluation metrics of the paper: FID, mIoU / pixel accuracy with pretrained segmenters, and
LPIPS diversity, plus the pinned protocol printed with every number.

Feature extractors and segmenters are ``nn.Module``s taking images ``(N, 3, H, W)`` in [-1, 1];
metrics are accumulators with ``update()`` / ``compute()``.
"""

from spadekit.evaluation.diversity import Diversity, LPIPSDistance, find_lpips_backbone, mean_pairwise_distance
from spadekit.evaluation.evaluate import METRICS, Evaluators, evaluate, format_report, synthesize_and_score
from spadekit.evaluation.fid import (
    FID,
    FeatureStatistics,
    GaussianStats,
    InceptionV3Features,
    cached_statistics,
    compute_statistics,
    find_inception_weights,
    frechet_distance,
    statistics_key,
    tf1_bilinear_resize,
)
from spadekit.evaluation.protocol import evaluation_protocol, format_protocol
from spadekit.evaluation.segmentation import (
    IGNORE_INDEX,
    LABEL_MAPPINGS,
    ConfusionMatrix,
    ade20k_label_to_class,
    cityscapes_label_to_train_id,
    coco_stuff_label_to_class,
    scores_from_confusion,
)
from spadekit.evaluation.segmenters import (
    DATASET_SEGMENTERS,
    Segmenter,
    SegmenterSpec,
    available_segmenters,
    build_segmenter,
    find_segmenter_weights,
    load_segmenter,
    register_segmenter,
)
from spadekit.evaluation.toy_segmenter import (
    ToyFeatures,
    ToySegmenter,
    ToySegNet,
    load_toy_segmenter,
    save_toy_segmenter,
    train_toy_segmenter,
)

__all__ = [
    "DATASET_SEGMENTERS", "FID", "IGNORE_INDEX", "LABEL_MAPPINGS", "ConfusionMatrix", "Diversity",
    "FeatureStatistics", "GaussianStats", "InceptionV3Features", "LPIPSDistance", "Segmenter", "SegmenterSpec",
    "ade20k_label_to_class", "available_segmenters", "build_segmenter", "cached_statistics",
    "cityscapes_label_to_train_id", "coco_stuff_label_to_class", "compute_statistics", "evaluation_protocol",
    "find_inception_weights", "find_lpips_backbone", "find_segmenter_weights", "format_protocol",
    "frechet_distance", "load_segmenter", "mean_pairwise_distance", "register_segmenter",
    "scores_from_confusion", "statistics_key", "tf1_bilinear_resize",
    # end-to-end evaluation and the toy protocol
    "METRICS", "Evaluators", "ToyFeatures", "ToySegNet", "ToySegmenter", "evaluate", "format_report",
    "load_toy_segmenter", "save_toy_segmenter", "synthesize_and_score", "train_toy_segmenter",
]
