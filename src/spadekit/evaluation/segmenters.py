"""The paper's pretrained segmenters for mIoU / pixel accuracy, rebuilt with the state-dict key
layouts of their released weight files, and a registry to load them by name.

| name | dataset | classes | weight file(s) | from |
|---|---|---|---|---|
| ``drn-d-105`` | Cityscapes (trainIds) | 19 | ``drn-d-105_ms_cityscapes.pth`` | fyu/drn |
| ``upernet-101`` | ADE20K | 150 | ``encoder_epoch_*.pth`` + ``decoder_epoch_*.pth`` (``baseline-resnet101-upernet``) | CSAILVision/semantic-segmentation-pytorch |
| ``deeplabv2-resnet101`` | COCO-Stuff | 182 | ``deeplabv2_resnet101_msc-cocostuff164k-100000.pth`` | kazuto1011/deeplab-pytorch |

Every :class:`Segmenter` takes images ``(N, 3, H, W)`` in ``[-1, 1]`` (RGB), applies the
normalisation its network was trained with, and returns logits ``(N, C, H, W)`` at the input
size (bilinear upsampling of the network's output). The architectures are written here from the
facts of those projects (layer shapes, names, strides, dilations); no code is taken from them.
Weights are never downloaded: a missing file is a MissingWeightsError that says what to get.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import Bottleneck

from spadekit.errors import CheckpointError, ConfigError, MissingWeightsError
from spadekit.release import load_state_into

# ----------------------------------------------------------------------------- DeepLabV2 (COCO-Stuff)


class _ConvBnReLU(nn.Sequential):
    """conv (no bias) → BN → optional ReLU, named ``conv``/``bn`` as in deeplab-pytorch's files."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int, dilation: int, relu: bool = True):
        super().__init__()
        self.add_module("conv", nn.Conv2d(cin, cout, kernel, stride, padding, dilation, bias=False))
        self.add_module("bn", nn.BatchNorm2d(cout, eps=1e-5))
        if relu:
            self.add_module("relu", nn.ReLU())


class _CaffeBottleneck(nn.Module):
    """MSRA (Caffe) ResNet bottleneck: the stride sits on the first 1×1 conv, not the 3×3."""

    def __init__(self, cin: int, cout: int, stride: int, dilation: int, downsample: bool):
        super().__init__()
        mid = cout // 4
        self.reduce = _ConvBnReLU(cin, mid, 1, stride, 0, 1)
        self.conv3x3 = _ConvBnReLU(mid, mid, 3, 1, dilation, dilation)
        self.increase = _ConvBnReLU(mid, cout, 1, 1, 0, 1, relu=False)
        self.shortcut = _ConvBnReLU(cin, cout, 1, stride, 0, 1, relu=False) if downsample else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.increase(self.conv3x3(self.reduce(x))) + self.shortcut(x))


def _caffe_res_layer(blocks: int, cin: int, cout: int, stride: int, dilation: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict(
        (f"block{i + 1}", _CaffeBottleneck(cin if i == 0 else cout, cout, stride if i == 0 else 1, dilation, i == 0))
        for i in range(blocks)
    ))


class _ASPP(nn.Module):
    """DeepLabV2 head: parallel dilated 3×3 convs straight to class logits, summed."""

    def __init__(self, cin: int, num_classes: int, rates: Sequence[int]):
        super().__init__()
        for i, rate in enumerate(rates):
            self.add_module(f"c{i}", nn.Conv2d(cin, num_classes, 3, 1, padding=rate, dilation=rate, bias=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(branch(x) for branch in self.children())


class DeepLabV2MSC(nn.Module):
    """DeepLabV2 (dilated ResNet-101 + ASPP, output stride 8) with multi-scale inputs.

    Input: BGR pixels minus the dataset mean (0..255 scale), ``(N, 3, H, W)``. Output: logits at
    1/8 of the input, the element-wise max over the input at scale 1 and ``scales`` (eval mode).
    Keys ``base.layer1.conv1.conv.weight``, ``base.layer2.block1.reduce.conv.weight``, ...,
    ``base.aspp.c0.weight`` match ``deeplabv2_resnet101_msc-cocostuff164k-100000.pth``.
    """

    def __init__(
        self,
        num_classes: int = 182,
        blocks: Sequence[int] = (3, 4, 23, 3),
        rates: Sequence[int] = (6, 12, 18, 24),
        width: int = 64,
        scales: Sequence[float] = (0.5, 0.75),
    ):
        super().__init__()
        ch = [width * 2**p for p in range(6)]
        stem = nn.Sequential(OrderedDict([
            ("conv1", _ConvBnReLU(3, ch[0], 7, 2, 3, 1)),
            ("pool", nn.MaxPool2d(3, 2, 1, ceil_mode=True)),  # ceil_mode: the Caffe pooling
        ]))
        self.base = nn.Sequential(OrderedDict([
            ("layer1", stem),
            ("layer2", _caffe_res_layer(blocks[0], ch[0], ch[2], 1, 1)),
            ("layer3", _caffe_res_layer(blocks[1], ch[2], ch[3], 2, 1)),
            ("layer4", _caffe_res_layer(blocks[2], ch[3], ch[4], 1, 2)),
            ("layer5", _caffe_res_layer(blocks[3], ch[4], ch[5], 1, 4)),
            ("aspp", _ASPP(ch[5], num_classes, rates)),
        ]))
        self.scales = tuple(scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.base(x)
        outputs = [logits]
        for scale in self.scales:
            small = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
            outputs.append(F.interpolate(self.base(small), size=logits.shape[-2:], mode="bilinear", align_corners=False))
        return torch.stack(outputs).amax(dim=0)


# ----------------------------------------------------------------------------- DRN-D-105 (Cityscapes)


def _conv_bn_relu_layers(cin: int, cout: int, count: int, stride: int = 1, dilation: int = 1, kernel: int = 3) -> nn.Sequential:
    modules: list[nn.Module] = []
    for i in range(count):
        pad = dilation * (kernel // 2)
        modules += [
            nn.Conv2d(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, pad, dilation, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*modules)


def _bottleneck_layer(inplanes: int, planes: int, blocks: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """A ResNet stage of torchvision bottlenecks (stride and dilation on the 3×3 conv, keys
    ``conv1/bn1/conv2/bn2/conv3/bn3/downsample.{0,1}``), every block at the same dilation."""
    out = planes * Bottleneck.expansion
    downsample = None
    if stride != 1 or inplanes != out:
        downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))
    layers = [Bottleneck(inplanes, planes, stride, downsample, dilation=dilation)]
    layers += [Bottleneck(out, planes, dilation=dilation) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def bilinear_upsampling_kernel(channels: int, size: int) -> torch.Tensor:
    """``(channels, 1, size, size)`` weights that make a depthwise transposed conv with stride
    ``size // 2`` an exact bilinear upsampler (the fixed ``up`` layer of DRN's segmentation net)."""
    factor = math.ceil(size / 2)
    centre = (2 * factor - 1 - factor % 2) / (2.0 * factor)
    ramp = 1 - torch.abs(torch.arange(size, dtype=torch.float64) / factor - centre)
    kernel = (ramp[:, None] * ramp[None, :]).float()
    return kernel.expand(channels, 1, size, size).clone()


class DRNSeg(nn.Module):
    """DRN-D-105 segmentation net: dilated residual network (output stride 8), 1×1 classifier,
    fixed bilinear ×8 transposed-conv upsampling.

    Input: RGB in [0, 1] normalised with the Cityscapes mean/std. Output: logits ``(N, C, 8h, 8w)``.
    Keys ``base.0.0.weight`` ... ``base.8.1.running_var``, ``seg.weight``, ``seg.bias``,
    ``up.weight`` match ``drn-d-105_ms_cityscapes.pth``.
    """

    def __init__(
        self,
        num_classes: int = 19,
        layers: Sequence[int] = (1, 1, 3, 4, 23, 3, 1, 1),
        channels: Sequence[int] = (16, 32, 64, 128, 256, 512, 512, 512),
    ):
        super().__init__()
        c = channels
        layer5_in = c[3] * Bottleneck.expansion
        layer6_in = c[4] * Bottleneck.expansion
        layer7_in = c[5] * Bottleneck.expansion
        self.base = nn.Sequential(
            _conv_bn_relu_layers(3, c[0], 1, kernel=7),  # layer0: 7×7, stride 1
            _conv_bn_relu_layers(c[0], c[0], layers[0]),  # layer1
            _conv_bn_relu_layers(c[0], c[1], layers[1], stride=2),  # layer2
            _bottleneck_layer(c[1], c[2], layers[2], stride=2),  # layer3
            _bottleneck_layer(c[2] * Bottleneck.expansion, c[3], layers[3], stride=2),  # layer4
            _bottleneck_layer(layer5_in, c[4], layers[4], dilation=2),  # layer5
            _bottleneck_layer(layer6_in, c[5], layers[5], dilation=4),  # layer6
            _conv_bn_relu_layers(layer7_in, c[6], layers[6], dilation=2),  # layer7 (DRN-D: plain convs)
            _conv_bn_relu_layers(c[6], c[7], layers[7], dilation=1),  # layer8
        )
        self.seg = nn.Conv2d(c[7], num_classes, 1, bias=True)
        self.up = nn.ConvTranspose2d(num_classes, num_classes, 16, stride=8, padding=4, groups=num_classes, bias=False)
        with torch.no_grad():
            self.up.weight.copy_(bilinear_upsampling_kernel(num_classes, 16))
        self.up.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.seg(self.base(x)))


# ----------------------------------------------------------------------------- UperNet-101 (ADE20K)


def _conv3x3_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _conv1x1_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DeepStemResNet(nn.Module):
    """ResNet-101 with the three-conv stem (3→64 s2, 64→64, 64→128), as CSAIL's encoder.

    Returns the four stage outputs (strides 4, 8, 16, 32). Keys ``conv1.weight``, ``bn1.*`` ...
    ``layer4.2.bn3.*`` match ``encoder_epoch_*.pth``.
    """

    def __init__(self, blocks: Sequence[int] = (3, 4, 23, 3), width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width, 2 * width, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(2 * width)
        self.relu3 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        planes = [width * 2**i for i in range(4)]
        inplanes = [2 * width] + [p * Bottleneck.expansion for p in planes[:-1]]
        self.layer1 = _bottleneck_layer(inplanes[0], planes[0], blocks[0])
        self.layer2 = _bottleneck_layer(inplanes[1], planes[1], blocks[1], stride=2)
        self.layer3 = _bottleneck_layer(inplanes[2], planes[2], blocks[2], stride=2)
        self.layer4 = _bottleneck_layer(inplanes[3], planes[3], blocks[3], stride=2)
        self.out_channels = tuple(p * Bottleneck.expansion for p in planes)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.maxpool(self.relu3(self.bn3(self.conv3(x))))
        features = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            features.append(x)
        return features


class UPerNetHead(nn.Module):
    """UPerNet decoder: pyramid pooling (scales 1, 2, 3, 6) on the last stage, an FPN top-down
    path over the four stages, fusion of all levels at stride 4, 3×3 conv and 1×1 classifier.
    Keys ``ppm_conv.*``, ``ppm_last_conv.*``, ``fpn_in.*``, ``fpn_out.*``, ``conv_last.*`` match
    ``decoder_epoch_*.pth`` (``fpn_dim`` 512 for the released UperNet-101)."""

    def __init__(
        self,
        num_classes: int = 150,
        in_channels: Sequence[int] = (256, 512, 1024, 2048),
        fpn_dim: int = 512,
        ppm_dim: int = 512,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
    ):
        super().__init__()
        top = in_channels[-1]
        self.pool_scales = tuple(pool_scales)
        self.ppm_conv = nn.ModuleList(_conv1x1_bn_relu(top, ppm_dim) for _ in pool_scales)
        self.ppm_last_conv = _conv3x3_bn_relu(top + len(pool_scales) * ppm_dim, fpn_dim)
        self.fpn_in = nn.ModuleList(_conv1x1_bn_relu(c, fpn_dim) for c in in_channels[:-1])
        self.fpn_out = nn.ModuleList(nn.Sequential(_conv3x3_bn_relu(fpn_dim, fpn_dim)) for _ in in_channels[:-1])
        self.conv_last = nn.Sequential(
            _conv3x3_bn_relu(len(in_channels) * fpn_dim, fpn_dim), nn.Conv2d(fpn_dim, num_classes, 1)
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        top = features[-1]
        size = top.shape[-2:]
        pooled = [top] + [
            conv(F.interpolate(F.adaptive_avg_pool2d(top, scale), size, mode="bilinear", align_corners=False))
            for scale, conv in zip(self.pool_scales, self.ppm_conv)
        ]
        f = self.ppm_last_conv(torch.cat(pooled, 1))
        pyramid = [f]
        for i in reversed(range(len(features) - 1)):
            lateral = self.fpn_in[i](features[i])
            f = lateral + F.interpolate(f, lateral.shape[-2:], mode="bilinear", align_corners=False)
            pyramid.append(self.fpn_out[i](f))
        pyramid.reverse()  # finest first
        out_size = pyramid[0].shape[-2:]
        fused = [pyramid[0]] + [F.interpolate(p, out_size, mode="bilinear", align_corners=False) for p in pyramid[1:]]
        return self.conv_last(torch.cat(fused, 1))


class UperNet(nn.Module):
    """UperNet-101: :class:`DeepStemResNet` encoder + :class:`UPerNetHead`. Input: RGB in [0, 1]
    normalised with the ImageNet mean/std. Output: logits at 1/4 of the input."""

    def __init__(self, num_classes: int = 150, blocks: Sequence[int] = (3, 4, 23, 3), width: int = 64, fpn_dim: int = 512):
        super().__init__()
        self.encoder = DeepStemResNet(blocks, width)
        self.decoder = UPerNetHead(num_classes, self.encoder.out_channels, fpn_dim=fpn_dim, ppm_dim=fpn_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


# ----------------------------------------------------------------------------- wrapper


class Segmenter(nn.Module):
    """A segmentation network plus the input normalisation it was trained with.

    ``forward(images)``: ``(N, 3, H, W)`` RGB in [-1, 1] → logits ``(N, C, H, W)``.
    ``predict(images)``: → class map ``(N, H, W)`` int64.
    ``pixel_scale`` is 1 (network saw [0, 1]) or 255 (0..255); ``mean``/``std`` are in that scale
    and in RGB order; ``bgr`` flips the channels after normalising (Caffe-trained nets).
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
        pixel_scale: float = 1.0,
        bgr: bool = False,
        name: str = "",
    ):
        super().__init__()
        self.net = net
        self.num_classes = num_classes
        self.pixel_scale = pixel_scale
        self.bgr = bgr
        self.name = name
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "Segmenter":
        return super().train(False)  # a frozen evaluator: batch norm always uses running stats

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W), got shape {tuple(images.shape)}")
        x = (images.float().clamp(-1, 1) + 1) * (self.pixel_scale / 2)
        x = (x - self.mean) / self.std
        return x.flip(1) if self.bgr else x

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.net(self.normalize(images))
        if logits.shape[-2:] != images.shape[-2:]:
            logits = F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return logits

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward(images).argmax(dim=1)


# ----------------------------------------------------------------------------- registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# fyu/drn datasets/cityscapes/info.json (RGB, [0, 1] scale).
CITYSCAPES_MEAN = (0.29010095242892997, 0.32808144844279574, 0.28696394422942517)
CITYSCAPES_STD = (0.1829540508368939, 0.18656561047509476, 0.18447508988480435)
# deeplab-pytorch configs: COCO-Stuff mean, given here in RGB order; subtracted on the 0..255 scale.
COCO_MEAN_RGB = (122.675, 116.669, 104.008)


@dataclass(frozen=True)
class SegmenterSpec:
    """What a paper segmenter is, which files hold its weights and how to build it."""

    name: str
    dataset: str
    num_classes: int
    files: tuple[str, ...]  # file names, or glob patterns for UperNet's per-epoch files
    source: str  # where a user gets the files
    build: Callable[[], nn.Module]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pixel_scale: float = 1.0
    bgr: bool = False
    folder: str = ""  # sub-folder of the torch hub checkpoints dir searched by default
    description: str = ""
    optional_keys: tuple[str, ...] = field(default=())


_SEGMENTERS: dict[str, SegmenterSpec] = {}


def register_segmenter(spec: SegmenterSpec) -> SegmenterSpec:
    """Make ``spec`` loadable by :func:`load_segmenter` (e.g. a toy-scenes segmenter)."""
    _SEGMENTERS[spec.name] = spec
    return spec


register_segmenter(SegmenterSpec(
    name="drn-d-105",
    dataset="cityscapes",
    num_classes=19,
    files=("drn-d-105_ms_cityscapes.pth",),
    source="fyu/drn's Cityscapes models (README: http://go.yf.io/drn-cityscapes-models)",
    build=lambda: DRNSeg(19),
    mean=CITYSCAPES_MEAN,
    std=CITYSCAPES_STD,
    description="DRN-D-105, Cityscapes 19 trainIds (paper's Cityscapes segmenter)",
    optional_keys=("up.weight",),  # fixed bilinear kernel, rebuilt when a file omits it
))
register_segmenter(SegmenterSpec(
    name="upernet-101",
    dataset="ade20k",
    num_classes=150,
    files=("encoder_epoch_*.pth", "decoder_epoch_*.pth"),
    source="CSAIL semantic-segmentation-pytorch model zoo, folder baseline-resnet101-upernet "
    "(http://sceneparsing.csail.mit.edu/model/pytorch/baseline-resnet101-upernet/)",
    build=lambda: UperNet(150),
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    folder="baseline-resnet101-upernet",
    description="UperNet-101 (ResNet-101 + PPM/FPN), ADE20K 150 classes (paper's ADE20K segmenter)",
))
register_segmenter(SegmenterSpec(
    name="deeplabv2-resnet101",
    dataset="coco",
    num_classes=182,
    files=("deeplabv2_resnet101_msc-cocostuff164k-100000.pth",),
    source="kazuto1011/deeplab-pytorch release v1.0 "
    "(https://github.com/kazuto1011/deeplab-pytorch/releases/download/v1.0/"
    "deeplabv2_resnet101_msc-cocostuff164k-100000.pth)",
    build=lambda: DeepLabV2MSC(182),
    mean=COCO_MEAN_RGB,
    std=(1.0, 1.0, 1.0),
    pixel_scale=255.0,
    bgr=True,
    description="DeepLabV2 ResNet-101 MSC, COCO-Stuff 182 classes (paper's COCO-Stuff segmenter)",
))

# The paper's segmenter for each dataset preset.
DATASET_SEGMENTERS = {"cityscapes": "drn-d-105", "ade20k": "upernet-101", "ade20k-outdoor": "upernet-101", "coco": "deeplabv2-resnet101"}


def available_segmenters() -> dict[str, str]:
    """``{name: description}`` of every registered segmenter."""
    return {name: spec.description for name, spec in _SEGMENTERS.items()}


def segmenter_spec(name: str) -> SegmenterSpec:
    try:
        return _SEGMENTERS[name]
    except KeyError:
        raise ConfigError(f"unknown segmenter {name!r}; registered: {', '.join(_SEGMENTERS)}") from None


def build_segmenter(name: str) -> Segmenter:
    """The named segmenter with random weights (architecture only)."""
    spec = segmenter_spec(name)
    return Segmenter(spec.build(), spec.num_classes, spec.mean, spec.std, spec.pixel_scale, spec.bgr, spec.name)


def default_weights_dir() -> Path:
    """Where segmenter weights are looked for when no path is given: the torch hub checkpoints dir."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_segmenter_weights(name: str, weights_path: str | Path | None = None) -> list[Path]:
    """The weight file(s) of a segmenter, one per entry of ``spec.files``.

    ``weights_path``: the file itself, a folder holding the file(s), or None for
    :func:`default_weights_dir` (plus ``spec.folder``). For UperNet a path to either the encoder
    or the decoder file finds its partner of the same epoch beside it.
    Raises MissingWeightsError naming every file to get, where from and where it goes.
    """
    spec = segmenter_spec(name)
    if weights_path is None:
        folder = default_weights_dir() / spec.folder if spec.folder else default_weights_dir()
        given = None
    else:
        given = Path(weights_path)
        folder = given if given.is_dir() else given.parent

    if given is not None and given.is_file():
        if len(spec.files) == 1:
            return [given]
        epoch = re.search(r"_epoch_(\d+)\.pth$", given.name)
        if epoch:
            found = [folder / pattern.replace("*", epoch.group(1)) for pattern in spec.files]
            if all(p.is_file() for p in found):
                return found
    elif folder.is_dir():
        found = []
        for pattern in spec.files:
            matches = sorted(folder.glob(pattern), key=_epoch_number)
            if matches:
                found.append(matches[-1])  # the latest epoch
        if len(found) == len(spec.files):
            return found

    where = given if given is not None else folder
    files = " and ".join(spec.files)
    if weights_path is not None:
        hint = "check the path"
    elif len(spec.files) > 1:
        hint = f"pass the folder holding them or put them in {folder}"
    else:
        hint = f"pass its path or put it in {folder}"
    raise MissingWeightsError(
        f"the {spec.name} segmenter for {spec.dataset} needs {files}, not found at {where}; "
        f"get it from {spec.source} and {hint}"
    )


def _epoch_number(path: Path) -> int:
    match = re.search(r"_epoch_(\d+)", path.name)
    return int(match.group(1)) if match else -1


def load_segmenter(name: str, weights_path: str | Path | None = None, device: str | torch.device = "cpu") -> Segmenter:
    """The named paper segmenter with its pretrained weights (see :func:`find_segmenter_weights`)."""
    from spadekit.io import safe_torch_load

    spec = segmenter_spec(name)
    files = find_segmenter_weights(name, weights_path)
    segmenter = build_segmenter(name)
    if isinstance(segmenter.net, UperNet):
        load_state_dict_checked(segmenter.net.encoder, safe_torch_load(files[0]), files[0], spec.name, spec.optional_keys)
        load_state_dict_checked(segmenter.net.decoder, safe_torch_load(files[1]), files[1], spec.name, spec.optional_keys)
    else:
        load_state_dict_checked(segmenter.net, safe_torch_load(files[0]), files[0], spec.name, spec.optional_keys)
    return segmenter.to(device)


def load_state_dict_checked(
    module: nn.Module, state: object, path: str | Path, what: str, optional_keys: Sequence[str] = ()
) -> None:
    """Load ``state`` into ``module`` or raise CheckpointError naming the file and what differs.

    Accepts a bare state dict or one under ``state_dict``/``model``; strips ``module.`` prefixes
    (DataParallel). BatchNorm ``num_batches_tracked`` counters and ``optional_keys`` may be absent.
    """
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    elif isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors, so not a {what} checkpoint")
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    optional = set(optional_keys)
    try:
        load_state_into(module, state, path, optional=lambda key: key.endswith("num_batches_tracked") or key in optional)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc} (expected a {what} checkpoint)") from None
