"""Synthesis from boxes with a loaded BachGAN model: what :meth:`spadekit.inference.Pipeline.from_boxes`
runs (the method's ``box_input``), and label maps read as the boxes of their objects (``label_input``).

Retrieval for a request: the boxes are scored against every bank entry (class-pooled IoU, best
first, ties in bank order). Sample ``j`` of ``num_samples`` uses the entries ranked ``j·k`` to
``j·k + k - 1``, so the samples differ by their backgrounds (and, for models with a latent, by
``z``). ``choose`` names bank entries to use instead (every sample then uses them; fewer than k are
completed with the best-ranked others), so a user can swap one retrieved layout for another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from spadekit.errors import DataError
from spadekit.methods.bachgan.boxes import Box, box_union, draw_box_layout, parse_boxes, read_boxes_json
from spadekit.methods.bachgan.data import BANK_FILE, channels_of
from spadekit.methods.bachgan.retrieval import Match, MemoryBank, compose_semantics

DEFAULT_CANDIDATES = 8
"""Ranked entries a result lists (at least the ones used), for choosing others."""


@dataclass
class BoxSynthesis:
    """A BachGAN answer to one box request (everything at the model's size, H × W).

    ``images``: one per sample (PIL images, or a (K, 3, H, W) tensor in [-1, 1]); ``boxes`` as drawn;
    ``box_map`` (H, W) int64: the painted box classes (``background`` outside the boxes);
    ``box_inside`` (H, W) bool; ``layouts``: per sample, the (k, H, W) int64 retrieved layouts (class
    ids, as stored in the bank); ``used``: per sample, the bank entries behind them; ``candidates``: the
    best-ranked entries (to choose from); ``bank``: where the bank came from; ``foreground``: the
    object classes, which come from the boxes only.
    """

    images: Any
    boxes: list[Box]
    box_map: torch.Tensor
    box_inside: torch.Tensor
    layouts: list[torch.Tensor]
    used: list[list[Match]]
    candidates: list[Match]
    bank: str
    foreground: list[int] = field(default_factory=list)

    def composed(self, sample: int = 0, none: int = 255) -> torch.Tensor:
        """(k, H, W) class ids of sample ``sample``'s layouts as the generator sees them: the painted
        boxes inside the boxes; outside, the retrieved layout, except its objects (the generator gets
        no class there: ``none``, which pictures show black)."""
        maps = self.layouts[sample].clone()
        maps[torch.isin(maps, torch.tensor(self.foreground, dtype=maps.dtype))] = none
        maps[:, self.box_inside] = self.box_map[self.box_inside]
        return maps


@dataclass
class BoxPlan:
    """A prepared request: ``semantics`` (K, S, H, W) float32, the generator input of each sample;
    ``result(images)`` wraps the generated images."""

    semantics: torch.Tensor
    details: dict[str, Any] = field(default_factory=dict)

    def result(self, images: Any) -> BoxSynthesis:
        return BoxSynthesis(images=images, **self.details)


class BoxConditioner:
    """Boxes (+ a memory bank) → the generator input of a BachGAN model.

    The model's own bank is the one it carries (``bank.safetensors`` in its directory), else the file
    its ``bachgan.bank`` names; a request may pass another (a path or a :class:`MemoryBank`).
    """

    def __init__(self, model: Any):
        config = model.config
        self.config = config
        self.options = config.section("bachgan")
        self.channels = channels_of(config)
        self.width, self.height = model.output_size
        self.class_names = list(model.class_names)
        self.k = int(self.options.num_retrieved)
        own = model.assets.get(BANK_FILE)
        if own is None and self.options.bank and Path(self.options.bank).is_file():
            own = Path(self.options.bank)
        self.own_bank: Path | None = own
        self._banks: dict[str, MemoryBank] = {}

    @property
    def classes(self) -> list[tuple[int, str]]:
        """(id, name) of the classes a box may have (the model's foreground classes)."""
        names = self.class_names + [f"class {i}" for i in range(len(self.class_names), self.channels)]
        return [(c, names[c]) for c in self.options.foreground]

    def bank(self, bank: MemoryBank | str | Path | None = None) -> tuple[MemoryBank, str]:
        """The bank of a request and its description; DataError when there is none or it does not fit."""
        if isinstance(bank, MemoryBank):
            chosen, name = bank, "the given memory bank"
        else:
            path = Path(bank) if bank is not None else self.own_bank
            if path is None:
                raise DataError(
                    "this BachGAN model carries no memory bank: pass one (--bank BANK; build it with "
                    f"`spadekit bachgan index --preset {self.config.preset} --data DATA --out BANK`)"
                )
            key = str(path)
            if key not in self._banks:
                self._banks[key] = MemoryBank.load(path)
            chosen, name = self._banks[key], key
        if chosen.num_classes != self.channels:
            raise DataError(f"{name}: has {chosen.num_classes} classes, the model {self.channels} (label_nc + don't-care)")
        return chosen, name

    def parse(self, boxes: Any, source: str = "boxes") -> list[Box]:
        """Boxes from a JSON file path, a decoded JSON document or a list of :class:`Box`, checked against
        the model (classes, canvas) and brought to its size; DataError naming ``source`` otherwise."""
        allowed = set(self.options.foreground)
        if isinstance(boxes, (str, Path)):
            return read_boxes_json(boxes, self.class_names, self.height, self.width, allowed)
        if isinstance(boxes, (list, tuple)) and boxes and all(isinstance(b, Box) for b in boxes):
            for i, b in enumerate(boxes):
                if b.class_id not in allowed:
                    raise DataError(f"{source}: box {i}: class {b.class_id} is not drawn from boxes by this model")
                if not (0 <= b.x0 < b.x1 <= self.width and 0 <= b.y0 < b.y1 <= self.height):
                    raise DataError(f"{source}: box {i}: {b} lies outside the {self.width}x{self.height} image or is empty")
            return list(boxes)
        names = self.class_names + [f"class {i}" for i in range(len(self.class_names), self.channels)]
        return parse_boxes(list(boxes) if isinstance(boxes, tuple) else boxes, names, self.height, self.width, allowed, source)

    def _sets(self, bank: MemoryBank, ranked: list[Match], num_samples: int, choose: Sequence[int] | None) -> list[list[Match]]:
        k = self.k
        if choose is None:
            if len(ranked) < num_samples * k:
                raise DataError(
                    f"the memory bank has {len(ranked)} entries; {num_samples} sample(s) of {k} retrieved layouts need "
                    f"{num_samples * k}"
                )
            return [ranked[j * k : (j + 1) * k] for j in range(num_samples)]
        picked = [int(i) for i in choose]
        if len(picked) > k or len(set(picked)) != len(picked):
            raise DataError(f"choose: give at most {k} different bank entries, got {list(choose)}")
        for i in picked:
            if not 0 <= i < len(bank):
                raise DataError(f"choose: bank entry {i} does not exist (the bank has entries 0..{len(bank) - 1})")
        by_index = {m.index: m for m in ranked}
        chosen = [by_index.get(i, Match(i, bank.names[i], 0.0)) for i in picked]
        chosen += [m for m in ranked if m.index not in set(picked)][: k - len(chosen)]
        if len(chosen) < k:
            raise DataError(f"the memory bank has {len(bank)} entries, {k} are needed")
        return [chosen] * num_samples

    def plan(
        self,
        boxes: Any,
        num_samples: int = 1,
        bank: MemoryBank | str | Path | None = None,
        choose: Sequence[int] | None = None,
        candidates: int | None = None,
        source: str = "boxes",
    ) -> BoxPlan:
        """Parse and check ``boxes``, retrieve, and build each sample's generator input."""
        parsed = self.parse(boxes, source)
        memory, name = self.bank(bank)
        h, w = self.height, self.width
        scores = memory.scores(parsed, h, w)
        order = torch.sort(scores, descending=True, stable=True).indices.tolist()
        shown = DEFAULT_CANDIDATES if candidates is None else max(0, int(candidates))
        ranked = [Match(i, memory.names[i], float(scores[i])) for i in order[: max(shown, num_samples * self.k)]]
        sets = self._sets(memory, ranked, num_samples, choose)
        o = self.options
        layouts = [memory.layouts([m.index for m in used], h, w) for used in sets]
        semantics = torch.cat([
            compose_semantics(parsed, maps, self.channels, o.foreground, h, w, o.background, o.construction) for maps in layouts
        ])
        _, painted = draw_box_layout(parsed, self.channels, h, w, o.background, "onehot")
        details = {
            "boxes": parsed, "box_map": painted, "box_inside": box_union(parsed, h, w), "layouts": layouts, "used": sets,
            "candidates": ranked[:shown], "bank": name, "foreground": list(o.foreground),
        }
        return BoxPlan(semantics, details)


def component_boxes(label: np.ndarray, foreground: Sequence[int]) -> list[Box]:
    """Boxes of a label map (H, W) of channel ids without instances: one per 8-connected component of
    each foreground class (classes ascending, components in raster order of their first pixel)."""
    from scipy import ndimage

    boxes = []
    present = set(np.unique(label).tolist())
    for class_id in sorted(int(c) for c in foreground if int(c) in present):
        components, _ = ndimage.label(label == class_id, structure=np.ones((3, 3), dtype=bool))
        for extent in ndimage.find_objects(components):
            if extent is not None:
                rows, cols = extent
                boxes.append(Box(class_id, cols.start, rows.start, cols.stop, rows.stop))
    return boxes


class LabelsAsBoxes(nn.Module):
    """Pipeline's label-map input for BachGAN: ``forward(index, edges, z)`` boxes the objects of each
    (N, H, W) map (:func:`component_boxes`) and synthesizes from them with the model's own bank
    (the best k layouts). The rest of the label map is not used: BachGAN invents the background."""

    def __init__(self, model: Any, conditioner: BoxConditioner | None = None):
        super().__init__()
        self.inner = model.generator
        self.conditioner = conditioner or BoxConditioner(model)

    def forward(self, index: torch.Tensor, edges: torch.Tensor | None, z: torch.Tensor | None) -> torch.Tensor:
        foreground = self.conditioner.options.foreground
        semantics = [
            self.conditioner.plan(component_boxes(label.cpu().numpy(), foreground), source="label map").semantics
            for label in index
        ]
        reference = next(self.inner.parameters())
        batch = torch.cat(semantics).to(device=reference.device, dtype=reference.dtype)
        return self.inner(batch, z)


def box_input(model: Any) -> BoxConditioner:
    """The method's ``box_input`` hook."""
    return BoxConditioner(model)


def label_input(model: Any) -> nn.Module:
    """The method's ``label_input`` hook."""
    return LabelsAsBoxes(model)


__all__ = ["BoxConditioner", "BoxPlan", "BoxSynthesis", "LabelsAsBoxes", "component_boxes"]
