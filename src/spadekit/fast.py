"""The optimised inference generator: the same images as :class:`SPADEGenerator`, less work.

Everything here is an exact rewrite of the eval-mode network (outputs agree to float rounding):

* **Spectral norm folded.** Each spectrally normalised conv gets the plain weight ``W / sigma`` that
  eval-mode spectral norm computes from the stored ``u``, ``v`` (no power iteration), once at load time.
* **Batch norm folded.** Eval-mode batch norm is ``x·s + t`` per channel, so
  ``BN(x)·(1 + gamma) + beta = x·(s·(1 + gamma)) + (t·(1 + gamma) + beta)``: both factors are linear
  in SPADE's hidden map, so the running statistics move into the gamma/beta weights and the norm
  disappears. Instance norm (data-dependent) is kept and the ``1 +`` goes into gamma's bias.
* **gamma and beta as one convolution** (weights concatenated, output split).
* **The first SPADE convolution as a gather.** ``mlp_shared`` sees one-hot semantics, so its k×k
  conv is ``out[:, y, x] = b + Σ_taps W[:, label(y+dy, x+dx), dy, dx]`` (zero outside the map):
  one table row per (tap, class) and an ``embedding_bag`` sum over the k² taps, instead of a dense
  conv over S (up to 184) channels. Out-of-map taps index a zero row; don't-care is one more class;
  the bias sits in the centre tap's rows (the centre is never outside). The instance-edge channel is
  not one-hot (a float map), so it is a separate dense term: a (k² → hidden) matrix product of
  its k×k neighbourhood, added to the gathered sum. The non-VAE ``fc`` (a 3×3 conv over the
  semantics) is computed the same way.
* **Labels resized once per resolution** and their tap indices shared by every SPADE layer there
  (each SPADE still has its own weights, so the gathered maps are not shared).
* **Band-sparse gamma/beta** (:mod:`spadekit.models.layout`). Away from class boundaries,
  instance edges and the image border (farther than the two SPADE kernels' radii together), a
  layer's gamma/beta depend on the class alone: one precomputed vector per class, looked up. The
  gamma/beta convolution runs only on the band of other pixels, as gathered windows times the
  weight matrix. A level takes this path when its band covers at most ``band_threshold`` of the
  pixels (low resolutions are mostly band, and there the dense convolution is faster).
* **Channels-last** activations (the gather produces that layout for free).

Input: channel indices ``(N, H, W)`` int64 (class ids, don't-care = ``label_nc``) and the edge map
``(N, 1, H, W)`` instead of the one-hot tensor; :meth:`FastSPADEGenerator.forward_semantics`
accepts one-hot semantics for drop-in use.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm

from spadekit.models.blocks import SPADEResBlock
from spadekit.models.generator import SPADEGenerator
from spadekit.models.layout import (
    BAND_MIN_PIXELS,
    Layout,
    LayoutLevel,
    band_rows,
    resize_index,
    tap_index,
    tap_values,
    window_matrix,
)
from spadekit.models.norms import SPADE
from spadekit.models.trunk import run_blocks

__all__ = [
    "FastSPADEGenerator", "FastSPADE", "FastResBlock", "OneHotConv", "plain_conv", "plain_weight",
    "resize_index", "tap_index", "tap_values",
]

BAND_THRESHOLD = 0.6
"""Default largest band fraction at which a level takes the band-sparse path (inference only:
measured on COCO-Stuff scenes, the dense convolution wins above ~0.4-0.5 of the pixels)."""


@torch.no_grad()
def plain_weight(module: nn.Module) -> torch.Tensor:
    """The weight a module uses in eval mode, with spectral norm applied as eval mode does."""
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, SpectralNorm) and hook.name == "weight":
            return hook.compute_weight(module, do_power_iteration=False).detach().clone()
    return module.weight.detach().clone()


@torch.no_grad()
def plain_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """A hook-free copy of ``conv`` carrying its eval-mode (spectrally normalised) weight."""
    out = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    ).to(device=conv.weight_orig.device if hasattr(conv, "weight_orig") else conv.weight.device)
    out.weight.copy_(plain_weight(conv))
    if conv.bias is not None:
        out.bias.copy_(conv.bias)
    return out.requires_grad_(False)


class OneHotConv(nn.Module):
    """A k×k convolution (zero padding k//2, stride 1) over ``[one-hot(C classes), edge?]`` as a gather.

    Args:
        weight: (O, C (+1), k, k) conv weight (the last input channel is the edge channel when ``has_edge``).
        bias: (O,) or None.
    Forward: ``taps`` (M, k²) from :func:`tap_index`, ``edge_taps`` (M, k²) from :func:`tap_values`
    → (M, O), M = N·H·W pixels in row-major (N, H, W) order.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, num_classes: int, has_edge: bool):
        super().__init__()
        out_channels, in_channels, k, k2 = weight.shape
        if k != k2 or k % 2 == 0:
            raise ValueError("OneHotConv needs a square, odd kernel")
        if in_channels != num_classes + int(has_edge):
            raise ValueError(f"weight has {in_channels} input channels, expected {num_classes + int(has_edge)}")
        self.kernel = k
        self.num_classes = num_classes
        weight = weight.detach()
        table = torch.zeros(k * k, num_classes + 1, out_channels, dtype=weight.dtype, device=weight.device)
        table[:, :num_classes] = weight[:, :num_classes].permute(2, 3, 1, 0).reshape(k * k, num_classes, out_channels)
        if bias is not None:
            # The centre tap is always inside the map, so its rows carry the bias exactly once.
            table[(k * k) // 2, :num_classes] += bias.detach()
        self.register_buffer("table", table.reshape(k * k * (num_classes + 1), out_channels))
        if has_edge:
            self.register_buffer("edge_weight", weight[:, num_classes].permute(1, 2, 0).reshape(k * k, out_channels).clone())
        else:
            self.edge_weight = None

    def forward(self, taps: torch.Tensor, edge_taps: torch.Tensor | None) -> torch.Tensor:
        out = F.embedding_bag(taps, self.table, mode="sum")
        if self.edge_weight is not None:
            out = torch.addmm(out, edge_taps, self.edge_weight)
        return out


class FastSPADE(nn.Module):
    """Inference form of :class:`SPADE`: gathered ``mlp_shared``, folded norm, one gamma/beta conv.

    Forward: ``x`` (N, C, H, W) and the :class:`~spadekit.models.layout.LayoutLevel` at (H, W)
    → (N, C, H, W); ``band_threshold`` > 0 allows the band-sparse path.
    """

    def __init__(self, spade: SPADE, num_classes: int, has_edge: bool):
        super().__init__()
        shared = spade.mlp_shared[0]
        self.kernel = shared.kernel_size[0]
        self.shared = OneHotConv(plain_weight(shared), shared.bias, num_classes, has_edge)
        with torch.no_grad():
            wg, wb = plain_weight(spade.mlp_gamma), plain_weight(spade.mlp_beta)
            channels = wg.shape[0]
            zeros = torch.zeros(channels, dtype=wg.dtype, device=wg.device)
            bg = (spade.mlp_gamma.bias if spade.mlp_gamma.bias is not None else zeros) + 1.0
            bb = spade.mlp_beta.bias if spade.mlp_beta.bias is not None else zeros
            norm = spade.param_free_norm
            if isinstance(norm, nn.modules.batchnorm._BatchNorm) and norm.running_mean is not None:
                # Eval-mode batch norm is x*scale + shift: move it into gamma/beta (module docstring).
                scale = torch.rsqrt(norm.running_var + norm.eps)
                shift = -norm.running_mean * scale
                if norm.affine:
                    scale, shift = scale * norm.weight, shift * norm.weight + norm.bias
                wb = wb + wg * shift[:, None, None, None]
                bb = bb + bg * shift
                wg = wg * scale[:, None, None, None]
                bg = bg * scale
                self.norm: nn.Module | None = None
            else:
                self.norm = copy.deepcopy(norm)
            k = spade.mlp_gamma.kernel_size[0]
            self.affine = nn.Conv2d(wg.shape[1], 2 * channels, k, padding=k // 2).to(wg.device)
            self.affine.weight.copy_(torch.cat([wg, wb]))
            self.affine.bias.copy_(torch.cat([bg, bb]))
            self.affine.requires_grad_(False)
            # Band-sparse form: the gamma/beta weight as a window matrix, and each class's
            # gamma/beta away from boundaries: bias + (sum of taps) @ relu(sum of its table rows).
            table = self.shared.table.view(self.kernel**2, num_classes + 1, -1)[:, :num_classes]
            inner = table.sum(0).relu()
            self.register_buffer("matrix", window_matrix(self.affine.weight).contiguous())
            self.register_buffer("class_values", torch.addmm(self.affine.bias, inner, self.affine.weight.sum((2, 3)).t()))
        self.latent = copy.deepcopy(spade.mlp_latent).requires_grad_(False) if spade.mlp_latent is not None else None

    def forward(
        self, x: torch.Tensor, level: LayoutLevel, band_threshold: float = 0.0, latent: torch.Tensor | None = None
    ) -> torch.Tensor:
        n, _, h, w = x.shape
        k = self.affine.kernel_size[0]
        # A latent layer's hidden map has per-sample biases: no per-class constants, so no band path.
        if self.latent is None and band_threshold > 0 and h * w >= BAND_MIN_PIXELS and level.band(k).work <= band_threshold:
            band = level.band(k)
            rows = band_rows(
                level, band, self.shared.table, self.shared.edge_weight, self.matrix, self.affine.bias, self.class_values[band.classes]
            )
            gamma, beta = rows.view(n, h, w, -1).permute(0, 3, 1, 2).chunk(2, dim=1)
        else:
            hidden = self.shared(level.taps, level.edge_taps)
            if self.latent is not None:
                hidden.view(n, h * w, -1).add_(self.latent(latent.to(hidden.dtype))[:, None, :])
            # (N·H·W, hidden) rows are already channels-last pixels: a permuted view, no copy.
            hidden = hidden.relu_().view(n, h, w, -1).permute(0, 3, 1, 2)
            if not x.is_contiguous(memory_format=torch.channels_last):
                hidden = hidden.contiguous()
            gamma, beta = self.affine(hidden).chunk(2, dim=1)
        if self.norm is not None:
            x = self.norm(x)
        return torch.addcmul(beta, x, gamma)


class FastResBlock(nn.Module):
    """Inference form of :class:`SPADEResBlock` (plain convs, :class:`FastSPADE` norms)."""

    def __init__(self, block: SPADEResBlock, num_classes: int, has_edge: bool):
        super().__init__()
        self.learned_shortcut = block.learned_shortcut
        self.conv_0 = plain_conv(block.conv_0)
        self.conv_1 = plain_conv(block.conv_1)
        self.norm_0 = FastSPADE(block.norm_0, num_classes, has_edge)
        self.norm_1 = FastSPADE(block.norm_1, num_classes, has_edge)
        if self.learned_shortcut:
            self.conv_s = plain_conv(block.conv_s)
            self.norm_s = FastSPADE(block.norm_s, num_classes, has_edge)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """``conv_s``, a 1×1 convolution: on channels-last input one matrix product over the pixels
        (PyTorch's CPU 1×1 convolution converts the layout and runs slower)."""
        if x.is_contiguous(memory_format=torch.channels_last) and self.conv_s.kernel_size == (1, 1) and x.shape[1] > 1:
            weight = self.conv_s.weight[:, :, 0, 0]
            return F.linear(x.permute(0, 2, 3, 1), weight, self.conv_s.bias).permute(0, 3, 1, 2)
        return self.conv_s(x)

    def forward(
        self, x: torch.Tensor, level: LayoutLevel, band_threshold: float = 0.0, latent: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.learned_shortcut:
            x_s = self.shortcut(self.norm_s(x, level, band_threshold, latent))
        else:
            x_s = x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, level, band_threshold, latent), 0.2, inplace=True))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, level, band_threshold, latent), 0.2, inplace=True))
        return dx.add_(x_s)


class FastSPADEGenerator(nn.Module):
    """The inference-only twin of a :class:`SPADEGenerator` (see the module docstring).

    Shapes: ``index`` (N, H, W) int64 channel indices at the output size; ``edges`` (N, 1, H, W)
    float or None; ``z`` (N, z_dim) or None (VAE models: sampled when None) → (N, 3, H, W) in [-1, 1].
    """

    def __init__(
        self,
        generator: SPADEGenerator,
        num_classes: int,
        has_edge: bool,
        channels_last: bool = True,
        band_threshold: float = BAND_THRESHOLD,
    ):
        super().__init__()
        if generator.semantic_nc != num_classes + int(has_edge):
            raise ValueError(f"generator takes {generator.semantic_nc} channels, not {num_classes} classes + edge={has_edge}")
        self.num_classes = num_classes
        self.has_edge = has_edge
        self.channels_last = channels_last
        self.band_threshold = band_threshold
        """Largest band fraction at which a level takes the band-sparse path (0: never)."""
        self.use_vae = generator.use_vae
        self.latent_spade = generator.latent_spade
        self.z_dim = generator.z_dim
        self.ngf = generator.ngf
        self.sw, self.sh = generator.sw, generator.sh
        self.upsampling = generator.upsampling
        if self.use_vae:
            self.fc = copy.deepcopy(generator.fc).requires_grad_(False)
        else:
            self.fc = OneHotConv(plain_weight(generator.fc), generator.fc.bias, num_classes, has_edge)
        self.block_names = generator.block_names
        for name in self.block_names:
            self.add_module(name, FastResBlock(getattr(generator, name), num_classes, has_edge))
        self.spade_kernel = getattr(self, self.block_names[0]).norm_0.kernel
        self.conv_img = plain_conv(generator.conv_img)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @classmethod
    def from_generator(
        cls,
        generator: SPADEGenerator,
        num_classes: int,
        has_edge: bool,
        channels_last: bool = True,
        band_threshold: float = BAND_THRESHOLD,
    ) -> "FastSPADEGenerator":
        """Build from an eval-mode generator (the original is left untouched)."""
        return cls(generator.eval(), num_classes, has_edge, channels_last, band_threshold).eval()

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x.contiguous()

    def forward(self, index: torch.Tensor, edges: torch.Tensor | None = None, z: torch.Tensor | None = None) -> torch.Tensor:
        if self.has_edge and edges is None:
            raise ValueError("this generator has an instance-edge channel: pass edges (N, 1, H, W)")
        dtype = self.conv_img.weight.dtype
        # One resize, tap table and band per resolution, shared by all layers there.
        layout = Layout(index, edges, self.num_classes)
        n = index.shape[0]
        if self.use_vae:
            if z is None:
                z = torch.randn(n, self.z_dim, device=index.device, dtype=dtype)
            x = self.fc(z.to(dtype)).view(n, 16 * self.ngf, self.sh, self.sw)
        else:
            level = layout.level((self.sh, self.sw), 3, dtype)
            x = self.fc(level.taps, level.edge_taps).view(n, self.sh, self.sw, -1).permute(0, 3, 1, 2)
        x = self._layout(x)

        def run(name: str, x: torch.Tensor) -> torch.Tensor:
            level = layout.level((x.shape[-2], x.shape[-1]), self.spade_kernel, dtype)
            return getattr(self, name)(x, level, self.band_threshold, z if self.latent_spade else None)

        x = run_blocks(x, self.upsampling, self.block_names, run)
        x = self.conv_img(F.leaky_relu(x, 0.2, inplace=True))
        return torch.tanh(x)

    @torch.no_grad()
    def band_fractions(self, index: torch.Tensor, edges: torch.Tensor | None = None) -> dict[str, float]:
        """The band fraction of every SPADE resolution for these label maps ("HxW": fraction), the
        share of pixels whose gamma/beta need the convolution (the rest is a per-class lookup)."""
        layout = Layout(index, edges, self.num_classes)
        h, w = index.shape[-2:]
        out = {}
        factor = 1
        while h // factor >= self.sh and w // factor >= self.sw:
            size = (h // factor, w // factor)
            out[f"{size[0]}x{size[1]}"] = layout.level(size, self.spade_kernel, self.conv_img.weight.dtype).band(self.spade_kernel).fraction
            factor *= 2
        return out

    def forward_semantics(self, semantics: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Drop-in for ``SPADEGenerator.forward``: (N, S, H, W) one-hot semantics → images."""
        index = semantics[:, : self.num_classes].argmax(dim=1)
        edges = semantics[:, self.num_classes :] if self.has_edge else None
        return self.forward(index, edges, z)
