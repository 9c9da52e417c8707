"""The OASIS generator: six SPADE residual blocks conditioned on [noise; labels].

State-dict keys equal the official ``OASIS_Generator`` keys (``fc``, ``body.<i>``, ``conv_img``;
``norm_*.first_norm`` for the parameter-free norm), in the official order, so official checkpoints
load with a plain ``load_state_dict``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

NUM_BLOCKS = 6
# The start grid is the output size divided by 2**(NUM_BLOCKS - 1).
DOWNSCALE = 2 ** (NUM_BLOCKS - 1)
NORMS = ("syncbatch", "batch", "instance")


class CountlessBatchNorm2d(nn.BatchNorm2d):
    """Batch norm without affine parameters whose ``num_batches_tracked`` never moves.

    The official ``syncbatch`` layer (vacancy's SynchronizedBatchNorm2d) calls ``F.batch_norm``
    directly on one device, so its counter stays 0 while running statistics follow momentum 0.1;
    checkpoints then record 0, which this layer reproduces. The state-dict keys are BatchNorm2d's.
    """

    def __init__(self, channels: int):
        super().__init__(channels, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, None, None, self.training, self.momentum, self.eps)


def param_free_norm(kind: str, channels: int) -> nn.Module:
    """``syncbatch`` (batch norm, counter frozen as in the official code), ``batch`` or ``instance``."""
    if kind == "syncbatch":
        return CountlessBatchNorm2d(channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=False)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    raise ValueError(f"unknown OASIS param-free norm {kind!r}; choose one of {', '.join(NORMS)}")


class OasisSPADE(nn.Module):
    """``first_norm(x) * (1 + gamma(seg)) + beta(seg)``; seg is resized (nearest) to x's size.

    Args:
        channels: channels C of x.
        cond_nc: channels of the conditioning map (semantic_nc, plus z_dim with 3D noise).
        norm: parameter-free norm, see :func:`param_free_norm`.
        kernel_size: kernel of the three convolutions (official ``spade_ks``).
        hidden: width of the shared convolution (128 in the official code).

    Shapes: x (N, C, H, W), seg (N, cond_nc, H', W') → (N, C, H, W).
    """

    def __init__(self, channels: int, cond_nc: int, norm: str, kernel_size: int, hidden: int):
        super().__init__()
        padding = kernel_size // 2
        self.first_norm = param_free_norm(norm, channels)
        self.mlp_shared = nn.Sequential(nn.Conv2d(cond_nc, hidden, kernel_size, padding=padding), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, kernel_size, padding=padding)
        self.mlp_beta = nn.Conv2d(hidden, channels, kernel_size, padding=padding)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        normalized = self.first_norm(x)
        if seg.shape[-2:] != x.shape[-2:]:
            seg = F.interpolate(seg, size=x.shape[-2:], mode="nearest")
        hidden = self.mlp_shared(seg)
        return normalized * (1 + self.mlp_gamma(hidden)) + self.mlp_beta(hidden)


class OasisResBlock(nn.Module):
    """``shortcut(x) + conv_1(lrelu(norm_1(conv_0(lrelu(norm_0(x))))))`` with spectral-normed convs.

    The shortcut is identity when fin == fout, else ``conv_s(norm_s(x))`` (1×1, no bias).

    Shapes: x (N, fin, H, W), seg (N, cond_nc, H', W') → (N, fout, H, W).
    """

    def __init__(self, fin: int, fout: int, cond_nc: int, norm: str, spade_kernel: int, spade_hidden: int):
        super().__init__()
        self.learned_shortcut = fin != fout
        fmid = min(fin, fout)
        self.conv_0 = spectral_norm(nn.Conv2d(fin, fmid, 3, padding=1))
        self.conv_1 = spectral_norm(nn.Conv2d(fmid, fout, 3, padding=1))
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1, bias=False))
        spade = dict(cond_nc=cond_nc, norm=norm, kernel_size=spade_kernel, hidden=spade_hidden)
        self.norm_0 = OasisSPADE(fin, **spade)
        self.norm_1 = OasisSPADE(fmid, **spade)
        if self.learned_shortcut:
            self.norm_s = OasisSPADE(fin, **spade)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return x_s + dx


def official_start_size(crop_size: int, aspect_ratio: float) -> tuple[int, int]:
    """The official start grid (h, w): ``w = crop_size // 32``, ``h = round(w / aspect_ratio)``."""
    w = crop_size // DOWNSCALE
    return round(w / aspect_ratio), w


def generator_widths(channels: int) -> list[int]:
    """Block widths [16c, 16c, 16c, 8c, 4c, 2c, c]; block i maps widths[i] → widths[i + 1]."""
    return [16 * channels, 16 * channels, 16 * channels, 8 * channels, 4 * channels, 2 * channels, channels]


class OasisGenerator(nn.Module):
    """Label map (+ noise) → image.

    Args:
        semantic_nc: channels N of the one-hot semantics (dontcare class included).
        channels: official ``channels_G`` (64); the last block has this width.
        z_dim: size of the noise vector (official default 64); ignored without noise.
        noise: concatenate 3D noise to the labels (official default; ``--no_3dnoise`` turns it off).
        norm: parameter-free norm in SPADE: ``syncbatch`` (official default), ``batch``, ``instance``.
        spade_kernel: official ``spade_ks``.
        spade_hidden: width of SPADE's shared conv (128 in the official code).
        start_size: (h, w) of the first feature map. None → (H / 32, W / 32) of each input, which
            equals the official grid whenever the input has the size the model was built for; pass
            :func:`official_start_size` to pin the official behaviour for any input size.

    ``forward(semantics, z=None)``: semantics (B, N, H, W) float one-hot; z None draws
    ``torch.randn(B, z_dim)`` from the global RNG exactly as the official code (so a recorded z
    reproduces after ``torch.manual_seed``); z may be (B, z_dim) — one vector per image, replicated
    over all pixels — or a per-pixel map (B, z_dim, H, W) (see :func:`region_noise`).
    Returns (B, 3, 32·h, 32·w) in [-1, 1].
    """

    def __init__(
        self,
        semantic_nc: int,
        channels: int = 64,
        z_dim: int = 64,
        noise: bool = True,
        norm: str = "syncbatch",
        spade_kernel: int = 3,
        spade_hidden: int = 128,
        start_size: tuple[int, int] | None = None,
    ):
        super().__init__()
        if noise and z_dim < 1:
            raise ValueError(f"z_dim must be positive with 3D noise, got {z_dim}")
        self.semantic_nc = semantic_nc
        self.channels = channels
        self.noise = noise
        self.z_dim = z_dim if noise else 0
        self.norm = norm
        self.spade_kernel = spade_kernel
        self.spade_hidden = spade_hidden
        self.start_size = tuple(start_size) if start_size is not None else None
        self.latent_dim: int | None = z_dim if noise else None
        self.spatial_latent = noise
        cond_nc = semantic_nc + self.z_dim
        widths = generator_widths(channels)
        # Creation order = official state-dict order: conv_img, body.*, fc.
        self.conv_img = nn.Conv2d(widths[-1], 3, 3, padding=1)
        self.body = nn.ModuleList(
            OasisResBlock(widths[i], widths[i + 1], cond_nc, norm, spade_kernel, spade_hidden) for i in range(NUM_BLOCKS)
        )
        self.fc = nn.Conv2d(cond_nc, widths[0], 3, padding=1)

    def config(self) -> dict[str, Any]:
        """The constructor arguments, so the network can be rebuilt (e.g. for a release file)."""
        return {
            "semantic_nc": self.semantic_nc,
            "channels": self.channels,
            "z_dim": self.latent_dim if self.noise else 64,
            "noise": self.noise,
            "norm": self.norm,
            "spade_kernel": self.spade_kernel,
            "spade_hidden": self.spade_hidden,
            "start_size": list(self.start_size) if self.start_size is not None else None,
        }

    def conditioning(self, semantics: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """The map every SPADE sees: cat(z expanded to H×W, semantics) — noise channels first."""
        if not self.noise:
            if z is not None:
                raise ValueError("this OASIS generator has no 3D noise (latent_dim is None); do not pass z")
            return semantics
        b, _, h, w = semantics.shape
        if z is None:
            # Drawn in float32 on the input's device, as the official forward does.
            z = torch.randn(b, self.z_dim, dtype=torch.float32, device=semantics.device)
        if z.dim() == 2 and z.shape == (b, self.z_dim):
            z = z.view(b, self.z_dim, 1, 1).expand(b, self.z_dim, h, w)
        elif z.dim() != 4 or z.shape != (b, self.z_dim, h, w):
            raise ValueError(f"z must be ({b}, {self.z_dim}) or ({b}, {self.z_dim}, {h}, {w}), got {tuple(z.shape)}")
        return torch.cat([z.to(device=semantics.device, dtype=semantics.dtype), semantics], dim=1)

    def forward(self, semantics: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        seg = self.conditioning(semantics, z)
        if self.start_size is not None:
            size = self.start_size
        else:
            h, w = semantics.shape[-2:]
            if h % DOWNSCALE or w % DOWNSCALE:
                raise ValueError(f"OASIS needs H and W that are multiples of {DOWNSCALE}, got {h}x{w}")
            size = (h // DOWNSCALE, w // DOWNSCALE)
        x = self.fc(F.interpolate(seg, size=size, mode="nearest"))
        for i, block in enumerate(self.body):
            x = block(x, seg)
            if i < NUM_BLOCKS - 1:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


def region_noise(z_outside: torch.Tensor, z_inside: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A per-pixel noise map: ``z_inside`` where ``mask`` is set, ``z_outside`` elsewhere.

    This is the local ("per-region") resampling the OASIS authors describe: keep the image's vector
    everywhere and give one class region a fresh vector.

    Shapes: z_outside, z_inside (B, Z); mask (B, H, W) or (B, 1, H, W), bool or {0, 1} →
    (B, Z, H, W), to pass as ``z`` to :class:`OasisGenerator`.
    """
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)
    if z_outside.shape != z_inside.shape or z_outside.dim() != 2:
        raise ValueError(f"z_outside and z_inside must both be (B, Z), got {tuple(z_outside.shape)} and {tuple(z_inside.shape)}")
    if mask.dim() != 4 or mask.shape[:2] != (z_outside.shape[0], 1):
        raise ValueError(f"mask must be (B, H, W) or (B, 1, H, W) with B={z_outside.shape[0]}, got {tuple(mask.shape)}")
    inside = mask.bool()
    return torch.where(inside, z_inside[:, :, None, None], z_outside[:, :, None, None])


def class_mask(semantics: torch.Tensor, class_index: int) -> torch.Tensor:
    """Pixels whose label (argmax of the one-hot) is ``class_index``: (B, N, H, W) → (B, 1, H, W) bool."""
    return semantics.argmax(dim=1, keepdim=True) == class_index
