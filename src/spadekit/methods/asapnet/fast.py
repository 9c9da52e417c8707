"""The optimised inference ASAPNet generator: the same images as :class:`ASAPNetGenerator`, less work.

Exact rewrites of the eval-mode network (outputs agree to float rounding):

* **The fixed pre-downsampling on class indices.** When the tile size exceeds the learned factor, the
  one-hot input goes through the separable tent filter first. Along the width, on one-hot rows, the
  filter is a weighted class histogram: each tap adds its weight to the bin of the class it reads
  (a ``scatter_add`` per tap on the index map), so the full-resolution one-hot is never built; along
  the height it is a weighted sum of strided row slices. Reflection padding reflects the index map.
* **Low-res stream:** spectral norm folded into plain convolutions, eval-mode batch norm folded into
  the preceding convolution. (It stays channels-first: on CPU, channels-last makes its instance norms
  and its wide convolutions on tiny maps slower, not faster.) When the stream sees the full-resolution
  one-hot input (no pre-downsampling), its first 3×3 convolution is a gather
  (:class:`spadekit.fast.OneHotConv`: one table row per tap and class, summed over the 9 taps;
  reflection padding reflects the class map instead of padding it with an empty class).
* **Pixel MLP without the one-hot product.** The first layer's input is one-hot classes (+ edges)
  and the positional code, so ``x·W = W[class] + edge·W[edge] + pos·W[pos]``: a per-pixel gather
  of one weight row of its cell, plus a product with the positional part only. The positional code
  is the same in every tile (it is the position inside the tile), so it is a (k², P) matrix, not a
  full-resolution map.
* **Parameters predicted cell-major.** The final 1×1 conv of the low-res stream is one matrix
  product whose rows are the cells, so each cell's parameter vector is contiguous for the pixel MLP
  (no transposed copy of the low-res output).
* **The other layers as batched matrix products** (``bmm``) with each layer's weights gathered into
  one contiguous (cells, in, out) block first (a strided batch makes the CPU kernel copy every
  cell's matrix separately), and the positional part of the first layer as one matrix product.
* **A few cells at a time.** The MLP's layers are narrow (64 wide by default), so running each
  layer over the whole image is bound by memory traffic; the cells go through all layers in chunks
  of about 4096 pixels, whose activations stay in the CPU cache.

Input: class indices ``(N, H, W)`` int64 and the edge map ``(N, 1, H, W)`` instead of the one-hot
tensor; :meth:`FastASAPNetGenerator.forward_semantics` accepts one-hot semantics for drop-in use.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.fast import OneHotConv, plain_conv, tap_index, tap_values
from spadekit.methods.asapnet.generator import ASAPNetGenerator, check_tile_size
from spadekit.methods.asapnet.layers import TentDownsample
from spadekit.methods.asapnet.lowres import LowResBlock, LowResStream
from spadekit.methods.asapnet.pixelmlp import PixelMLP, positional_encoding


@torch.no_grad()
def _plain(layer: nn.Module) -> nn.Module:
    """A normalised conv (``Sequential(conv, norm)`` or a conv) without spectral norm, with
    eval-mode batch norm folded into the conv."""
    if isinstance(layer, nn.Conv2d):
        return plain_conv(layer)
    conv, norm = plain_conv(layer[0]), layer[1]
    if not (isinstance(norm, nn.modules.batchnorm._BatchNorm) and norm.running_mean is not None):
        return nn.Sequential(conv, copy.deepcopy(norm))
    scale = torch.rsqrt(norm.running_var + norm.eps) * norm.weight
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding).to(conv.weight.device)
    folded.weight.copy_(conv.weight * scale[:, None, None, None])
    bias = conv.bias if conv.bias is not None else torch.zeros_like(scale)
    folded.bias.copy_((bias - norm.running_mean) * scale + norm.bias)
    return folded.requires_grad_(False)


def _flat_layers(stream: LowResStream) -> list[nn.Module]:
    """The stream's layers in order, blocks unrolled, every normalised conv made plain."""
    layers: list[nn.Module] = []
    for module in stream.model:
        inner = module.conv_block if isinstance(module, LowResBlock) else [module]
        for layer in inner:
            is_conv = isinstance(layer, nn.Conv2d) or (isinstance(layer, nn.Sequential) and isinstance(layer[0], nn.Conv2d))
            layers.append(_plain(layer) if is_conv else copy.deepcopy(layer))
    return layers


def reflect_tap_index(index: torch.Tensor, num_classes: int, kernel: int) -> torch.Tensor:
    """:func:`spadekit.fast.tap_index` for reflection padding: taps outside the map read the mirrored class."""
    n, h, w = index.shape
    p = kernel // 2
    padded = F.pad(index[:, None].float(), (p, p, p, p), mode="reflect")[:, 0].int()
    taps = [padded[:, dy : dy + h, dx : dx + w] for dy in range(kernel) for dx in range(kernel)]
    offsets = torch.arange(kernel * kernel, device=index.device, dtype=torch.int32) * (num_classes + 1)
    return (torch.stack(taps, dim=-1) + offsets).reshape(n * h * w, kernel * kernel)


def reflect_tap_values(edges: torch.Tensor, kernel: int) -> torch.Tensor:
    """:func:`spadekit.fast.tap_values` for reflection padding."""
    n, _, h, w = edges.shape
    p = kernel // 2
    padded = F.pad(edges, (p, p, p, p), mode="reflect")[:, 0]
    taps = [padded[:, dy : dy + h, dx : dx + w] for dy in range(kernel) for dx in range(kernel)]
    return torch.stack(taps, dim=-1).reshape(n * h * w, kernel * kernel)


class FastTent(nn.Module):
    """:class:`~spadekit.methods.asapnet.layers.TentDownsample` of ``[one-hot(index), edges?]`` without
    building the one-hot (see the module docstring).

    Forward: ``index`` (N, H, W), ``edges`` (N, 1, H, W) or None, ``dtype`` → (N, C (+1), H / s, W / s).
    """

    def __init__(self, tent: TentDownsample, num_classes: int, has_edge: bool):
        super().__init__()
        self.stride = tent.stride
        self.num_classes = num_classes
        self.has_edge = has_edge
        self.register_buffer("kernel", tent.kernel_w.detach()[0, 0, 0].clone(), persistent=False)

    def _rows(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The filter along the height with stride s: (..., H + 2p, w) → ``out`` (..., H / s, w)."""
        s, taps = self.stride, self.kernel.tolist()
        rows = out.shape[-2]
        for t, weight in enumerate(taps):
            part = x[..., t : t + s * (rows - 1) + 1 : s, :]
            if t == 0:
                torch.mul(part, weight, out=out)
            else:
                out.add_(part, alpha=weight)
        return out

    def forward(self, index: torch.Tensor, edges: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        n, h, w = index.shape
        s, p = self.stride, self.stride // 2
        ho, wo = h // s, w // s
        kernel = self.kernel.to(dtype)
        padded = F.pad(index[:, None].to(dtype), (p, p, p, p), mode="reflect")[:, 0].long()
        # Along the width: every tap adds its weight to the class it reads, per padded row and output column.
        histogram = torch.zeros(n, self.num_classes, h + 2 * p, wo, dtype=dtype, device=index.device)
        for t in range(2 * s):
            classes = padded[:, :, t : t + s * (wo - 1) + 1 : s].unsqueeze(1)
            histogram.scatter_add_(1, classes, kernel[t].expand(classes.shape))
        out = torch.empty(n, self.num_classes + int(self.has_edge), ho, wo, dtype=dtype, device=index.device)
        self._rows(histogram, out[:, : self.num_classes])
        if self.has_edge:
            e = F.pad(edges.to(dtype), (p, p, p, p), mode="reflect")[:, 0]
            across = torch.zeros(n, h + 2 * p, wo, dtype=dtype, device=index.device)
            for t, weight in enumerate(kernel.tolist()):
                across.add_(e[:, :, t : t + s * (wo - 1) + 1 : s], alpha=weight)
            self._rows(across, out[:, self.num_classes])
        return out


class FastLowResStream(nn.Module):
    """Inference form of :class:`LowResStream`; with ``gather`` the first conv reads class indices.

    Forward (gather): ``index`` (N, H, W), ``edges`` (N, 1, H, W) or None; otherwise the dense
    input (N, C, h, w) → (N, num_params, H / S2, W / S2).
    """

    def __init__(self, stream: LowResStream, num_classes: int, has_edge: bool, gather: bool):
        super().__init__()
        layers = _flat_layers(stream)
        self.gather = gather
        self.num_classes = num_classes
        self.reflect = isinstance(layers[0], nn.ReflectionPad2d)
        if gather:
            start = int(self.reflect)
            first = layers[start]
            conv = first if isinstance(first, nn.Conv2d) else first[0]
            self.head = OneHotConv(conv.weight, conv.bias, num_classes, has_edge)
            self.head_norm = first[1] if isinstance(first, nn.Sequential) else nn.Identity()
            layers = layers[start + 1 :]
        final = layers.pop()  # the 1x1 parameter predictor, run as a matrix product over cells
        self.body = nn.Sequential(*layers)
        self.register_buffer("predictor_weight", final.weight.detach().flatten(1).t().contiguous())
        self.register_buffer("predictor_bias", final.bias.detach().clone())

    def forward(self, x: torch.Tensor, edges: torch.Tensor | None = None) -> torch.Tensor:
        """The parameters (N, num_params, H / S2, W / S2), a channels-last view of cell-major rows."""
        features = self.features(x, edges)
        n, c, h, w = features.shape
        rows = torch.addmm(self.predictor_bias, features.permute(0, 2, 3, 1).reshape(n * h * w, c), self.predictor_weight)
        return rows.view(n, h, w, -1).permute(0, 3, 1, 2)

    def features(self, x: torch.Tensor, edges: torch.Tensor | None = None) -> torch.Tensor:
        if self.gather:
            n, h, w = x.shape
            if self.reflect:
                taps = reflect_tap_index(x, self.num_classes, 3)
                edge_taps = reflect_tap_values(edges, 3) if edges is not None else None
            else:
                taps = tap_index(x, self.num_classes, 3)
                edge_taps = tap_values(edges, 3) if edges is not None else None
            x = self.head_norm(self.head(taps, edge_taps).view(n, h, w, -1).permute(0, 3, 1, 2).contiguous())
        return self.body(x)


class FastPixelMLP(nn.Module):
    """Inference form of :class:`PixelMLP` on class indices (see the module docstring).

    Args:
        mlp: the pixel MLP.
        num_classes: one-hot channels L of the semantics.
        input_channels: semantic channels that reach the MLP (L (+1 edge), minus one with ``lr_instance``).
        channels_last: return the image in channels-last memory layout (same values).

    Forward: ``index`` (N, H, W), ``edges`` (N, 1, H, W) or None, ``params`` (N, num_params, H / k, W / k)
    → (N, out, H, W).
    """

    def __init__(self, mlp: PixelMLP, num_classes: int, input_channels: int, channels_last: bool):
        super().__init__()
        self.tile = mlp.tile
        self.channels = mlp.channels
        self.slices = mlp.slices
        self.num_params = mlp.num_params
        self.out_channels = mlp.out_channels
        self.num_classes = num_classes
        self.channels_last = channels_last
        # Class channels present in the MLP input (lr_instance may drop the last class), and the edge channel.
        self.present_classes = min(num_classes, input_channels)
        self.edge_in_mlp = input_channels > num_classes
        self.label_rows = input_channels
        positional = positional_encoding(self.tile, self.tile, self.tile) if mlp.positional else None
        # The code of the first tile is the code of every tile: a (k², P) matrix.
        self.register_buffer("code", None if positional is None else positional[0].flatten(1).t().contiguous(), persistent=False)

    def forward(self, index: torch.Tensor, edges: torch.Tensor | None, params: torch.Tensor) -> torch.Tensor:
        n, h, w = index.shape
        k = self.tile
        hl, wl = params.shape[-2:]
        cells = n * hl * wl
        # Cell-major parameters: row c holds the vector of cell c = (n, row, column) (free when the
        # low-res stream made them cell-major).
        flat = params.permute(0, 2, 3, 1).reshape(cells, self.num_params)
        # Pixel indices tile by tile: (N, H, W) → (cells, k²).
        tiles = index.view(n, hl, k, wl, k).permute(0, 1, 3, 2, 4).reshape(cells, k * k)
        edge_tiles = None
        if self.edge_in_mlp:
            edge_tiles = edges.view(n, hl, k, wl, k).permute(0, 1, 3, 2, 4).reshape(cells, k * k, 1).to(flat.dtype)
        out = torch.empty(cells, k * k, self.out_channels, dtype=flat.dtype, device=flat.device)
        # A few cells at a time: every layer's activations stay in the CPU cache (the layers are
        # narrow, so a whole-image pass per layer is bound by memory traffic, not arithmetic).
        step = max(1, self.CHUNK_PIXELS // (k * k))
        for start in range(0, cells, step):
            part = slice(start, min(cells, start + step))
            out[part] = self._cells(flat[part], tiles[part], edge_tiles[part] if edge_tiles is not None else None)
        out = out.view(n, hl, wl, k, k, self.out_channels)
        if self.channels_last:
            return out.permute(0, 1, 3, 2, 4, 5).reshape(n, h, w, self.out_channels).permute(0, 3, 1, 2)
        return out.permute(0, 5, 1, 3, 2, 4).reshape(n, self.out_channels, h, w)

    CHUNK_PIXELS = 4096
    """Pixels per chunk of cells (a 64-wide activation of 4096 pixels is 1 MiB)."""

    def _cells(self, flat: torch.Tensor, tiles: torch.Tensor, edge_tiles: torch.Tensor | None) -> torch.Tensor:
        """The MLP of ``c`` cells: parameters (c, P), class indices (c, k²), edges (c, k², 1) → (c, k², out)."""
        cells, pixels = tiles.shape
        (bias, weight), nco = self.slices[0], self.channels[1]
        w1 = flat[:, weight].view(cells, self.channels[0], nco)
        table = w1[:, : self.present_classes]
        if self.present_classes < self.num_classes:
            # A class that lr_instance dropped from the MLP input contributes nothing.
            table = F.pad(table, (0, 0, 0, self.num_classes - self.present_classes))
        rows = tiles + torch.arange(cells, device=tiles.device)[:, None] * self.num_classes
        out = F.embedding(rows, table.reshape(cells * self.num_classes, nco))
        out += flat[:, bias].unsqueeze(1)
        if edge_tiles is not None:
            out.addcmul_(edge_tiles, w1[:, self.num_classes].unsqueeze(1))
        if self.code is not None:
            # code (k², P) times every cell's (P, out) block at once: one (k², P) x (P, cells·out) product.
            positional = w1[:, self.label_rows :].permute(1, 0, 2).reshape(-1, cells * nco)
            out += (self.code.to(out.dtype) @ positional).view(pixels, cells, nco).transpose(0, 1)
        last = len(self.slices) - 1
        for layer in range(len(self.slices)):
            if layer:
                (bias, weight), nci, nco = self.slices[layer], self.channels[layer], self.channels[layer + 1]
                matrices = flat[:, weight].contiguous().view(cells, nci, nco)
                out = torch.bmm(out, matrices).add_(flat[:, bias].unsqueeze(1))
            out = out.tanh_() if layer == last else F.leaky_relu(out, 0.01, inplace=True)
        return out


class FastASAPNetGenerator(nn.Module):
    """The inference-only twin of an :class:`ASAPNetGenerator` (see the module docstring).

    Args:
        generator: the generator (its weights are copied).
        num_classes: one-hot channels L; ``has_edge``: an instance-edge channel follows them.
        channels_last: return the image in channels-last memory layout (same values).

    Shapes: ``index`` (N, H, W) int64 class indices; ``edges`` (N, 1, H, W) or None →
    (N, output_nc, H, W) in [-1, 1].
    """

    def __init__(self, generator: ASAPNetGenerator, num_classes: int, has_edge: bool, channels_last: bool = True):
        super().__init__()
        if generator.semantic_nc != num_classes + int(has_edge):
            raise ValueError(f"generator takes {generator.semantic_nc} channels, not {num_classes} classes + edge={has_edge}")
        self.num_classes = num_classes
        self.has_edge = has_edge
        self.downsampling = generator.downsampling
        self.pre_downsample = (
            FastTent(generator.pre_downsample, num_classes, has_edge) if generator.pre_downsample is not None else None
        )
        gather = self.pre_downsample is None
        self.lowres_stream = FastLowResStream(generator.lowres_stream, num_classes, has_edge, gather)
        hr_inputs = generator.semantic_nc - int(generator.lr_instance)
        self.highres_stream = FastPixelMLP(generator.highres_stream, num_classes, hr_inputs, channels_last)

    @classmethod
    def from_generator(cls, generator: ASAPNetGenerator, num_classes: int, has_edge: bool, channels_last: bool = True) -> "FastASAPNetGenerator":
        """Build from a generator, switched to eval mode (the original keeps its weights)."""
        return cls(generator.eval(), num_classes, has_edge, channels_last).eval()

    def predict_parameters(self, index: torch.Tensor, edges: torch.Tensor | None = None) -> torch.Tensor:
        """The per-cell MLP parameters (N, num_params, H / S, W / S)."""
        if self.has_edge and edges is None:
            raise ValueError("this generator has an instance-edge channel: pass edges (N, 1, H, W)")
        check_tile_size(self.downsampling, index.shape[-2], index.shape[-1])
        dtype = next(self.lowres_stream.parameters()).dtype
        if self.pre_downsample is None:
            return self.lowres_stream(index, edges.to(dtype) if edges is not None else None)
        return self.lowres_stream(self.pre_downsample(index, edges, dtype))

    def forward(self, index: torch.Tensor, edges: torch.Tensor | None = None, z: torch.Tensor | None = None) -> torch.Tensor:
        """``z`` is accepted for the common generator interface and ignored."""
        params = self.predict_parameters(index, edges)
        return self.highres_stream(index, edges, params)

    def forward_semantics(self, semantics: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Drop-in for ``ASAPNetGenerator.forward``: (N, L (+1), H, W) one-hot semantics → images."""
        index = semantics[:, : self.num_classes].argmax(dim=1)
        edges = semantics[:, self.num_classes :] if self.has_edge else None
        return self.forward(index, edges, z)
