"""The optimised inference CLADE generator: the same images as :class:`CLADEGenerator`, less work.

Exact rewrites of the eval-mode network (outputs agree to float rounding):

* **Spectral norm folded**: plain convolutions carrying the eval-mode weight ``W / sigma``.
* **Batch norm folded into the class tables.** Eval-mode batch norm is ``x·s + t`` per channel, so
  ``BN(x)·gamma[c] + beta[c] = x·(s·gamma[c]) + (t·gamma[c] + beta[c])``: one lookup of a
  (scale, shift) row per pixel and one fused multiply-add. Instance norm (data-dependent) is kept.
  With ICPE, ``(x·s·gamma + t·gamma)·(1 + a) + beta·(1 + b)`` keeps beta as a third table.
* **No concatenated instance channel.** A CLADE layer with instances appends ``inst_conv(edges)``
  as one extra channel before the next conv; here that conv is split into its C-channel part and a
  1-channel part, ``conv(cat(h, e)) = conv_C(h) + conv_1(e)``, which avoids copying the activation.
  The 1-channel part is a (pixels × k²) by (k² × C) matrix product added in place: the k×k
  neighbourhoods of the edge map are taken once per resolution and shared by every layer there
  (each layer's ``e = act(a·edge + b)`` is elementwise, so it maps the shared neighbourhoods, with
  the zero padding kept zero).
* **The first convolution (``fc``) as a gather** over the one-hot semantics
  (:class:`spadekit.fast.OneHotConv`).
* **Class indices resized once per resolution**, shared by all layers there; **channels-last** activations.

Input: class indices ``(N, H, W)`` int64 and the edge map ``(N, 1, H, W)`` (instead of the one-hot
tensor) and, for ICPE, ``dist`` (N, 2, H, W) (computed from ``index`` when None, as the plain
generator does); :meth:`FastCLADEGenerator.forward_semantics` accepts one-hot semantics for drop-in use.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.fast import OneHotConv, plain_conv, plain_weight, resize_index, tap_index, tap_values
from spadekit.methods.clade.blocks import CLADEResBlock
from spadekit.methods.clade.generator import CLADEGenerator
from spadekit.methods.clade.norm import CLADE
from spadekit.methods.clade.positional import offsets_of_index
from spadekit.models.trunk import run_blocks


class EdgeTaps:
    """The k×k neighbourhoods of one resolution's edge map, shared by the layers there.

    ``values``: (N·H·W, k²) edge values (0 outside the map); ``inside``: (N·H·W, k²) 1 inside, 0 outside.
    """

    def __init__(self, edges: torch.Tensor, kernels: tuple[int, ...] = (1, 3)):
        self.shape = edges.shape
        self.taps = {k: (tap_values(edges, k), tap_values(torch.ones_like(edges), k)) for k in kernels}

    def feature(self, kernel: int, scale: torch.Tensor, shift: torch.Tensor, activate: bool) -> torch.Tensor:
        """The neighbourhoods of ``act(scale·edge + shift)`` (zero outside the map): (N·H·W, k²)."""
        values, inside = self.taps[kernel]
        feature = torch.addcmul(shift.expand_as(values), values, scale)
        if activate:
            feature = F.leaky_relu(feature, 0.2, inplace=True)
        return feature.mul_(inside)


class SplitConv(nn.Module):
    """``conv(cat(h, e))`` computed as ``conv_C(h) + conv_1(e)`` for a conv whose last input channel is
    ``e = act(scale·edge + shift)`` (the instance feature of the CLADE layer before it).

    Forward: ``h`` (N, C, H, W); ``extra`` (:class:`EdgeTaps` at h's size, scale, shift, activate) or
    None (when the conv has no extra channel) → (N, O, H', W').
    """

    def __init__(self, conv: nn.Conv2d, extra: bool):
        super().__init__()
        full = plain_conv(conv)
        self.extra = extra
        self.kernel = full.kernel_size[0]
        channels = full.in_channels - int(extra)
        # A 1x1 conv (the learned shortcut) is one matrix product over the pixels of a channels-last map
        # (PyTorch's CPU conv takes a slow path for it).
        self.pointwise = full.kernel_size == (1, 1) and full.stride == (1, 1) and full.padding == (0, 0)
        if self.pointwise:
            self.main = None
            self.register_buffer("main_weight", full.weight.detach()[:, :channels].flatten(1).t().contiguous())
            self.register_buffer("main_bias", full.bias.detach().clone() if full.bias is not None else None)
        elif not extra:
            self.main = full
        else:
            self.main = nn.Conv2d(
                channels, full.out_channels, full.kernel_size, padding=full.padding, bias=full.bias is not None
            ).to(full.weight.device)
            with torch.no_grad():
                self.main.weight.copy_(full.weight[:, :-1])
                if full.bias is not None:
                    self.main.bias.copy_(full.bias)
            self.main.requires_grad_(False)
        if extra:
            # (k², O): row t holds the weights of the extra channel at tap t (row-major over the k×k window).
            self.register_buffer("extra_weight", full.weight[:, -1].detach().flatten(1).t().contiguous())

    def forward(self, h: torch.Tensor, extra: tuple | None) -> torch.Tensor:
        if self.pointwise:
            n, c, height, width = h.shape
            pixels = h.permute(0, 2, 3, 1).reshape(n * height * width, c)
            if self.main_bias is not None:
                rows = torch.addmm(self.main_bias, pixels, self.main_weight)
            else:
                rows = torch.mm(pixels, self.main_weight)
            if self.extra:
                taps, scale, shift, activate = extra
                rows.addmm_(taps.feature(1, scale, shift, activate), self.extra_weight)
            return rows.view(n, height, width, -1).permute(0, 3, 1, 2)
        out = self.main(h)
        if not self.extra:
            return out
        taps, scale, shift, activate = extra
        term = taps.feature(self.kernel, scale, shift, activate)
        n, c, height, width = out.shape
        rows = out.permute(0, 2, 3, 1)
        if rows.is_contiguous():  # channels-last: add the product into the activation's own memory
            rows.view(-1, c).addmm_(term, self.extra_weight)
            return out
        return out.add_(torch.mm(term, self.extra_weight).view(n, height, width, c).permute(0, 3, 1, 2))


class FastCLADE(nn.Module):
    """Inference form of :class:`CLADE`: folded tables, one gather per pixel.

    Forward: ``x`` (N, C, H, W), ``classes`` (N, H, W), ``dist`` (N, 2, H, W) or None, at x's size →
    normalised ``x`` (N, C, H, W). The instance feature ``inst_conv(edges) = scale·edges + shift``
    is left to the next conv (:attr:`instance_affine`, see :class:`SplitConv`).
    """

    def __init__(self, layer: CLADE):
        super().__init__()
        affine = layer.class_specified_affine
        self.use_dist = affine.use_dist
        self.channels = affine.channels
        norm = layer.param_free_norm
        with torch.no_grad():
            gamma, beta = affine.weight.detach(), affine.bias.detach()
            if isinstance(norm, nn.modules.batchnorm._BatchNorm) and norm.running_mean is not None:
                # Eval-mode batch norm is x*scale + shift: fold it into the tables (module docstring).
                scale = torch.rsqrt(norm.running_var + norm.eps)
                shift = -norm.running_mean * scale
                table_scale, table_shift = gamma * scale, gamma * shift
                self.norm: nn.Module | None = None
            else:
                table_scale, table_shift = gamma, torch.zeros_like(gamma)
                self.norm = copy.deepcopy(norm)
            tables = [table_scale, table_shift] if self.use_dist else [table_scale, table_shift + beta]
            if self.use_dist:
                tables.append(beta)
                self.dist_conv_w = copy.deepcopy(affine.dist_conv_w).requires_grad_(False)
                self.dist_conv_b = copy.deepcopy(affine.dist_conv_b).requires_grad_(False)
            self.register_buffer("table", torch.cat(tables, dim=1).contiguous())
        if layer.use_instance:
            self.register_buffer("inst_scale", layer.inst_conv.weight.detach().reshape(1).clone())
            self.register_buffer("inst_shift", layer.inst_conv.bias.detach().reshape(1).clone())
        self.use_instance = layer.use_instance

    def instance_affine(self, taps: "EdgeTaps | None", activate: bool) -> tuple | None:
        """What a :class:`SplitConv` after this layer needs for its extra channel (None without instances)."""
        if not self.use_instance:
            return None
        return taps, self.inst_scale, self.inst_shift, activate

    def forward(self, x: torch.Tensor, classes: torch.Tensor, dist: torch.Tensor | None) -> torch.Tensor:
        # (N, H, W, k·C) rows, viewed as k channel-first maps with channels-last strides (no copy).
        looked_up = F.embedding(classes, self.table).permute(0, 3, 1, 2)
        parts = looked_up.split(self.channels, dim=1)
        if self.norm is not None:
            x = self.norm(x)
        out = torch.addcmul(parts[1], x, parts[0])
        if self.use_dist:
            out = torch.addcmul(parts[2] * (1 + self.dist_conv_b(dist)), out, 1 + self.dist_conv_w(dist))
        return out


class FastCLADEResBlock(nn.Module):
    """Inference form of :class:`CLADEResBlock` (plain split convs, :class:`FastCLADE` norms)."""

    def __init__(self, block: CLADEResBlock, use_instance: bool):
        super().__init__()
        self.learned_shortcut = block.learned_shortcut
        self.conv_0 = SplitConv(block.conv_0, use_instance)
        self.conv_1 = SplitConv(block.conv_1, use_instance)
        self.norm_0 = FastCLADE(block.norm_0)
        self.norm_1 = FastCLADE(block.norm_1)
        if self.learned_shortcut:
            self.conv_s = SplitConv(block.conv_s, use_instance)
            self.norm_s = FastCLADE(block.norm_s)

    def forward(self, x: torch.Tensor, classes: torch.Tensor, taps: EdgeTaps | None, dist: torch.Tensor | None) -> torch.Tensor:
        if self.learned_shortcut:
            x_s = self.conv_s(self.norm_s(x, classes, dist), self.norm_s.instance_affine(taps, activate=False))
        else:
            x_s = x
        h = self.norm_0(x, classes, dist)
        dx = self.conv_0(F.leaky_relu(h, 0.2, inplace=True), self.norm_0.instance_affine(taps, activate=True))
        h = self.norm_1(dx, classes, dist)
        dx = self.conv_1(F.leaky_relu(h, 0.2, inplace=True), self.norm_1.instance_affine(taps, activate=True))
        return dx.add_(x_s)


class FastCLADEGenerator(nn.Module):
    """The inference-only twin of a :class:`CLADEGenerator` (see the module docstring).

    Shapes: ``index`` (N, H, W) int64 class indices at the output size; ``edges`` (N, 1, H, W) or
    None; ``z`` (N, z_dim) or None (VAE: sampled when None); ``dist`` (N, 2, H, W) or None (ICPE)
    → (N, 3, H, W) in [-1, 1].
    """

    def __init__(self, generator: CLADEGenerator, channels_last: bool = True):
        super().__init__()
        self.num_classes = generator.num_classes
        self.use_instance = generator.use_instance
        self.use_dist = generator.use_dist
        self.use_vae = generator.use_vae
        self.z_dim = generator.z_dim
        self.offsets_normalize = generator.offsets_normalize
        self.offsets_ignore = generator.offsets_ignore
        self.ngf = generator.ngf
        self.sw, self.sh = generator.sw, generator.sh
        self.upsampling = generator.upsampling
        self.channels_last = channels_last
        if self.use_vae:
            self.fc = copy.deepcopy(generator.fc).requires_grad_(False)
        else:
            self.fc = OneHotConv(plain_weight(generator.fc), generator.fc.bias, self.num_classes, self.use_instance)
        self.block_names = generator.block_names
        for name in self.block_names:
            self.add_module(name, FastCLADEResBlock(getattr(generator, name), self.use_instance))
        self.conv_img = plain_conv(generator.conv_img)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @classmethod
    def from_generator(cls, generator: CLADEGenerator, channels_last: bool = True) -> "FastCLADEGenerator":
        """Build from a generator, switched to eval mode (its weights are copied, not shared)."""
        return cls(generator.eval(), channels_last).eval()

    def forward(
        self,
        index: torch.Tensor,
        edges: torch.Tensor | None = None,
        z: torch.Tensor | None = None,
        dist: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.use_instance and edges is None:
            raise ValueError("this generator has an instance-edge channel: pass edges (N, 1, H, W)")
        if self.use_dist and dist is None:
            dist = offsets_of_index(index, self.offsets_normalize, self.offsets_ignore)
        dtype = self.conv_img.weight.dtype
        cache: dict[tuple[int, int], tuple] = {}

        def inputs_at(h: int, w: int) -> tuple:
            # One nearest resize of every input per resolution, shared by all layers there.
            if (h, w) not in cache:
                resized = [resize_index(index, (h, w))]
                for extra in (edges if self.use_instance else None, dist if self.use_dist else None):
                    if extra is not None:
                        extra = extra.to(dtype)
                        if tuple(extra.shape[-2:]) != (h, w):
                            extra = F.interpolate(extra, size=(h, w), mode="nearest")
                    resized.append(extra)
                if resized[1] is not None:
                    resized[1] = EdgeTaps(resized[1])
                cache[(h, w)] = tuple(resized)
            return cache[(h, w)]

        n = index.shape[0]
        if self.use_vae:
            if z is None:
                z = torch.randn(n, self.z_dim, device=index.device, dtype=dtype)
            x = self.fc(z.to(dtype)).view(n, 16 * self.ngf, self.sh, self.sw)
        else:
            small = resize_index(index, (self.sh, self.sw))
            edge_taps = None
            if self.use_instance:
                small_edges = F.interpolate(edges.to(dtype), size=(self.sh, self.sw), mode="nearest")
                edge_taps = tap_values(small_edges, 3)
            x = self.fc(tap_index(small, self.num_classes, 3), edge_taps)
            x = x.view(n, self.sh, self.sw, -1).permute(0, 3, 1, 2)
        x = x.contiguous(memory_format=torch.channels_last) if self.channels_last else x.contiguous()

        def run(name: str, x: torch.Tensor) -> torch.Tensor:
            return getattr(self, name)(x, *inputs_at(x.shape[-2], x.shape[-1]))

        x = run_blocks(x, self.upsampling, self.block_names, run)
        x = self.conv_img(F.leaky_relu(x, 0.2, inplace=True))
        return torch.tanh(x)

    def forward_semantics(
        self, semantics: torch.Tensor, z: torch.Tensor | None = None, dist: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Drop-in for ``CLADEGenerator.forward``: (N, L (+1), H, W) one-hot semantics → images."""
        index = semantics[:, : self.num_classes].argmax(dim=1)
        edges = semantics[:, self.num_classes :] if self.use_instance else None
        return self.forward(index, edges, z, dist)
