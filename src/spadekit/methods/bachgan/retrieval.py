"""Background retrieval: a memory bank of training layouts, ranked by class-pooled IoU with the boxes.

**Bank file** (ours; one ``.safetensors`` file, written atomically):

* tensor ``labels``: (M, H, W) class ids in the model's channel numbering (uint8 when C ≤ 256, else
  int32), one training layout per entry, all resized (nearest) to one H × W;
* tensor ``histograms``: (M, C) int64 pixel count of every class in every entry (the |M_c| of the score);
* header metadata ``format`` = ``"spadekit-bachgan-bank"``, ``format_version`` = ``"1"`` and ``bank`` =
  a JSON object: ``names`` (entry names, e.g. the label files' names), ``num_classes``, ``height``,
  ``width``, ``content_hash`` and ``source`` (free-form: what was indexed, how).

``content_hash`` is the SHA-256 of the JSON ``{"names", "num_classes", "shape"}`` (sorted keys, no
spaces) followed by the raw bytes of ``labels`` (C order, little endian); it identifies the indexed data
and is checked on load.

**Score** (the official retrieval scripts): for the set F of object classes of the query,
``score(m) = Σ_{c∈F} |B_c ∩ M_c| / Σ_{c∈F} |B_c ∪ M_c|`` where B_c is the union of the query's boxes of
class c and M_c the pixels of class c in entry m (0 when the union is empty). Entries are ranked by
score, ties in bank order (the official scripts sort a dict, also stable), and the best k kept.

Deviations from the official scripts, on purpose: the official Cityscapes bank resized label maps
with *bicubic* interpolation (which invents class ids at edges) and kept a random quarter of the
training set; we resize with nearest and index what we are given (``keep`` and ``seed`` select a
subset). The official loader reads the retrieved layouts from the original training label files with
the query's crop/flip; ours come from the bank (nearest-resized to the model's size).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from spadekit.errors import DataError
from spadekit.io import atomic_write
from spadekit.methods.bachgan.boxes import Box, box_union, class_masks, draw_box_layout

BANK_FORMAT = "spadekit-bachgan-bank"
BANK_VERSION = 1


@dataclass(frozen=True)
class Match:
    """A retrieved bank entry: its position, name and score."""

    index: int
    name: str
    score: float


def content_hash(names: Sequence[str], labels: torch.Tensor, num_classes: int) -> str:
    """SHA-256 (hex) of the indexed data, as stored in the bank file (see the module docstring)."""
    header = json.dumps(
        {"names": list(names), "num_classes": num_classes, "shape": list(labels.shape)}, sort_keys=True, separators=(",", ":")
    )
    digest = hashlib.sha256(header.encode())
    array = labels.contiguous().numpy()
    digest.update(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    return digest.hexdigest()


def class_pooled_iou(
    masks: dict[int, torch.Tensor],
    labels: torch.Tensor,
    histograms: torch.Tensor,
    classes: Collection[int],
    chunk: int = 256,
) -> torch.Tensor:
    """Scores of every entry against the query boxes.

    Args:
        masks: per class, the (H, W) bool union of the query's boxes (missing = no box).
        labels: (M, H, W) entries; histograms: (M, C) their class pixel counts.
        classes: the pooled classes F.
    Returns:
        (M,) float64 scores.
    """
    count = labels.shape[0]
    intersection = torch.zeros(count, dtype=torch.int64)
    union = torch.zeros(count, dtype=torch.int64)
    for class_id in sorted(set(int(c) for c in classes)):
        mask = masks.get(class_id)
        box_area = int(mask.sum()) if mask is not None else 0
        inter = torch.zeros(count, dtype=torch.int64)
        if box_area:
            for start in range(0, count, chunk):
                inter[start : start + chunk] = (labels[start : start + chunk][:, mask] == class_id).sum(1)
        intersection += inter
        union += box_area + histograms[:, class_id] - inter
    scores = intersection.double() / union.clamp_min(1).double()
    return torch.where(union > 0, scores, torch.zeros_like(scores))


@dataclass
class MemoryBank:
    """Training layouts to retrieve backgrounds from. Build with :func:`build_bank`, keep with
    :meth:`save` / :meth:`load`.

    ``labels`` (M, H, W) integer class ids; ``histograms`` (M, C) int64; ``names`` M strings.
    """

    labels: torch.Tensor
    histograms: torch.Tensor
    names: list[str]
    num_classes: int
    source: Any = None
    content_hash: str = field(default="")

    def __post_init__(self) -> None:
        if not self.content_hash:
            self.content_hash = content_hash(self.names, self.labels, self.num_classes)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the stored layouts."""
        return int(self.labels.shape[1]), int(self.labels.shape[2])

    def scores(self, boxes: Sequence[Box], height: int, width: int, classes: Collection[int] | None = None) -> torch.Tensor:
        """(M,) float64 class-pooled IoU of every entry with ``boxes`` given on a ``width`` × ``height``
        canvas (scaled to the bank's size). ``classes`` = F, by default the boxes' classes."""
        bank_h, bank_w = self.size
        if (height, width) != (bank_h, bank_w):
            boxes = [b.scaled(bank_w / width, bank_h / height) for b in boxes]
        pooled = {b.class_id for b in boxes} if classes is None else classes
        return class_pooled_iou(class_masks(boxes, bank_h, bank_w), self.labels, self.histograms, pooled)

    def retrieve(
        self,
        boxes: Sequence[Box],
        height: int,
        width: int,
        k: int = 3,
        classes: Collection[int] | None = None,
        exclude: Collection[str] = (),
    ) -> list[Match]:
        """The ``k`` best entries, best first (ties in bank order), skipping entries named in ``exclude``
        (the official scripts skip the query itself)."""
        scores = self.scores(boxes, height, width, classes)
        order = torch.sort(scores, descending=True, stable=True).indices.tolist()
        skipped = set(exclude)
        matches = [Match(i, self.names[i], float(scores[i])) for i in order if self.names[i] not in skipped][:k]
        if len(matches) < k:
            raise DataError(f"the memory bank has {len(matches)} usable entries, {k} are needed")
        return matches

    def layouts(self, indices: Sequence[int], height: int, width: int) -> torch.Tensor:
        """(k, height, width) int64 class maps of the chosen entries, nearest-resized."""
        maps = self.labels[list(indices)].long()
        if maps.shape[-2:] != (height, width):
            maps = F.interpolate(maps[:, None].float(), size=(height, width), mode="nearest")[:, 0].long()
        return maps

    # ------------------------------------------------------------------------------------ file

    def save(self, path: str | Path) -> Path:
        """Write the bank file atomically (a reader never sees half a bank)."""
        from safetensors.torch import save_file

        path = Path(path)
        info = {
            "names": self.names,
            "num_classes": self.num_classes,
            "height": self.size[0],
            "width": self.size[1],
            "content_hash": self.content_hash,
            "source": self.source,
        }
        metadata = {"format": BANK_FORMAT, "format_version": str(BANK_VERSION), "bank": json.dumps(info)}
        tensors = {"labels": self.labels.contiguous(), "histograms": self.histograms.contiguous()}
        atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "MemoryBank":
        """Read and verify a bank file; problems raise a one-line DataError naming the file."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: memory bank not found")
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                if metadata.get("format") != BANK_FORMAT:
                    raise DataError(f"{path}: not a BachGAN memory bank (build one with `spadekit bachgan index`)")
                if int(metadata.get("format_version", "0")) > BANK_VERSION:
                    raise DataError(f"{path}: written by a newer spadekit (bank format {metadata['format_version']})")
                info = json.loads(metadata["bank"])
                labels, histograms = handle.get_tensor("labels"), handle.get_tensor("histograms")
        except (SafetensorError, OSError, ValueError, KeyError) as exc:
            raise DataError(f"{path}: unreadable memory bank ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        names, num_classes = list(info.get("names", [])), int(info.get("num_classes", 0))
        if labels.dim() != 3 or len(names) != labels.shape[0] or histograms.shape != (labels.shape[0], num_classes):
            raise DataError(f"{path}: inconsistent memory bank (labels {tuple(labels.shape)}, {len(names)} names, histograms {tuple(histograms.shape)})")
        expected = content_hash(names, labels, num_classes)
        if info.get("content_hash") != expected:
            raise DataError(f"{path}: memory bank content does not match its hash (corrupt or edited)")
        return cls(labels, histograms, names, num_classes, info.get("source"), expected)


def _label_array(label: Any, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(label) if not isinstance(label, torch.Tensor) else label)
    while tensor.dim() > 2 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.dim() != 2 or tensor.is_floating_point() and not torch.equal(tensor, tensor.round()):
        raise DataError(f"{name}: expected an (H, W) map of integer class ids, got shape {tuple(tensor.shape)} {tensor.dtype}")
    return tensor.long()


def build_bank(
    entries: Sequence[tuple[str, Any]],
    num_classes: int,
    size: tuple[int, int] | None = None,
    keep: float = 1.0,
    seed: int = 1121,
    source: Any = None,
    progress: bool = True,
) -> MemoryBank:
    """Index training layouts.

    Args:
        entries: (name, label map) pairs; a label map is (H, W) (or (1, H, W)) class ids in the model's
            channel numbering (map don't-care to its channel first). Read lazily, one at a time.
        num_classes: channels C; every id must be below it.
        size: (H, W) to store the layouts at (nearest); default: the first entry's size.
        keep: fraction of the entries to index, chosen with ``random.Random(seed)`` (the official
            scripts kept a random quarter).
        source: recorded in the file as is (JSON-serialisable), e.g. the dataset and preset.
        progress: show a tqdm progress bar.
    """
    from tqdm import tqdm

    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    chosen = list(range(len(entries)))
    if keep < 1:
        chosen = sorted(random.Random(seed).sample(chosen, max(1, int(len(chosen) * keep))))
    if not chosen:
        raise DataError("nothing to index: the dataset is empty")
    dtype = torch.uint8 if num_classes <= 256 else torch.int32
    names, maps = [], []
    for index in tqdm(chosen, desc="indexing layouts", unit="map", disable=not progress):
        name, label = entries[index]
        tensor = _label_array(label, name)
        if size is None:
            size = (int(tensor.shape[0]), int(tensor.shape[1]))
        if tuple(tensor.shape) != tuple(size):
            tensor = F.interpolate(tensor[None, None].float(), size=size, mode="nearest")[0, 0].long()
        low, high = int(tensor.min()), int(tensor.max())
        if low < 0 or high >= num_classes:
            raise DataError(f"{name}: class id {low if low < 0 else high} outside 0..{num_classes - 1}")
        names.append(str(name))
        maps.append(tensor.to(dtype))
    labels = torch.stack(maps)
    histograms = torch.stack([torch.bincount(m.long().flatten(), minlength=num_classes) for m in labels])
    return MemoryBank(labels, histograms, names, num_classes, source)


# -------------------------------------------------------------------------- network inputs


def compose_retrieved(
    maps: torch.Tensor,
    box_layout: torch.Tensor,
    inside: torch.Tensor,
    foreground: Sequence[int],
) -> torch.Tensor:
    """The retrieved layouts as the generator receives them (the official dataset step).

    Each map is one-hot encoded, every channel is cleared inside the boxes, and the foreground
    channels are replaced by the box layout's, so objects come only from the boxes.

    Args:
        maps: (k, H, W) class ids; box_layout: (C, H, W); inside: (H, W) bool, the union of the boxes;
        foreground: the object classes the model draws from boxes (all of them, not only those present).
    Returns:
        (k·C, H, W) float, candidate-major (channels c·C .. c·C+C-1 = candidate c).
    """
    return compose_retrieved_batch(maps[None], box_layout[None], inside[None], foreground)[0]


def compose_retrieved_batch(
    maps: torch.Tensor,
    box_layout: torch.Tensor,
    inside: torch.Tensor,
    foreground: Sequence[int],
) -> torch.Tensor:
    """:func:`compose_retrieved` of a batch, on the tensors' device: maps (N, k, H, W), box_layout
    (N, C, H, W), inside (N, H, W) → (N, k·C, H, W)."""
    n, k = maps.shape[:2]
    channels = box_layout.shape[1]
    if maps.numel() and (int(maps.min()) < 0 or int(maps.max()) >= channels):
        raise ValueError(f"retrieved layouts hold class ids outside 0..{channels - 1}")
    onehot = torch.zeros(n, k, channels, *maps.shape[-2:], dtype=box_layout.dtype, device=box_layout.device)
    onehot.scatter_(2, maps[:, :, None].long(), 1.0)
    onehot = onehot * (~inside.bool())[:, None, None].to(onehot.dtype)
    foreground = list(foreground)
    onehot[:, :, foreground] = box_layout[:, None, foreground]
    return onehot.flatten(1, 2)


def compose_semantics(
    boxes: Sequence[Box],
    maps: torch.Tensor,
    num_classes: int,
    foreground: Sequence[int],
    height: int,
    width: int,
    background: int = 0,
    construction: str = "official",
) -> torch.Tensor:
    """The generator's conditioning for one image: box layout and k retrieved layouts, concatenated.

    Returns (1, (1+k)·C, H, W) float (see :class:`~spadekit.methods.bachgan.generator.BachGANGenerator`).
    """
    layout, _ = draw_box_layout(boxes, num_classes, height, width, background, construction)
    retrieved = compose_retrieved(maps, layout, box_union(boxes, height, width), foreground)
    return torch.cat([layout, retrieved])[None]
