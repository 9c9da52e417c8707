"""Multi-modal diversity: the mean perceptual distance (LPIPS) between samples generated for the
same label map. Higher = more diverse.

LPIPS comes from the ``lpips`` PyPI package (BSD-2): its wheel ships the learned linear layers
(``lpips/weights/v0.1/alex.pth``, ``vgg.pth``), but not the ImageNet backbone, which the package
would download through torchvision. Here the backbone is built untrained and filled from
torchvision's weight file on disk (``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth`` in
``torch.hub.get_dir()/checkpoints`` or a given path), so nothing is downloaded.
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from spadekit.errors import CheckpointError, MissingWeightsError

DistanceFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}


def mean_pairwise_distance(samples: torch.Tensor | Sequence[torch.Tensor], distance_fn: DistanceFn, batch_size: int = 16) -> float:
    """Mean of ``distance_fn(a, b)`` over all unordered pairs of the ``K`` samples of one label map.

    ``samples``: ``(K, 3, H, W)`` (or a list of ``(3, H, W)``), K >= 2. ``distance_fn`` takes two
    batches ``(P, 3, H, W)`` and returns ``(P,)`` (or anything with P elements); pairs are fed in
    batches of ``batch_size``.
    """
    if not isinstance(samples, torch.Tensor):
        samples = torch.stack(list(samples))
    k = samples.shape[0]
    if k < 2:
        raise ValueError(f"need at least 2 samples of a label map for a pairwise distance, got {k}")
    pairs = list(itertools.combinations(range(k), 2))
    total = 0.0
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        a = samples[[i for i, _ in chunk]]
        b = samples[[j for _, j in chunk]]
        with torch.no_grad():
            d = distance_fn(a, b).reshape(len(chunk), -1)
        if d.shape[1] != 1:
            raise ValueError(f"distance_fn must return one value per pair, got shape {tuple(d.shape)}")
        total += float(d.double().sum())
    return total / len(pairs)


class Diversity:
    """Accumulator: ``update(samples)`` with the ``(K, 3, H, W)`` samples of one label map (or
    ``(B, K, 3, H, W)`` for B label maps), ``compute()`` → mean over label maps of the mean
    pairwise distance."""

    def __init__(self, distance_fn: DistanceFn):
        self.distance_fn = distance_fn
        self.per_label_map: list[float] = []

    def reset(self) -> None:
        self.per_label_map.clear()

    def update(self, samples: torch.Tensor) -> None:
        groups = samples.unsqueeze(0) if samples.ndim == 4 else samples
        if groups.ndim != 5:
            raise ValueError(f"samples must be (K, 3, H, W) or (B, K, 3, H, W), got {tuple(samples.shape)}")
        for group in groups:
            self.per_label_map.append(mean_pairwise_distance(group, self.distance_fn))

    def compute(self) -> float:
        if not self.per_label_map:
            raise ValueError("no samples were added")
        return sum(self.per_label_map) / len(self.per_label_map)


def find_lpips_backbone(net: str = "alex", path: str | Path | None = None) -> Path:
    """torchvision's ImageNet weights for the LPIPS backbone: ``path`` or the torch hub cache."""
    if net not in BACKBONE_FILES:
        raise ValueError(f"LPIPS backbone must be one of {', '.join(BACKBONE_FILES)}, got {net!r}")
    from spadekit.io import find_hub_weights

    return find_hub_weights(BACKBONE_FILES[net], path, f"LPIPS ({net})")


class LPIPSDistance(nn.Module):
    """LPIPS v0.1 between two image batches ``(P, 3, H, W)`` in [-1, 1] → ``(P,)``.

    ``backbone_path``: torchvision's AlexNet (``alexnet-owt-7be5be79.pth``) or VGG16
    (``vgg16-397923af.pth``) weights; None looks in the torch hub cache. Needs ``pip install lpips``.
    """

    def __init__(self, net: str = "alex", backbone_path: str | Path | None = None):
        super().__init__()
        weights = find_lpips_backbone(net, backbone_path)
        try:
            import lpips
        except ImportError:
            raise MissingWeightsError("LPIPS needs the lpips package: pip install 'lpips>=0.1.4'") from None
        from spadekit.io import safe_torch_load

        # pnet_rand: build the backbone untrained (the package would otherwise download it);
        # the linear layers are loaded below from the file in the lpips wheel, checked key by key
        # (the package itself loads them with strict=False).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # lpips uses torchvision's deprecated `pretrained=`
            self.model = lpips.LPIPS(net=net, version="0.1", pretrained=False, pnet_rand=True, verbose=False)
        linear_path = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
        if not linear_path.is_file():
            raise MissingWeightsError(f"{linear_path}: the lpips package's linear weights are missing; reinstall lpips")
        linear = safe_torch_load(linear_path)
        own = {k for k in self.model.state_dict() if k[:3] == "lin" and k[3].isdigit()}  # lins.* alias them
        if not isinstance(linear, dict) or set(linear) != own:
            raise CheckpointError(f"{linear_path}: keys do not match LPIPS {net} linear layers")
        self.model.load_state_dict(linear, strict=False)
        load_backbone(self.model.net, safe_torch_load(weights), weights)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "LPIPSDistance":
        return super().train(False)

    @torch.no_grad()
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.model(a, b).reshape(-1)


def load_backbone(backbone: nn.Module, state: dict, path: str | Path) -> None:
    """Copy torchvision ``features.<i>.*`` weights into an lpips backbone, whose slices keep the
    torchvision layer index as the child name (``slice1.0.weight`` ← ``features.0.weight``)."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a state dict")
    mapped = {}
    for name, own in backbone.state_dict().items():
        _, index, kind = name.split(".")
        source = f"features.{index}.{kind}"
        if source not in state:
            raise CheckpointError(f"{path}: {source} missing, not a torchvision backbone of this kind")
        if tuple(state[source].shape) != tuple(own.shape):
            raise CheckpointError(
                f"{path}: {source} has shape {tuple(state[source].shape)}, the LPIPS backbone expects {tuple(own.shape)}"
            )
        mapped[name] = state[source]
    backbone.load_state_dict(mapped)
