"""Parameter-free normalisation and SPADE, the spatially-adaptive denormalisation layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.models.layout import Layout, spade_modulation, uses_plain_weights

# Short names → parameter-free norm constructors (timm-style lookup instead of parsing option strings).
# "syncbatch" is plain batch norm in a single process; the trainer converts it with
# nn.SyncBatchNorm.convert_sync_batchnorm under DDP, which keeps the same state-dict keys.
_PARAM_FREE_NORMS = {
    "batch": lambda channels: nn.BatchNorm2d(channels, affine=False),
    "syncbatch": lambda channels: nn.BatchNorm2d(channels, affine=False),
    "instance": lambda channels: nn.InstanceNorm2d(channels, affine=False),
}


def param_free_norm(kind: str, channels: int) -> nn.Module:
    """A normalisation layer without learned scale/shift: ``batch``, ``syncbatch`` or ``instance``."""
    try:
        return _PARAM_FREE_NORMS[kind](channels)
    except KeyError:
        raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(_PARAM_FREE_NORMS)}") from None


class NormModulation(torch.autograd.Function):
    """``norm(x) * scale + shift`` for a parameter-free batch or instance norm, keeping only ``x``
    and the statistics for the backward: the normalised map is recomputed there (one elementwise
    pass) instead of being stored, one activation less per SPADE layer.

    ``running_mean``/``running_var`` are updated in place in training mode (batch norm); instance
    norm passes None and normalises each (sample, channel) on its own.
    """

    @staticmethod
    def forward(ctx, x, scale, shift, running_mean, running_var, training: bool, momentum: float, eps: float, instance: bool):  # type: ignore[override]
        flat = x.reshape(1, -1, *x.shape[2:]) if instance else x
        normalized, mean, invstd = torch.native_batch_norm(flat, None, None, running_mean, running_var, training, momentum, eps)
        ctx.save_for_backward(x, scale, mean, invstd, running_mean, running_var)
        ctx.training, ctx.eps, ctx.instance = training, eps, instance
        return torch.addcmul(shift, normalized.view_as(x), scale)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, scale, mean, invstd, running_mean, running_var = ctx.saved_tensors
        flat = x.reshape(1, -1, *x.shape[2:]) if ctx.instance else x
        if ctx.training:
            centre, factor = mean, invstd
        else:
            centre, factor = running_mean, torch.rsqrt(running_var + ctx.eps)
        shape = (1, -1, 1, 1)
        normalized = ((flat - centre.view(shape)) * factor.view(shape)).to(x.dtype).view_as(x)
        grad_scale = (grad * normalized).to(scale.dtype)
        # The kernel expects the gradient in the input's memory format (as autograd's own formula arranges).
        layout = torch.channels_last if flat.is_contiguous(memory_format=torch.channels_last) and not flat.is_contiguous() else torch.contiguous_format
        flat = flat.contiguous(memory_format=layout)
        grad_normalized = (grad * scale).reshape(flat.shape).contiguous(memory_format=layout)
        grad_x = torch.ops.aten.native_batch_norm_backward(
            grad_normalized, flat, None, running_mean, running_var, mean, invstd, ctx.training, ctx.eps, [True, False, False]
        )[0].view_as(x)
        return grad_x.to(x.dtype), grad_scale, grad, None, None, None, None, None, None


def modulated_norm(norm: nn.Module, x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``norm(x) * scale + shift`` through :class:`NormModulation` when ``norm`` is a plain
    BatchNorm2d / InstanceNorm2d without affine parameters (the rest, e.g. a SyncBatchNorm under
    DDP, runs the plain ops)."""
    if type(norm) is nn.BatchNorm2d and not norm.affine:
        momentum = 0.0 if norm.momentum is None else norm.momentum
        if norm.training and norm.track_running_stats and norm.num_batches_tracked is not None:
            norm.num_batches_tracked.add_(1)  # what BatchNorm2d.forward does
            if norm.momentum is None:
                momentum = 1.0 / float(norm.num_batches_tracked)
        training = norm.training or norm.running_mean is None
        tracked = not norm.training or norm.track_running_stats
        mean, var = (norm.running_mean, norm.running_var) if tracked else (None, None)
        return NormModulation.apply(x, scale, shift, mean, var, training, momentum, norm.eps, False)
    if type(norm) is nn.InstanceNorm2d and not norm.affine and not norm.track_running_stats:
        # Also for channels-last x: PyTorch's own instance norm gets the gradient wrong when it
        # arrives channels-last with a batch of one (torch 2.14), as the layout path's does.
        return NormModulation.apply(x, scale, shift, None, None, True, 0.0, norm.eps, True)
    return torch.addcmul(shift, norm(x), scale)


class SPADE(nn.Module):
    """Spatially-adaptive (de)normalisation.

    ``out = norm(x) * (1 + gamma(seg)) + beta(seg)`` where gamma and beta are predicted per pixel
    from the semantics resized (nearest) to the resolution of ``x``.

    Args:
        channels: channels C of the activation being normalised.
        semantic_nc: channels S of the one-hot semantics.
        norm: parameter-free norm (``batch`` / ``syncbatch`` / ``instance``).
        kernel_size: kernel of the three convolutions (3 in the paper, 5 as an option).
        hidden: width of the shared convolution (128 in the paper).
        latent_dim: when given, the layer also takes a latent ``z`` (N, latent_dim): ``mlp_latent``
            (linear, no bias) maps it to a per-sample bias of the shared hidden layer before its
            ReLU, so gamma and beta depend on class and latent together. Not in the official SPADE.

    Shapes: ``x`` (N, C, H, W), ``segmap`` (N, S, H', W') → (N, C, H, W). ``segmap`` may also be
    a :class:`~spadekit.models.layout.Layout` (class indices standing for one-hot semantics): the
    same values and gradients from a gather and band-sparse convolutions.
    """

    def __init__(
        self,
        channels: int,
        semantic_nc: int,
        norm: str = "syncbatch",
        kernel_size: int = 3,
        hidden: int = 128,
        latent_dim: int | None = None,
    ):
        super().__init__()
        padding = kernel_size // 2
        self.param_free_norm = param_free_norm(norm, channels)
        self.mlp_shared = nn.Sequential(nn.Conv2d(semantic_nc, hidden, kernel_size, padding=padding), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, kernel_size, padding=padding)
        self.mlp_beta = nn.Conv2d(hidden, channels, kernel_size, padding=padding)
        self.mlp_latent = nn.Linear(latent_dim, hidden, bias=False) if latent_dim is not None else None

    def modulation(
        self, segmap: torch.Tensor | Layout, size: tuple[int, int], latent: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(gamma, beta) for semantics resized to ``size`` (and the latent, for a latent layer)."""
        if self.mlp_latent is not None and latent is None:
            raise ValueError("this SPADE layer is conditioned on the latent: pass z")
        if isinstance(segmap, Layout):
            # The layout path's per-class shortcuts assume every sample shares the class values.
            if self.mlp_latent is None and uses_plain_weights(self.mlp_shared[0], self.mlp_gamma, self.mlp_beta):
                return spade_modulation(segmap, size, self.mlp_shared[0], self.mlp_gamma, self.mlp_beta)
            segmap = segmap.semantics(size, self.mlp_shared[0].weight.dtype)
        if segmap.shape[-2:] != size:
            segmap = F.interpolate(segmap, size=size, mode="nearest")
        if self.mlp_latent is None:
            hidden = self.mlp_shared(segmap)
        else:
            hidden = F.relu(self.mlp_shared[0](segmap) + self.mlp_latent(latent.to(segmap.dtype))[:, :, None, None])
        return self.mlp_gamma(hidden), self.mlp_beta(hidden)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor | Layout, latent: torch.Tensor | None = None) -> torch.Tensor:
        if (
            isinstance(segmap, Layout)
            and self.mlp_latent is None
            and uses_plain_weights(self.mlp_shared[0], self.mlp_gamma, self.mlp_beta)
        ):
            scale, shift = spade_modulation(
                segmap, tuple(x.shape[-2:]), self.mlp_shared[0], self.mlp_gamma, self.mlp_beta, gamma_offset=1.0
            )
            return modulated_norm(self.param_free_norm, x, scale, shift)
        normalized = self.param_free_norm(x)
        gamma, beta = self.modulation(segmap, tuple(x.shape[-2:]), latent)
        return normalized * (1 + gamma) + beta
