"""Label maps as class indices: SPADE's modulation without the one-hot tensor, and band-sparse.

SPADE computes ``gamma, beta = conv_gb(relu(conv_shared(seg)))`` from the one-hot semantics
``seg`` at every resolution. Two exact rewrites make that cheaper; both give the same numbers up
to the order of float summation, in the forward pass and in every gradient:

* **The one-hot convolution as a gather.** ``conv_shared`` sees one-hot classes, so its output at
  a pixel is the sum over the k² taps of one weight column each: row ``t·(C+1) + class`` of a
  table (:func:`one_hot_table`), summed by ``embedding_bag``. Taps outside the map read the zero
  row ``t·(C+1) + C``; the bias sits in the centre tap's rows (the centre is never outside). Its
  weight gradient is the matching scatter: every pixel adds its output gradient to the k² rows it
  read (:class:`OneHotGather`), instead of a dense correlation over all S input channels. The
  instance-edge channel is a float map, so it stays a small dense term (k² → hidden).
* **Band-sparse modulation.** A label map is piecewise constant. Where every pixel within
  ``r = r_shared + r_gb`` (the two kernels' radii) has the same class, no instance edge and lies
  inside the map, ``gamma/beta`` at that pixel depend on its class alone: ``h_c = relu(Σ_t
  table[t, c])`` and ``gb_c = b + (Σ_t W_t) h_c``, one vector per class (as in CLADE). Only the
  *band* of other pixels needs the k×k convolution, computed there as gathered windows times the
  weight matrix (:class:`BandModulation`). Its backward is exact as well: the weight gradient of
  the constant pixels is ``(Σ of their output gradients per class) ⊗ h_c`` for every tap, and
  their hidden gradient flows to the table through ``h_c``.

:class:`Layout` holds the class indices (and edges) of a batch and caches, per resolution, the
resized indices, tap rows and band (resizing is nearest, the rule of ``F.interpolate`` on the
one-hot tensor, so each level equals the official resized semantics). Generators build one per
forward pass and hand it to every SPADE layer in place of the one-hot tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

BAND_MIN_PIXELS = 64 * 64
"""Levels smaller than this (per image) never take the band path: there its fixed costs (finding
the band, grouping neighbourhoods) outweigh the convolution it saves."""

BAND_CHUNK = 8192
"""Band pixels per gathered block: bounds the (pixels, k²·hidden) window buffer (~38 MiB at hidden 128)."""


def resize_index(index: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, H, W) indices → (N, h, w) with the same nearest rule as ``F.interpolate(semantics, 'nearest')``."""
    if tuple(index.shape[-2:]) == tuple(size):
        return index
    return F.interpolate(index[:, None].float(), size=size, mode="nearest")[:, 0].long()


def tap_index(index: torch.Tensor, num_classes: int, kernel: int) -> torch.Tensor:
    """Row numbers into a :func:`one_hot_table`: (N, H, W) indices → (N·H·W, k²) int32.

    Row ``t·(C+1) + c`` holds the weights of class ``c`` at tap ``t``; taps outside the map
    point at the zero row ``t·(C+1) + C``.
    """
    n, h, w = index.shape
    p = kernel // 2
    # int32 halves the memory of the largest temporary (k² indices per pixel) at no cost in speed.
    padded = F.pad(index.int(), (p, p, p, p), value=num_classes)
    taps = [padded[:, dy : dy + h, dx : dx + w] for dy in range(kernel) for dx in range(kernel)]
    offsets = torch.arange(kernel * kernel, device=index.device, dtype=torch.int32) * (num_classes + 1)
    return (torch.stack(taps, dim=-1) + offsets).reshape(n * h * w, kernel * kernel)


def tap_values(edges: torch.Tensor, kernel: int) -> torch.Tensor:
    """The k×k neighbourhood of every pixel of a 1-channel map: (N, 1, H, W) → (N·H·W, k²), zero outside."""
    n, _, h, w = edges.shape
    p = kernel // 2
    padded = F.pad(edges[:, 0], (p, p, p, p))
    taps = [padded[:, dy : dy + h, dx : dx + w] for dy in range(kernel) for dx in range(kernel)]
    return torch.stack(taps, dim=-1).reshape(n * h * w, kernel * kernel)


def one_hot_table(weight: torch.Tensor, bias: torch.Tensor | None, num_classes: int) -> torch.Tensor:
    """A conv weight over one-hot classes as gather rows: (O, C (+edge), k, k) → (k²·(C+1), O).

    Differentiable: gradients of the rows flow back to ``weight`` and ``bias``."""
    out_channels, _, k, _ = weight.shape
    table = weight[:, :num_classes].permute(2, 3, 1, 0).reshape(k * k, num_classes, out_channels)
    table = F.pad(table, (0, 0, 0, 1))  # the zero row of out-of-map taps
    if bias is not None:
        centre = torch.zeros(k * k, num_classes + 1, 1, dtype=weight.dtype, device=weight.device)
        centre[(k * k) // 2, :num_classes] = 1.0
        table = table + centre * bias
    return table.reshape(k * k * (num_classes + 1), out_channels)


def edge_rows(weight: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The instance-edge channel of a conv weight as a (k², O) matrix (differentiable)."""
    out_channels, _, k, _ = weight.shape
    return weight[:, num_classes].permute(1, 2, 0).reshape(k * k, out_channels)


def window_matrix(weight: torch.Tensor) -> torch.Tensor:
    """(O, I, k, k) conv weight → (k²·I, O): the matrix that multiplies gathered k×k windows."""
    out_channels, in_channels, k, _ = weight.shape
    return weight.permute(2, 3, 1, 0).reshape(k * k * in_channels, out_channels)


@dataclass
class Band:
    """Where a layer's modulation needs its convolutions, at one resolution.

    Flat pixel indices are into the level's (N·h·w) pixels in row-major (N, h, w) order. Band
    pixels whose neighbourhoods (labels, edges and map border within the band radius) are equal
    have equal gamma/beta, so the convolution runs once per distinct neighbourhood (a
    *representative* pixel) and its row is copied to the others; in the backward their gradients
    are summed first. Both are exact: identical inputs, identical outputs.
    """

    pixels: torch.Tensor
    """(P,) int64 band pixels (the rest take their class's constant)."""
    in_band: torch.Tensor
    """(N·h·w,) bool: whether each pixel is in the band."""
    classes: torch.Tensor
    """(K,) int64 the classes present at this level."""
    slot: torch.Tensor
    """(N·h·w,) int64 each pixel's position in ``classes``."""
    pattern: torch.Tensor
    """(P,) int64 each band pixel's representative (a row of ``windows``)."""
    representatives: torch.Tensor
    """(U,) int64 one band pixel per distinct neighbourhood."""
    support: torch.Tensor
    """(Q,) int64 pixels whose hidden features the representatives' windows read."""
    windows: torch.Tensor
    """(U, k²) int64 rows into the support's hidden features (row Q = zeros: outside the map)."""
    fraction: float
    """P / (N·h·w): the share of pixels in the band."""
    work: float
    """U / (N·h·w): the share of pixels whose convolution is computed."""


def _windows_of(pixels: torch.Tensor, flat_map: torch.Tensor, shape: tuple[int, int, int], radius: int, fill) -> torch.Tensor:
    """(len(pixels), (2r+1)²) values of ``flat_map`` (N·h·w,) in the window around each pixel,
    ``fill`` outside the map (tap order: row-major dy, dx)."""
    n, h, w = shape
    padded = F.pad(flat_map.view(n, h, w), (radius,) * 4, value=fill)
    hp, wp = h + 2 * radius, w + 2 * radius
    b, rem = pixels // (h * w), pixels % (h * w)
    top_left = b * (hp * wp) + (rem // w) * wp + rem % w
    k = 2 * radius + 1
    dy, dx = torch.meshgrid(torch.arange(k, device=pixels.device), torch.arange(k, device=pixels.device), indexing="ij")
    return padded.reshape(-1)[top_left[:, None] + (dy * wp + dx).reshape(-1)[None, :]]


def _row_groups(keys: torch.Tensor) -> torch.Tensor:
    """Group ids of the distinct rows of a (P, D) tensor (exact). Integer rows are folded a few
    columns at a time into one int64 and refined with 1-D ``unique`` (``unique(dim=0)`` compares
    rows one by one on the CPU, ~40x slower here)."""
    low = int(keys.min()) if not keys.is_floating_point() else 0
    span_bits = (int(keys.max()) - low).bit_length() if not keys.is_floating_point() else 64
    if span_bits > 30:
        return torch.unique(keys, dim=0, return_inverse=True)[1]
    columns = (keys - low).t()
    group = torch.zeros(keys.shape[0], dtype=torch.int64, device=keys.device)
    groups, start = 1, 0
    while start < columns.shape[0]:
        take = max(1, (62 - groups.bit_length()) // span_bits)
        combined = group
        for column in columns[start : start + take]:
            combined = (combined << span_bits) | column
        uniques, group = torch.unique(combined, return_inverse=True)
        groups, start = uniques.numel(), start + take
    return group


def _distinct_neighbourhoods(index: torch.Tensor, edges: torch.Tensor | None, pixels: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(pattern, representatives): band pixels grouped by their labels, edges and in-map flags
    within ``radius`` (exact comparison)."""
    shape = tuple(index.shape)
    labels = _windows_of(pixels, index.reshape(-1), shape, radius, -1)  # -1: outside the map
    if edges is None:
        keys = labels
    else:
        values = _windows_of(pixels, edges.reshape(-1), shape, radius, 0)
        if bool(((values == 0) | (values == 1)).all()):
            keys = labels * 2 + values.long()  # 0/1 edges fold into the label key
        else:
            keys = torch.cat([labels.double(), values.double()], dim=1)
    if keys.shape[0] == 0:
        return keys.new_zeros(0, dtype=torch.int64), pixels
    pattern = _row_groups(keys)
    count = int(pattern.max()) + 1
    order = torch.arange(pixels.numel(), device=pixels.device)
    first = torch.full((count,), pixels.numel(), dtype=torch.int64, device=pixels.device).scatter_reduce_(0, pattern, order, "amin")
    return pattern, pixels[first]


def make_band(index: torch.Tensor, edges: torch.Tensor | None, radius_shared: int, radius_gb: int) -> Band:
    """The band of a (N, h, w) index map (see the module docstring)."""
    n, h, w = index.shape
    radius = radius_shared + radius_gb
    device = index.device
    if radius == 0:
        band = torch.zeros(n, h, w, dtype=torch.bool, device=device)
    else:
        labels = index[:, None].float()
        size = 2 * radius + 1
        high = F.max_pool2d(labels, size, 1, radius)
        low = -F.max_pool2d(-labels, size, 1, radius)
        band = (high != low)[:, 0]
        if edges is not None:
            band |= F.max_pool2d((edges != 0).float(), size, 1, radius)[:, 0] > 0
        band[:, :radius] = True
        band[:, max(h - radius, 0) :] = True
        band[:, :, :radius] = True
        band[:, :, max(w - radius, 0) :] = True
    flat = band.reshape(-1)
    pixels = flat.nonzero()[:, 0]
    classes, slot = torch.unique(index.reshape(-1), return_inverse=True)
    pattern, representatives = _distinct_neighbourhoods(index, edges, pixels, radius)
    chosen = torch.zeros_like(flat)
    chosen[representatives] = True
    if radius_gb:
        support_mask = F.max_pool2d(chosen.view(n, 1, h, w).float(), 2 * radius_gb + 1, 1, radius_gb)[:, 0] > 0
    else:
        support_mask = chosen.view(n, h, w)
    support = support_mask.reshape(-1).nonzero()[:, 0]
    # Compact row of every position: the support's pixels in order, everything else the zero row.
    q = support.numel()
    compact = torch.full((n * h * w,), q, dtype=torch.int64, device=device)
    compact[support] = torch.arange(q, device=device)
    windows = _windows_of(representatives, compact, (n, h, w), radius_gb, q)
    total = max(flat.numel(), 1)
    return Band(
        pixels, flat, classes, slot.reshape(-1), pattern, representatives, support, windows,
        pixels.numel() / total, representatives.numel() / total,
    )


class LayoutLevel:
    """A :class:`Layout` at one resolution: indices, tap rows, edge taps and (lazily) bands."""

    def __init__(self, index: torch.Tensor, edges: torch.Tensor | None, num_classes: int, kernel: int, dtype: torch.dtype):
        self.index = index
        self.edges = edges
        self.kernel = kernel
        self.taps = tap_index(index, num_classes, kernel)
        self.edge_taps = tap_values(edges.to(dtype), kernel) if edges is not None else None
        self._bands: dict[int, Band] = {}

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.index.shape)  # type: ignore[return-value]

    def band(self, kernel_gb: int) -> Band:
        """The band for a modulation whose gamma/beta convolution has kernel ``kernel_gb``."""
        if kernel_gb not in self._bands:
            self._bands[kernel_gb] = make_band(self.index, self.edges, self.kernel // 2, kernel_gb // 2)
        return self._bands[kernel_gb]


class Layout:
    """Class indices (N, H, W) int64 (values ``0 .. num_classes-1``) and optional instance edges
    (N, 1, H, W) float of a batch, standing in for its one-hot semantics
    ``[one_hot(index, num_classes), edges]`` in SPADE layers.

    Args:
        band_threshold: a level uses the band-sparse modulation when its band covers at most this
            fraction of the pixels (0 disables it: gather plus dense convolution everywhere).
    """

    def __init__(self, index: torch.Tensor, edges: torch.Tensor | None, num_classes: int, band_threshold: float = 0.5):
        self.index = index
        self.edges = edges
        self.num_classes = num_classes
        self.band_threshold = band_threshold
        self.dtype = edges.dtype if edges is not None else torch.float32
        """The dtype of the semantics this layout stands for."""
        self._levels: dict[tuple[int, int, int, torch.dtype], LayoutLevel] = {}

    @classmethod
    def from_semantics(cls, semantics: torch.Tensor, num_classes: int, band_threshold: float = 0.5) -> "Layout | None":
        """The layout of one-hot semantics (N, C (+1 edge), H, W), or None when the first C channels
        are not exactly one-hot (soft labels): callers then use the dense path."""
        if semantics.dim() != 4 or semantics.shape[1] not in (num_classes, num_classes + 1) or semantics.requires_grad:
            return None
        with torch.no_grad():
            classes = semantics[:, :num_classes]
            index = classes.argmax(dim=1)
            picked = classes.gather(1, index[:, None])
            if not (bool((picked == 1).all()) and bool((classes.sum(dim=1) == 1).all()) and bool((classes >= 0).all())):
                return None
        edges = semantics[:, num_classes:] if semantics.shape[1] == num_classes + 1 else None
        layout = cls(index, edges, num_classes, band_threshold)
        layout.dtype = semantics.dtype
        return layout

    @property
    def has_edge(self) -> bool:
        return self.edges is not None

    def level(self, size: tuple[int, int], kernel: int, dtype: torch.dtype) -> LayoutLevel:
        key = (int(size[0]), int(size[1]), kernel, dtype)
        if key not in self._levels:
            index = resize_index(self.index, size)
            edges = None
            if self.edges is not None:
                edges = self.edges if tuple(self.edges.shape[-2:]) == tuple(size) else F.interpolate(self.edges, size=size, mode="nearest")
            self._levels[key] = LayoutLevel(index, edges, self.num_classes, kernel, dtype)
        return self._levels[key]

    def semantics(self, size: tuple[int, int] | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The one-hot tensor this layout stands for, at ``size`` (nearest), e.g. for a generator's first layer."""
        index = self.index if size is None else resize_index(self.index, size)
        n, h, w = index.shape
        out = torch.zeros(n, self.num_classes, h, w, dtype=dtype, device=index.device)
        out.scatter_(1, index[:, None], 1.0)
        if self.edges is not None:
            edges = self.edges if size is None or tuple(self.edges.shape[-2:]) == tuple(size) else F.interpolate(self.edges, size=size, mode="nearest")
            out = torch.cat([out, edges.to(dtype)], dim=1)
        return out


def _scatter_rows(table_rows: int, taps: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """The weight gradient of a gather: every pixel adds its gradient to each row it read."""
    out = grad.new_zeros(table_rows, grad.shape[1])
    taps = taps.long()
    for t in range(taps.shape[1]):
        out.index_add_(0, taps[:, t], grad)
    return out


class OneHotGather(torch.autograd.Function):
    """``embedding_bag(taps, table, 'sum')`` with a backward that scatters into the table only
    (the taps are indices: no input gradient). (M, k²) int taps, (R, O) table → (M, O)."""

    @staticmethod
    def forward(ctx, taps: torch.Tensor, table: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(taps)
        ctx.rows = table.shape[0]
        return F.embedding_bag(taps, table, mode="sum")

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (taps,) = ctx.saved_tensors
        return None, _scatter_rows(ctx.rows, taps, grad.contiguous())


def _band_hidden(level: LayoutLevel, band: Band, table: torch.Tensor, edge_weight: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(pre-activation, hidden + a zero row) of the shared convolution at the band's support."""
    pre = F.embedding_bag(level.taps[band.support], table, mode="sum")
    if edge_weight is not None:
        pre = torch.addmm(pre, level.edge_taps[band.support], edge_weight)
    hidden = torch.cat([pre.relu(), pre.new_zeros(1, pre.shape[1])])
    return pre, hidden


def band_rows(
    level: LayoutLevel,
    band: Band,
    table: torch.Tensor,
    edge_weight: torch.Tensor | None,
    matrix: torch.Tensor,
    bias: torch.Tensor,
    class_values: torch.Tensor,
) -> torch.Tensor:
    """Forward of the band-sparse modulation with the per-class values given: (N·h·w, 2C) rows.

    ``class_values``: (K, 2C) gamma/beta of the band's classes away from boundaries."""
    _, hidden = _band_hidden(level, band, table, edge_weight)
    out = F.embedding(band.slot, class_values)
    out[band.pixels] = _representative_rows(hidden, band, matrix, bias)[band.pattern]
    return out


def _representative_rows(hidden: torch.Tensor, band: Band, matrix: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(U, 2C) gamma/beta of the band's representatives: gathered windows times the matrix."""
    rows = hidden.new_empty(band.windows.shape[0], matrix.shape[1])
    for start in range(0, rows.shape[0], BAND_CHUNK):
        sl = slice(start, start + BAND_CHUNK)
        torch.addmm(bias, hidden[band.windows[sl]].flatten(1), matrix, out=rows[sl])
    return rows


def class_constants(table: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, classes: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(pre_c, h_c, gb_c) of ``classes``: the shared conv's pre-activation and hidden vector of a
    pixel deep inside a region of class c, and its gamma/beta (see the module docstring)."""
    taps = table.shape[0] // (num_classes + 1)
    pre = table.view(taps, num_classes + 1, table.shape[1])[:, classes].sum(0)
    h = pre.relu()
    return pre, h, torch.addmm(bias, h, weight.sum((2, 3)).t())


class BandModulation(torch.autograd.Function):
    """Band-sparse ``conv_gb(relu(conv_shared(one_hot)))`` → gamma rows and beta rows, each
    (N·h·w, C), with its exact backward (two outputs, so their gradients arrive without a
    zero-filled concatenation).

    Inputs: the shared conv as ``table`` (:func:`one_hot_table`) and ``edge_weight`` (or None),
    the gamma/beta conv ``weight`` (2C, hidden, k, k) and ``bias`` (2C,), then the level and band.
    """

    @staticmethod
    def forward(ctx, table, edge_weight, weight_gamma, weight_beta, bias, level: LayoutLevel, band: Band, num_classes: int):  # type: ignore[override]
        # The two weights come separately so that only the parameters themselves are kept for the
        # backward (a concatenated copy would be saved: ~100 MiB for a COCO-size generator).
        weight = torch.cat([weight_gamma, weight_beta])
        pre_c, h_c, values = class_constants(table, weight, bias, band.classes, num_classes)
        _, hidden = _band_hidden(level, band, table, edge_weight)
        matrix = window_matrix(weight)
        channels = weight.shape[0] // 2
        gamma = F.embedding(band.slot, values[:, :channels])
        beta = F.embedding(band.slot, values[:, channels:])
        rows = _representative_rows(hidden, band, matrix, bias)[band.pattern]
        gamma[band.pixels] = rows[:, :channels]
        beta[band.pixels] = rows[:, channels:]
        ctx.save_for_backward(weight_gamma, weight_beta, hidden, pre_c, h_c)
        ctx.level, ctx.band, ctx.num_classes = level, band, num_classes
        ctx.table_shape = table.shape
        ctx.has_edge = edge_weight is not None
        return gamma, beta

    @staticmethod
    def backward(ctx, grad_gamma: torch.Tensor, grad_beta: torch.Tensor):  # type: ignore[override]
        weight_gamma, weight_beta, hidden, pre_c, h_c = ctx.saved_tensors
        weight = torch.cat([weight_gamma, weight_beta])
        level, band, num_classes = ctx.level, ctx.band, ctx.num_classes
        out_channels, width, k, _ = weight.shape
        grads = (grad_gamma.contiguous(), grad_beta.contiguous())
        d_bias = torch.cat([g.sum(0) for g in grads])
        # Pixels away from the band: one value per class, so their gradients add up per class
        # (band pixels add into a spare last row, dropped).
        classes = band.classes.numel()
        slot = band.slot.masked_fill(band.in_band, classes)
        per_class = torch.cat([g.new_zeros(classes + 1, g.shape[1]).index_add_(0, slot, g) for g in grads], dim=1)[:classes]
        weight_sum = weight.sum((2, 3))
        d_weight_sum = per_class.t() @ h_c
        d_pre_c = (per_class @ weight_sum) * (pre_c > 0)
        # Band pixels: the convolution as gathered windows times a matrix.
        matrix = window_matrix(weight)
        d_matrix = torch.zeros_like(matrix)
        d_hidden = torch.zeros_like(hidden)
        # Pixels sharing a representative share its gamma/beta: their gradients add up first.
        summed = grads[0].new_zeros(band.windows.shape[0], out_channels)
        summed.index_add_(0, band.pattern, torch.cat([grads[0][band.pixels], grads[1][band.pixels]], dim=1))
        for start in range(0, summed.shape[0], BAND_CHUNK):
            sl = slice(start, start + BAND_CHUNK)
            g = summed[sl]
            windows = band.windows[sl]
            d_matrix.addmm_(hidden[windows].flatten(1).t(), g)
            d_hidden.index_add_(0, windows.reshape(-1), (g @ matrix.t()).view(-1, width))
        d_pre = d_hidden[:-1] * (hidden[:-1] > 0)
        d_table = _scatter_rows(ctx.table_shape[0], level.taps[band.support], d_pre)
        kk_shared = ctx.table_shape[0] // (num_classes + 1)
        d_table.view(kk_shared, num_classes + 1, -1)[:, band.classes] += d_pre_c
        d_edge = level.edge_taps[band.support].t() @ d_pre if ctx.has_edge else None
        d_weight = d_matrix.view(k, k, width, out_channels).permute(3, 2, 0, 1) + d_weight_sum[:, :, None, None]
        d_gamma, d_beta = d_weight.split(weight_gamma.shape[0])
        return d_table, d_edge, d_gamma, d_beta, d_bias, None, None, None


def spade_modulation(
    layout: Layout, size: tuple[int, int], shared: nn.Conv2d, gamma: nn.Conv2d, beta: nn.Conv2d, gamma_offset: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """SPADE's (gamma + ``gamma_offset``, beta), each (N, C, h, w), from a :class:`Layout` at
    ``size`` (h, w): the same values and gradients as ``mlp_gamma/beta(relu(mlp_shared(one_hot)))``,
    less work. (The offset rides on gamma's bias: ``1 + gamma`` costs no extra pass.)"""
    device = shared.weight.device.type
    # Under autocast the whole modulation runs in the autocast dtype, cast explicitly (autocast
    # does not reach into the custom functions' backward, and out= products refuse mixed dtypes).
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else shared.weight.dtype
    with torch.autocast(device, enabled=False):
        return _modulation(layout, size, shared, gamma, beta, gamma_offset, dtype)


def _modulation(layout: Layout, size, shared: nn.Conv2d, gamma: nn.Conv2d, beta: nn.Conv2d, gamma_offset: float, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    k1, k2 = shared.kernel_size[0], gamma.kernel_size[0]
    level = layout.level(size, k1, dtype)
    n, h, w = level.shape
    channels = gamma.out_channels
    table = one_hot_table(shared.weight, shared.bias, layout.num_classes).to(dtype)
    edge_weight = edge_rows(shared.weight, layout.num_classes).to(dtype) if layout.has_edge else None
    bias_gamma = (_bias(gamma) + gamma_offset if gamma_offset else _bias(gamma)).to(dtype)
    weight_gamma, weight_beta = gamma.weight.to(dtype), beta.weight.to(dtype)
    use_band = layout.band_threshold > 0 and h * w >= BAND_MIN_PIXELS and level.band(k2).work <= layout.band_threshold
    if use_band:
        bias = torch.cat([bias_gamma, _bias(beta).to(dtype)])
        rows = BandModulation.apply(table, edge_weight, weight_gamma, weight_beta, bias, level, level.band(k2), layout.num_classes)
        # (N·h·w, C) rows are channels-last pixels: permuted views, no copy.
        return tuple(r.view(n, h, w, channels).permute(0, 3, 1, 2) for r in rows)  # type: ignore[return-value]
    hidden = OneHotGather.apply(level.taps, table)
    if edge_weight is not None:
        hidden = hidden + level.edge_taps @ edge_weight
    hidden = hidden.relu().view(n, h, w, -1).permute(0, 3, 1, 2)
    # Two convolutions, as the official layer: each output is its own tensor (a fused conv's
    # halves would keep the whole 2C-channel map alive for the backward).
    padding = k2 // 2
    beta_bias = beta.bias.to(dtype) if beta.bias is not None else None
    return F.conv2d(hidden, weight_gamma, bias_gamma, padding=padding), F.conv2d(hidden, weight_beta, beta_bias, padding=padding)


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    return conv.bias if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)


def uses_plain_weights(*convs: nn.Module) -> bool:
    """True when none of the convolutions computes its weight in a forward hook (e.g. spectral
    norm): the layout path reads ``.weight`` directly."""
    return all(not conv._forward_pre_hooks for conv in convs)
