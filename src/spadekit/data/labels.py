"""Label maps → the generator's input: one-hot classes, don't-care channel, instance edges."""

from __future__ import annotations

import torch


def instance_edges(instance: torch.Tensor) -> torch.Tensor:
    """Boundary map of an instance-id map: a pixel is an edge where its id differs from any
    4-neighbour (both pixels of a differing pair are marked).

    Shapes: (N, 1, H, W) integer ids → (N, 1, H, W) float 0/1 on the same device.
    """
    edge = torch.zeros(instance.shape, dtype=torch.bool, device=instance.device)
    horizontal = instance[..., :, 1:] != instance[..., :, :-1]
    vertical = instance[..., 1:, :] != instance[..., :-1, :]
    edge[..., :, 1:] |= horizontal
    edge[..., :, :-1] |= horizontal
    edge[..., 1:, :] |= vertical
    edge[..., :-1, :] |= vertical
    return edge.float()


def to_semantics(
    label: torch.Tensor,
    label_nc: int,
    contain_dontcare: bool = False,
    instance: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """One-hot semantics built on the label's device in one scatter.

    Args:
        label: (N, 1, H, W) integer ids in ``0 .. label_nc-1`` (``label_nc`` = don't-care when
            ``contain_dontcare``; map 255 to it first, see :func:`map_dontcare`).
        instance: (N, 1, H, W) instance ids; when given, their edge map is appended as the last channel.
    Returns:
        (N, label_nc (+1) (+1), H, W) float.
    """
    channels = label_nc + int(contain_dontcare)
    label = label.long()
    low, high = int(label.min()), int(label.max())
    if low < 0 or high >= channels:
        raise ValueError(
            f"label ids must lie in 0..{channels - 1} (label_nc={label_nc}, don't-care "
            f"{'on' if contain_dontcare else 'off'}); found {low}..{high}"
        )
    n, _, h, w = label.shape
    semantics = torch.zeros(n, channels, h, w, dtype=dtype, device=label.device)
    semantics.scatter_(1, label, 1.0)
    if instance is not None:
        semantics = torch.cat([semantics, instance_edges(instance).to(dtype)], dim=1)
    return semantics


def map_dontcare(label: torch.Tensor, label_nc: int, contain_dontcare: bool, source: str = "label map") -> torch.Tensor:
    """Map the don't-care value 255 to index ``label_nc``; an error when the model has no don't-care channel."""
    dontcare = label == 255
    if bool(dontcare.any()):
        if not contain_dontcare:
            raise ValueError(
                f"{source}: has don't-care pixels (value 255) but this configuration has no don't-care "
                "channel (set model.contain_dontcare=true)"
            )
        label = label.masked_fill(dontcare, label_nc)
    return label
