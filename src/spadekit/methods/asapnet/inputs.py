"""ASAPNet's optional input channel besides the instance edges: the official distance-transform channel.

With ``--no_instance_dist False`` the paper's code appends scipy's Euclidean distance transform of
the instance *edge* map, computed over the whole (N, 1, H, W) batch array at once: every edge
pixel gets its distance to the nearest non-edge element along any of the four axes (so mostly 1,
and the batch axis counts too), every other pixel 0. This reproduces that quirk; it is off by
default in the official code and cannot be combined with the edge channel there (the channel
count would no longer match).
"""

from __future__ import annotations

import torch
from scipy import ndimage

from spadekit.data.labels import instance_edges


def instance_distance_channel(instance: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) instance ids → (N, 1, H, W) float32, as the official ``get_distransform``."""
    edges = instance_edges(instance).bool().cpu().numpy()
    return torch.from_numpy(ndimage.distance_transform_edt(edges)).float().to(instance.device)
