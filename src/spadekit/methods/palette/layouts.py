"""Layout tensors: label maps ↔ one-hot layouts, class proportions, softened real layouts and
the discretisation of generated soft layouts."""

from __future__ import annotations

import torch
import torch.nn.functional as F

DISCRETIZATIONS = ("none", "max", "gumbel")
"""``none``: keep the soft layout; ``max``: straight-through one-hot of the argmax; ``gumbel``:
straight-through one-hot of a Gumbel-softmax sample at temperature t."""

LOG_EPS = 1e-5


def clean_label_map(label: torch.Tensor, ignored_class: int | None, ignored_value: int = 255) -> torch.Tensor:
    """Class ids as the official data code reads label maps: instance ids (> 999, Cityscapes
    ``*_instanceIds``) become ``id // 1000`` and ``ignored_value`` becomes ``ignored_class`` (the
    official ``label_nc``; None keeps it). Returns a new long tensor of the same shape."""
    label = label.long().clone()
    label[label > 999] //= 1000
    if ignored_class is not None:
        label[label == ignored_value] = ignored_class
    return label


def to_onehot(label: torch.Tensor, num_semantics: int) -> torch.Tensor:
    """Class-id maps (N, H, W) of ints in [0, C) → float one-hot layouts (N, C, H, W)."""
    label = label.long()
    if label.numel() and (int(label.min()) < 0 or int(label.max()) >= num_semantics):
        raise ValueError(f"class ids must lie in [0, {num_semantics}), found {int(label.min())}..{int(label.max())}")
    return torch.zeros(label.shape[0], num_semantics, *label.shape[1:], device=label.device).scatter_(1, label.unsqueeze(1), 1.0)


def proportions(layout: torch.Tensor) -> torch.Tensor:
    """Class proportions (N, C) of layouts (N, C, H, W): the mean over pixels (a histogram for one-hot)."""
    return layout.mean(dim=(2, 3))


def label_proportions(label: torch.Tensor, num_semantics: int) -> torch.Tensor:
    """Class proportions (N, C) of class-id maps (N, H, W): each class's pixel count over all pixels.

    This is the palette the official code computes from a training label map (after its ignored
    value has been mapped to a class).
    """
    label = label.long().reshape(label.shape[0], -1)
    counts = torch.zeros(label.shape[0], num_semantics, dtype=torch.float32, device=label.device)
    counts.scatter_add_(1, label, torch.ones_like(label, dtype=torch.float32))
    return counts / counts.sum(dim=1, keepdim=True)


def blur_kernel(res: int, max_dim: int, max_sigma: float = 8.0, min_sigma: float = 2.0) -> torch.Tensor:
    """The official softening kernel for layouts of height ``res`` (n × n, sums to one).

    sigma = max(res · max_sigma / max_dim, min_sigma) only sets the size n = the odd number at or below
    min(sigma + 3, res - 1); the weights are exp(-d²) around the centre (n//2 + 1, n//2 + 1), one pixel
    off the middle, as the official code builds it.
    """
    sigma = max(res * max_sigma / max_dim, min_sigma)
    n = int(min(sigma + 3, res - 1))
    n = n if n % 2 == 1 else n - 1
    if n < 1:
        raise ValueError(f"no blur kernel for layouts of height {res}")
    coords = torch.arange(n, dtype=torch.float64)
    centre = n // 2 + 1
    d2 = (coords[None, :] - centre) ** 2 + (coords[:, None] - centre) ** 2
    kernel = torch.exp(-d2).to(torch.float32)
    return kernel / kernel.sum()


def soften_layout(
    onehot: torch.Tensor,
    max_dim: int,
    soft_prop: float = 0.5,
    max_sigma: float = 8.0,
    min_sigma: float = 2.0,
) -> torch.Tensor:
    """The "softened" real layout the critic sees: ``(1 - soft_prop)·onehot + soft_prop·blur(onehot)``,
    blur = per-class convolution with :func:`blur_kernel` after reflect padding.

    ``max_dim`` is the largest layout height of the model (the blur scales with res / max_dim).
    Shapes: (N, C, H, W) → (N, C, H, W).
    """
    c = onehot.shape[1]
    kernel = blur_kernel(onehot.shape[2], max_dim, max_sigma, min_sigma).to(onehot)
    pad = (kernel.shape[0] - 1) // 2
    padded = F.pad(onehot, (pad, pad, pad, pad), mode="reflect")
    blurred = F.conv2d(padded, kernel.expand(c, 1, *kernel.shape), groups=c)
    return (1 - soft_prop) * onehot + soft_prop * blurred


def _straight_through(y_soft: torch.Tensor) -> torch.Tensor:
    index = y_soft.max(1, keepdim=True)[1]
    y_hard = torch.zeros_like(y_soft).scatter_(1, index, 1.0)
    return (y_hard - y_soft).detach() + y_soft


def discretize(layout: torch.Tensor, mode: str, temperature: float = 1.0) -> torch.Tensor:
    """Discretise a soft layout (N, C, H, W) per :data:`DISCRETIZATIONS`; gradients pass straight
    through to the soft layout. ``gumbel`` draws from torch's global generator (``exponential_``)."""
    if mode == "none":
        return layout
    if mode == "max":
        return _straight_through(layout)
    if mode == "gumbel":
        logits = torch.log(layout + LOG_EPS)
        gumbels = -torch.empty_like(logits).exponential_().log()
        return _straight_through(((logits + gumbels) / temperature).softmax(1))
    raise ValueError(f"unknown discretization {mode!r}; choose one of {', '.join(DISCRETIZATIONS)}")


def layout_for_image(
    layout: torch.Tensor,
    discretization: str,
    height: int,
    aspect_ratio: float,
    temperature: float = 1.0,
    bilimax: bool = False,
) -> torch.Tensor:
    """The generator's final soft layout → the segmentation map the image generator receives, as the
    official end-to-end inference does: discretise, then, when the image stage works at another
    height, resize (bilinear for ``none`` or ``bilimax``, else nearest; ``bilimax`` re-takes the
    one-hot argmax after the bilinear resize). (N, C, h, w) → (N, C, height, height·aspect)."""
    layout = discretize(layout, discretization, temperature)
    size = (int(height), int(aspect_ratio * height))
    if tuple(layout.shape[2:]) == size:
        return layout
    soft = discretization == "none" or bilimax
    layout = F.interpolate(layout, size=size, mode="bilinear" if soft else "nearest")
    if bilimax:
        index = layout.max(1, keepdim=True)[1]
        layout = torch.zeros_like(layout).scatter_(1, index, 1.0)
    return layout
