"""Loss terms: GAN (hinge / least squares / original / Wasserstein), feature matching, VGG19
perceptual and KL. Plain functions and small modules; :mod:`spadekit.objective` combines them."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


Predictions = list[list[torch.Tensor]]  # per discriminator scale, every feature; the last is the prediction

GAN_MODES = ("hinge", "ls", "original", "w")


def _one_scale(pred: torch.Tensor, mode: str, target_real: bool, for_discriminator: bool) -> torch.Tensor:
    if mode == "hinge":
        if for_discriminator:
            return F.relu(1 - pred).mean() if target_real else F.relu(1 + pred).mean()
        if not target_real:
            raise ValueError("the hinge generator loss only exists for target_real=True")
        return -pred.mean()
    if mode == "ls":
        return F.mse_loss(pred, torch.full_like(pred, 1.0 if target_real else 0.0))
    if mode == "original":
        return F.binary_cross_entropy_with_logits(pred, torch.full_like(pred, 1.0 if target_real else 0.0))
    if mode == "w":
        return -pred.mean() if target_real else pred.mean()
    raise ValueError(f"unknown GAN mode {mode!r}; choose one of {', '.join(GAN_MODES)}")


def gan_loss(predictions: Predictions, mode: str, target_real: bool, for_discriminator: bool) -> torch.Tensor:
    """GAN loss averaged over discriminator scales, each scale's last output being its prediction.

    Hinge: D real ``mean relu(1 - x)``, D fake ``mean relu(1 + x)``, G ``-mean x``.
    """
    losses = [_one_scale(scale[-1], mode, target_real, for_discriminator) for scale in predictions]
    return torch.stack(losses).mean()


def feature_matching_loss(fake: Predictions, real: Predictions, weight: float = 10.0) -> torch.Tensor:
    """L1 between every intermediate feature of fake and (detached) real, summed over layers and
    scales, times ``weight / num_scales`` (the paper's lambda_feat / num_D)."""
    total = fake[0][0].new_zeros(())
    for fake_scale, real_scale in zip(fake, real):
        for fake_feature, real_feature in zip(fake_scale[:-1], real_scale[:-1]):
            total = total + F.l1_loss(fake_feature, real_feature.detach())
    return total * (weight / len(fake))


def pooled_l1(fake: torch.Tensor, real: torch.Tensor, pool: int = 1) -> torch.Tensor:
    """Mean absolute difference of ``(N, C, H, W)`` images after ``pool``×``pool`` average pooling
    (stride ``pool``; 1 = per pixel). A scalar."""
    if pool > 1:
        fake = F.avg_pool2d(fake, pool, ceil_mode=True)
        real = F.avg_pool2d(real, pool, ceil_mode=True)
    return (fake - real.to(fake.dtype)).abs().mean()


def region_colour_l1(fake: torch.Tensor, real: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of the two images' mean colours inside each region.

    ``fake``, ``real``: (N, 3, H, W); ``regions``: (N, S, H, W) masks (the one-hot semantics) at the
    images' size. Each image's region means are compared channel by channel, averaged over the
    regions present in that image (empty ones are skipped), then over the batch. A scalar.
    """
    masks = regions.to(fake.dtype)
    area = masks.sum(dim=(2, 3))  # (N, S)
    scale = 1.0 / area.clamp(min=1.0)
    fake_means = torch.einsum("nshw,nchw->nsc", masks, fake) * scale[..., None]
    real_means = torch.einsum("nshw,nchw->nsc", masks, real.to(fake.dtype)) * scale[..., None]
    present = (area > 0).to(fake.dtype)
    per_region = (fake_means - real_means).abs().mean(dim=2) * present
    return (per_region.sum(dim=1) / present.sum(dim=1).clamp(min=1.0)).mean()


MODE_SEEKING_EPS = 1e-5


def mode_seeking_loss(first: torch.Tensor, second: torch.Tensor, z_first: torch.Tensor, z_second: torch.Tensor) -> torch.Tensor:
    """Mode-seeking regulariser (Mao et al., CVPR 2019): per pair, the images' mean absolute
    difference over the latents' mean absolute difference, inverted (plus ``MODE_SEEKING_EPS``) so
    that minimising it spreads the images apart; averaged over the batch. ``first``, ``second``:
    (N, C, H, W) images of the same layouts from latents ``z_first``, ``z_second`` (N, ...)."""
    image_distance = (first - second).abs().flatten(1).mean(dim=1)
    latent_distance = (z_first - z_second).abs().flatten(1).mean(dim=1)
    return (1.0 / (image_distance / latent_distance + MODE_SEEKING_EPS)).mean()


def kl_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over the batch and latent dimensions (as the paper)."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


# ----------------------------------------------------------------------------- VGG perceptual

VGG19_FILE = "vgg19-dcbb9e9d.pth"
# Slices of torchvision's vgg19.features ending at relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.
_VGG_SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))
VGG_LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


def find_vgg19_weights(path: str | Path | None = None) -> Path:
    """The ImageNet VGG19 weights in torchvision's format: ``path`` or the torch cache; never downloads."""
    from spadekit.io import find_hub_weights

    return find_hub_weights(
        VGG19_FILE,
        path,
        "the VGG19 perceptual loss",
        "pass --set loss.vgg_weights=PATH, or train without it with --no-vgg (loss.lambda_vgg=0)",
    )


class VGG19Features(nn.Module):
    """Frozen VGG19 trunk returning relu1_1..relu5_1. Input (N, 3, H, W) in [-1, 1], fed as is (as the paper)."""

    def __init__(self, weights_path: str | Path | None = None, load: bool = True):
        super().__init__()
        from torchvision.models import vgg19

        features = vgg19(weights=None).features
        if load:
            from spadekit.io import safe_torch_load

            state = safe_torch_load(find_vgg19_weights(weights_path))
            state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
            features.load_state_dict(state)
        self.slices = nn.ModuleList(nn.Sequential(*[features[i] for i in range(a, b)]) for a, b in _VGG_SLICES)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGG19Features":
        return super().train(False)  # always frozen

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for block in self.slices:
            x = block(x)
            outputs.append(x)
        return outputs


class VGGLoss(nn.Module):
    """Perceptual loss: sum over relu1_1..relu5_1 of weight_i · L1(vgg(fake)_i, vgg(real)_i)."""

    def __init__(self, features: VGG19Features, layer_weights: tuple[float, ...] = VGG_LAYER_WEIGHTS):
        super().__init__()
        self.features = features
        self.layer_weights = layer_weights

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        fake_features = self.features(fake)
        with torch.no_grad():
            real_features = self.features(real)
        total = fake.new_zeros(())
        for weight, f, r in zip(self.layer_weights, fake_features, real_features):
            total = total + weight * F.l1_loss(f, r)
        return total
