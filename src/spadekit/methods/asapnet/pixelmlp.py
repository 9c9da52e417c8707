"""ASAPNet's full-resolution stream: a tiny MLP per pixel whose weights come from the low-res stream.

Layout of a cell's parameter vector (the low-res stream's output channels), layer by layer: the
``nco`` biases, then the ``nci × nco`` weights in row-major order (channel ``w0 + i·nco + o`` is
the weight from input feature i to output feature o). Every pixel of a k×k tile uses the vector
of its low-res cell (nearest-neighbour upsampling of the parameter grid by k, no interpolation).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def mlp_channels(in_channels: int, width: int, depth: int, out_channels: int) -> list[int]:
    """``[in] + [width] * (depth − 1) + [out]``: the feature sizes of a ``depth``-layer pixel MLP."""
    return [in_channels] + [width] * (depth - 1) + [out_channels]


def parameter_slices(channels: list[int]) -> list[tuple[slice, slice]]:
    """(bias, weight) channel slices of every layer in a cell's parameter vector."""
    slices, start = [], 0
    for nci, nco in zip(channels[:-1], channels[1:]):
        bias = slice(start, start + nco)
        weight = slice(bias.stop, bias.stop + nci * nco)
        slices.append((bias, weight))
        start = weight.stop
    return slices


def positional_channels(period: int) -> int:
    """Channels of :func:`positional_encoding`: 4 per period S, S/2, …, 2."""
    count, f = 0, float(period)
    while f > 1:
        count, f = count + 4, f // 2
    return count


def positional_encoding(height: int, width: int, period: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Each pixel's position inside its tile as sinusoids: (1, 4·log2(S), H, W) float32.

    For f = S, S/2, …, 2 (lowest frequency first): cos and sin of 2π·(x mod f)/f, then of
    2π·(y mod f)/f, with x the column and y the row index. Computed in float32 in the same order as
    the paper's code (the constant 2π times the remainder, then divided by f).
    """
    xs = torch.arange(width, dtype=torch.float32, device=device)
    ys = torch.arange(height, dtype=torch.float32, device=device)
    maps, f = [], float(period)
    while f > 1:
        ax = 2 * math.pi * torch.remainder(xs, f) / f
        ay = 2 * math.pi * torch.remainder(ys, f) / f
        for values, along_x in ((ax.cos(), True), (ax.sin(), True), (ay.cos(), False), (ay.sin(), False)):
            maps.append(values.view(1, width).expand(height, width) if along_x else values.view(height, 1).expand(height, width))
        f //= 2
    return torch.stack(maps)[None] if maps else torch.zeros(1, 0, height, width, device=device)


class PixelMLP(nn.Module):
    """The per-pixel MLP, run at full resolution with the per-cell parameters of the low-res stream.

    Each pixel's features (its input channels, then the positional encoding when ``positional``)
    go through ``depth`` affine layers with LeakyReLU(0.01) between them and tanh at the end.
    Holds no parameters; the positional encoding is computed on first use and cached (not saved).

    Args:
        in_channels: input channels reaching this stream (without the positional encoding).
        out_channels: output channels (3 for RGB).
        width, depth: hidden width and number of layers (``hr_width``, ``hr_depth``).
        tile: the total downsampling factor S: each k×k tile (k = S) shares one parameter vector.
        positional: append the positional encoding (``hr_coor cosine``; False for ``None``).

    Shapes: ``x`` (N, in_channels, H, W), ``params`` (N, num_params, H / k, W / k) → (N, out, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int = 3, width: int = 64, depth: int = 5, tile: int = 16, positional: bool = True):
        super().__init__()
        if depth < 1:
            raise ValueError(f"the pixel MLP needs at least one layer, got depth {depth}")
        self.tile = tile
        self.positional = positional
        self.in_channels = in_channels
        self.out_channels = out_channels
        features = in_channels + (positional_channels(tile) if positional else 0)
        self.channels = mlp_channels(features, width, depth, out_channels)
        self.slices = parameter_slices(self.channels)
        self.num_params = self.slices[-1][1].stop
        self._encoding: tuple[tuple, torch.Tensor] | None = None

    def encoding(self, height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The cached (1, P, H, W) positional encoding for this size, device and dtype."""
        key = (height, width, device, dtype)
        if self._encoding is None or self._encoding[0] != key:
            self._encoding = (key, positional_encoding(height, width, self.tile, device).to(dtype))
        return self._encoding[1]

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        k = self.tile
        if params.shape[1] != self.num_params:
            raise ValueError(f"the pixel MLP takes {self.num_params} parameters per cell, got {params.shape[1]}")
        hl, wl = params.shape[-2:]
        if (h, w) != (hl * k, wl * k):
            raise ValueError(f"a {hl}×{wl} parameter grid with tile {k} covers {hl * k}×{wl * k} pixels, not {h}×{w}")
        if self.positional:
            x = torch.cat([x, self.encoding(h, w, x.device, x.dtype).expand(n, -1, -1, -1)], dim=1)
        # (N, C, H, W) → (N, h/k, w/k, k·k, C): the pixels of each tile as rows, features last.
        out = x.unfold(2, k, k).unfold(3, k, k).permute(0, 2, 3, 4, 5, 1).reshape(n, hl, wl, k * k, -1)
        last = len(self.slices) - 1
        for index, ((bias, weight), nci, nco) in enumerate(zip(self.slices, self.channels[:-1], self.channels[1:])):
            w_ = params[:, weight].permute(0, 2, 3, 1).reshape(n, hl, wl, nci, nco)
            b_ = params[:, bias].permute(0, 2, 3, 1).reshape(n, hl, wl, 1, nco)
            out = torch.matmul(out, w_) + b_
            out = torch.tanh(out) if index == last else F.leaky_relu(out, 0.01)
        # Tiles back into place, channels first.
        out = out.view(n, hl, wl, k, k, self.out_channels).permute(0, 5, 1, 3, 2, 4)
        return out.reshape(n, self.out_channels, h, w)
