"""Paper segmenters: architectures with the released files' key layouts, loading, preprocessing
and the messages when weights are missing or wrong. No real weights are needed."""

from __future__ import annotations

import pytest
import torch

from spadekit.errors import CheckpointError, ConfigError, MissingWeightsError
from spadekit.evaluation import segmenters
from spadekit.evaluation.segmenters import (
    DeepLabV2MSC,
    DRNSeg,
    SegmenterSpec,
    UperNet,
    available_segmenters,
    bilinear_upsampling_kernel,
    build_segmenter,
    find_segmenter_weights,
    load_segmenter,
    load_state_dict_checked,
)

# Key → shape facts of the released weight files (read from the projects' model definitions).
EXPECTED_KEYS = {
    "drn-d-105": {
        "base.0.0.weight": (16, 3, 7, 7),
        "base.1.0.weight": (16, 16, 3, 3),
        "base.2.0.weight": (32, 16, 3, 3),
        "base.3.0.downsample.0.weight": (256, 32, 1, 1),
        "base.5.22.conv2.weight": (256, 256, 3, 3),
        "base.6.0.conv3.weight": (2048, 512, 1, 1),
        "base.7.0.weight": (512, 2048, 3, 3),
        "base.8.1.running_var": (512,),
        "seg.weight": (19, 512, 1, 1),
        "up.weight": (19, 1, 16, 16),
    },
    "deeplabv2-resnet101": {
        "base.layer1.conv1.conv.weight": (64, 3, 7, 7),
        "base.layer2.block1.reduce.conv.weight": (64, 64, 1, 1),
        "base.layer2.block1.shortcut.conv.weight": (256, 64, 1, 1),
        "base.layer4.block23.conv3x3.conv.weight": (256, 256, 3, 3),
        "base.layer5.block3.increase.bn.running_mean": (2048,),
        "base.aspp.c3.weight": (182, 2048, 3, 3),
        "base.aspp.c0.bias": (182,),
    },
    "upernet-101": {
        "encoder.conv1.weight": (64, 3, 3, 3),
        "encoder.conv3.weight": (128, 64, 3, 3),
        "encoder.layer1.0.downsample.0.weight": (256, 128, 1, 1),
        "encoder.layer3.22.conv2.weight": (256, 256, 3, 3),
        "encoder.layer4.2.conv3.weight": (2048, 512, 1, 1),
        "decoder.ppm_conv.3.0.weight": (512, 2048, 1, 1),
        "decoder.ppm_last_conv.0.weight": (512, 4096, 3, 3),
        "decoder.fpn_in.0.0.weight": (512, 256, 1, 1),
        "decoder.fpn_out.2.0.0.weight": (512, 512, 3, 3),
        "decoder.conv_last.0.0.weight": (512, 2048, 3, 3),
        "decoder.conv_last.1.weight": (150, 512, 1, 1),
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED_KEYS))
def test_full_architecture_keys_load_and_forward(name):
    segmenter = build_segmenter(name)
    state = segmenter.net.state_dict()
    for key, shape in EXPECTED_KEYS[name].items():
        assert tuple(state[key].shape) == shape, key

    # A state dict with the model's own keys and shapes (new values) loads and is used.
    fake = {k: v * 0.5 if v.is_floating_point() else v for k, v in state.items()}
    if name == "upernet-101":
        load_state_dict_checked(segmenter.net.encoder, {k[8:]: v for k, v in fake.items() if k.startswith("encoder.")},
                                "encoder_epoch_50.pth", name)
        load_state_dict_checked(segmenter.net.decoder, {k[8:]: v for k, v in fake.items() if k.startswith("decoder.")},
                                "decoder_epoch_50.pth", name)
    else:
        load_state_dict_checked(segmenter.net, {f"module.{k}": v for k, v in fake.items()}, "weights.pth", name)
    key = next(iter(EXPECTED_KEYS[name]))
    assert torch.equal(segmenter.net.state_dict()[key], fake[key])

    logits = segmenter(torch.rand(1, 3, 24, 40) * 2 - 1)
    assert logits.shape == (1, segmenter.num_classes, 24, 40)
    assert torch.isfinite(logits).all()


def test_registry_lists_the_three_paper_segmenters():
    assert {"drn-d-105", "upernet-101", "deeplabv2-resnet101"} <= set(available_segmenters())
    with pytest.raises(ConfigError, match="nope"):
        build_segmenter("nope")


def test_bilinear_kernel_values_and_exact_upsampling():
    # size 4: factor 2, centre 0.75 → ramp 1 - |i/2 - 0.75| = (0.25, 0.75, 0.75, 0.25).
    kernel = bilinear_upsampling_kernel(1, 4)[0, 0]
    ramp = torch.tensor([0.25, 0.75, 0.75, 0.25])
    torch.testing.assert_close(kernel, ramp[:, None] * ramp[None, :])
    net = DRNSeg(2, layers=(1,) * 8, channels=(4, 4, 4, 4, 4, 4, 8, 8))
    const = torch.full((1, 2, 6, 6), 3.0)
    up = net.up(const)
    assert up.shape == (1, 2, 48, 48)
    torch.testing.assert_close(up[..., 8:-8, 8:-8], torch.full_like(up[..., 8:-8, 8:-8], 3.0))


def test_input_normalisation():
    coco = build_segmenter("deeplabv2-resnet101")
    x = coco.normalize(torch.full((1, 3, 2, 2), -1.0))  # black
    # BGR order, 0..255 scale, mean (B, G, R) = (104.008, 116.669, 122.675) subtracted.
    assert x[0, :, 0, 0].tolist() == pytest.approx([-104.008, -116.669, -122.675])
    drn = build_segmenter("drn-d-105")
    y = drn.normalize(torch.zeros(1, 3, 1, 1))  # grey 0.5
    assert y[0, 0, 0, 0].item() == pytest.approx((0.5 - 0.29010095242892997) / 0.1829540508368939)
    drn.train()
    assert not drn.training


def _tiny_specs(monkeypatch) -> dict[str, SegmenterSpec]:
    tiny = {
        "tiny-drn": (lambda: DRNSeg(3, layers=(1,) * 8, channels=(4, 4, 4, 4, 4, 4, 8, 8)), ("drn-d-105_ms_cityscapes.pth",)),
        "tiny-deeplab": (lambda: DeepLabV2MSC(3, blocks=(1, 1, 1, 1), width=4), ("deeplab.pth",)),
        "tiny-upernet": (lambda: UperNet(3, blocks=(1, 1, 1, 1), width=4, fpn_dim=8), ("encoder_epoch_*.pth", "decoder_epoch_*.pth")),
    }
    specs = {}
    for name, (build, files) in tiny.items():
        spec = SegmenterSpec(name=name, dataset="toy", num_classes=3, files=files, source="the test", build=build,
                             mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), folder="tiny" if "upernet" in name else "")
        monkeypatch.setitem(segmenters._SEGMENTERS, name, spec)
        specs[name] = spec
    return specs


def test_load_from_files_reproduces_the_saved_model(monkeypatch, tmp_path):
    _tiny_specs(monkeypatch)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    for name in ("tiny-drn", "tiny-deeplab"):
        original = build_segmenter(name)
        path = tmp_path / f"{name}.pth"
        torch.save({"state_dict": original.net.state_dict()}, path)
        loaded = load_segmenter(name, path)
        torch.testing.assert_close(loaded(images), original(images))
        assert loaded.predict(images).shape == (2, 32, 32)

    original = build_segmenter("tiny-upernet")
    folder = tmp_path / "upernet"
    folder.mkdir()
    torch.save(original.net.encoder.state_dict(), folder / "encoder_epoch_50.pth")
    torch.save(original.net.decoder.state_dict(), folder / "decoder_epoch_50.pth")
    torch.save({}, folder / "encoder_epoch_7.pth")  # an older epoch: the latest is taken
    for given in (folder, folder / "decoder_epoch_50.pth"):
        assert [p.name for p in find_segmenter_weights("tiny-upernet", given)] == ["encoder_epoch_50.pth", "decoder_epoch_50.pth"]
    torch.testing.assert_close(load_segmenter("tiny-upernet", folder)(images), original(images))


def test_default_location_is_the_torch_hub_cache(monkeypatch, tmp_path):
    _tiny_specs(monkeypatch)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    original = build_segmenter("tiny-drn")
    torch.save(original.net.state_dict(), tmp_path / "checkpoints" / "drn-d-105_ms_cityscapes.pth")
    assert find_segmenter_weights("tiny-drn") == [tmp_path / "checkpoints" / "drn-d-105_ms_cityscapes.pth"]


def test_missing_weights_messages(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(MissingWeightsError, match="drn-d-105_ms_cityscapes.pth") as info:
        load_segmenter("drn-d-105")
    assert str(tmp_path / "checkpoints") in str(info.value)
    with pytest.raises(MissingWeightsError, match="deeplabv2_resnet101_msc-cocostuff164k-100000.pth"):
        load_segmenter("deeplabv2-resnet101", tmp_path / "elsewhere.pth")
    with pytest.raises(MissingWeightsError, match=r"encoder_epoch_\*\.pth and decoder_epoch_\*\.pth") as info:
        load_segmenter("upernet-101")
    assert "baseline-resnet101-upernet" in str(info.value)


def test_wrong_checkpoints_name_the_file(monkeypatch, tmp_path):
    _tiny_specs(monkeypatch)
    other = tmp_path / "other.pth"
    torch.save(build_segmenter("tiny-deeplab").net.state_dict(), other)
    with pytest.raises(CheckpointError, match="other.pth.*missing"):
        load_segmenter("tiny-drn", other)

    net = DRNSeg(5, layers=(1,) * 8, channels=(4, 4, 4, 4, 4, 4, 8, 8))  # 5 classes, not 3
    classes = tmp_path / "classes.pth"
    torch.save(net.state_dict(), classes)
    with pytest.raises(CheckpointError, match="classes.pth.*seg.weight"):
        load_segmenter("tiny-drn", classes)

    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_segmenter("tiny-drn", junk)


def test_drn_file_without_up_weight_keeps_bilinear_kernel(monkeypatch, tmp_path):
    spec = _tiny_specs(monkeypatch)["tiny-drn"]
    monkeypatch.setitem(segmenters._SEGMENTERS, "tiny-drn",
                        SegmenterSpec(**{**spec.__dict__, "optional_keys": ("up.weight",)}))
    state = build_segmenter("tiny-drn").net.state_dict()
    del state["up.weight"]
    path = tmp_path / "no_up.pth"
    torch.save(state, path)
    loaded = load_segmenter("tiny-drn", path)
    torch.testing.assert_close(loaded.net.up.weight, bilinear_upsampling_kernel(3, 16))
