"""BachGAN's items: every dataset sample with its box layout and the layouts retrieved for its boxes;
the memory bank of a dataset's training label maps.

An item (training, previews and ``spadekit evaluate`` alike) is built in four steps:

1. The sample is loaded (pictures before any geometry) and one crop/flip is drawn from torch's RNG,
   which the trainer seeds per (seed, epoch, index), so a resumed run sees the same items.
2. The *query* boxes come from the sample as loaded, before the crop/flip, so the retrieval depends
   on the sample alone (it is cached per index); the sample's own bank entry is skipped, as the
   official scripts skip the query. A sample without objects pools no class: every score is 0 and
   the first entries of the bank are used.
3. The k retrieved layouts are brought to the sample's size (nearest) and cropped and flipped with
   the photo's parameters (the official loader does the same with the retrieved label files).
4. The boxes of the cropped/flipped sample give the box layout.

Keys added to the dataset's item (see :mod:`spadekit.data.dataset`): ``box_layout`` (C, H, W) uint8
0/1; ``box_inside`` (H, W) bool, the union of the boxes; ``retrieved`` (k, H, W) int64 channel ids;
``retrieved_index`` (k,) int64 bank positions. :func:`prepare_batch` of the method turns them into
the generator's input on the device.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from spadekit.config import Config
from spadekit.errors import DataError
from spadekit.methods.bachgan.boxes import Box, box_union, draw_box_layout
from spadekit.methods.bachgan.extract import ade20k_boxes, ade20k_channels, cityscapes_boxes, instance_boxes
from spadekit.methods.bachgan.retrieval import MemoryBank, build_bank

BANK_FILE = "bank.safetensors"
"""Name of the memory bank inside a release model directory."""


def channels_of(config: Config) -> int:
    """C: the channels of the box layout and of every retrieved layout."""
    m = config.model
    return m.label_nc + int(m.contain_dontcare)


def channel_ids(ids: np.ndarray, label_channels: str, label_nc: int, contain_dontcare: bool) -> np.ndarray:
    """Dataset label ids (H, W) → the model's channel ids (int64).

    ``ids``: as stored (255 = don't-care); ``ade20k``: raw ADE20K ids (0 = unlabeled, k = class k-1)
    shifted as the official loader shifts them (unlabeled → the don't-care channel ``label_nc``).
    """
    if label_channels == "ade20k":
        return ade20k_channels(ids, label_nc)
    out = np.asarray(ids).astype(np.int64)
    if contain_dontcare:
        out[out == 255] = label_nc
    return out


def extract_boxes(
    label: np.ndarray, instance: np.ndarray | None, boxes_from: str, foreground: Sequence[int], label_channels: str,
    label_nc: int, contain_dontcare: bool,
) -> list[Box]:
    """The object boxes of one sample (class ids = channel ids), in the order that draws the official
    box layout. ``label``: dataset ids (H, W); ``instance``: instance ids, for ``instances`` and
    ``cityscapes``."""
    if boxes_from == "ade20k":
        return ade20k_boxes(label, object_classes=foreground)
    if instance is None:
        raise DataError(f"bachgan.boxes_from={boxes_from} needs instance maps, and the dataset has none")
    if boxes_from == "cityscapes":
        return cityscapes_boxes(instance, foreground)
    return instance_boxes(channel_ids(label, label_channels, label_nc, contain_dontcare), instance, foreground)


def _picture(ids: torch.Tensor) -> Image.Image:
    array = ids.numpy()
    return Image.fromarray(array.astype(np.uint8) if int(array.max(initial=0)) < 256 else array.astype(np.int32))


class BoxRetrievalDataset(Dataset):
    """A dataset's items with their box layout and retrieved layouts (see the module docstring).

    Args:
        base: a dataset with ``load(index, image)``, ``finish(raw, params)``, ``entry_name(index)`` and
            ``preprocess`` (:class:`~spadekit.data.dataset.PairedDataset`, ``ToySceneDataset``).
        bank: the memory bank (channel ids, C classes).
        options: the ``bachgan`` config section.
        label_nc, contain_dontcare: the model's label channels (C = label_nc + contain_dontcare).
        bank_path: the bank's file, None when it was built in memory.
    """

    def __init__(
        self, base: Any, bank: MemoryBank, options: Any, label_nc: int, contain_dontcare: bool, bank_path: Path | None = None
    ):
        channels = label_nc + int(contain_dontcare)
        if bank.num_classes != channels:
            raise DataError(f"the memory bank has {bank.num_classes} classes, the model {channels} (label_nc + don't-care)")
        self.base = base
        self.bank = bank
        self.bank_path = bank_path
        self.options = options
        self.label_nc = label_nc
        self.contain_dontcare = contain_dontcare
        self.channels = channels
        self._retrieved: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self.base)

    def _boxes(self, label: np.ndarray, instance: np.ndarray | None) -> list[Box]:
        o = self.options
        return extract_boxes(label, instance, o.boxes_from, o.foreground, o.label_channels, self.label_nc, self.contain_dontcare)

    def retrieval(self, index: int, raw: Any = None) -> list[int]:
        """Bank positions of the k layouts retrieved for sample ``index`` (as loaded, before crop/flip)."""
        if index not in self._retrieved:
            raw = raw if raw is not None else self.base.load(index, image=False)
            label = np.asarray(raw.label)
            instance = np.asarray(raw.instance) if raw.instance is not None else None
            height, width = label.shape
            matches = self.bank.retrieve(
                self._boxes(label, instance), height, width, k=self.options.num_retrieved, exclude={self.base.entry_name(index)}
            )
            self._retrieved[index] = [m.index for m in matches]
        return self._retrieved[index]

    def __getitem__(self, index: int) -> dict[str, Any]:
        raw = self.base.load(index)
        params = self.base.preprocess.sample(*raw.label.size)
        item = self.base.finish(raw, params)
        chosen = self.retrieval(index, raw)
        width, height = raw.label.size
        maps = self.bank.layouts(chosen, height, width)
        apply = self.base.preprocess.apply
        retrieved = torch.stack([torch.from_numpy(np.array(apply(_picture(m), params, nearest=True))).long() for m in maps])
        label = item["label"][0].numpy()
        instance = item["instance"][0].numpy() if "instance" in item else None
        boxes = self._boxes(label, instance)
        h, w = label.shape
        layout, _ = draw_box_layout(boxes, self.channels, h, w, self.options.background, self.options.construction)
        item["box_layout"] = layout.to(torch.uint8)
        item["box_inside"] = box_union(boxes, h, w)
        item["retrieved"] = retrieved
        item["retrieved_index"] = torch.tensor(chosen, dtype=torch.int64)
        return item


# ----------------------------------------------------------------------------------- datasets


def needs_instances(options: Any) -> bool:
    return options.boxes_from in ("instances", "cityscapes")


def open_base(config: Config, split: str, train: bool) -> Any:
    """The plain dataset of ``config`` (instance maps read when the boxes come from them)."""
    from spadekit.data import open_dataset

    model = dataclasses.replace(config.model, use_instance=needs_instances(config.section("bachgan")))
    return open_dataset(config.data.root, preset=config.preset, split=split, train=train, data=config.data, model=model)


class _Entries(Sequence):
    """(name, channel-id label map) of every sample, read lazily (labels only)."""

    def __init__(self, base: Any, convert: Callable[[np.ndarray], np.ndarray]):
        self.base = base
        self.convert = convert

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[str, np.ndarray]:  # type: ignore[override]
        raw = self.base.load(index, image=False)
        return self.base.entry_name(index), self.convert(np.asarray(raw.label))


def index_dataset(base: Any, config: Config, keep: float | None = None, seed: int | None = None, source: Any = None,
                  progress: bool = True) -> MemoryBank:
    """The memory bank of ``base``'s samples: label maps in channel ids at the model's output size."""
    o, m = config.section("bachgan"), config.model
    width, height = m.output_size
    entries = _Entries(base, lambda ids: channel_ids(ids, o.label_channels, m.label_nc, m.contain_dontcare))
    return build_bank(
        entries, channels_of(config), size=(height, width), keep=o.bank_keep if keep is None else keep,
        seed=o.bank_seed if seed is None else seed, source=source, progress=progress,
    )


def bank_source(config: Config, keep: float, seed: int) -> dict[str, Any]:
    """What a bank built from ``config``'s training split records as its source."""
    d = config.data
    source = {
        "preset": config.preset, "format": d.format, "split": "train", "root": d.root,
        "label_channels": config.section("bachgan").label_channels, "keep": keep, "seed": seed,
    }
    if d.format == "toy" and d.root is None:
        source.update(toy_scenes=d.toy_scenes, toy_seed=d.toy_seed)
    return source


_BUILT: dict[str, MemoryBank] = {}


def training_bank(config: Config, progress: bool | None = None) -> MemoryBank:
    """The bank of ``config``'s training split, built in memory (once per process and data); a
    progress bar when ``progress`` (default: when stderr is a terminal)."""
    import sys

    o = config.section("bachgan")
    if progress is None:
        progress = sys.stderr.isatty()
    key = json.dumps(
        {"data": dataclasses.asdict(config.data) | {"num_workers": 0, "pin_memory": False},
         "model": [config.model.label_nc, config.model.contain_dontcare, list(config.model.output_size)],
         "bachgan": [o.label_channels, o.boxes_from, o.bank_keep, o.bank_seed]},
        sort_keys=True, default=str,
    )
    if key not in _BUILT:
        base = open_base(config, "train", False)
        _BUILT[key] = index_dataset(base, config, source=bank_source(config, o.bank_keep, o.bank_seed), progress=progress)
    return _BUILT[key]


def resolve_bank(config: Config, assets: dict[str, Path] | None = None, progress: bool | None = None) -> tuple[MemoryBank, Path | None]:
    """The memory bank a BachGAN config uses, and its file (None when built in memory).

    In order: the bank a release model carries (``assets``), ``bachgan.bank``, else the training
    split of ``config.data`` indexed now (what ``spadekit bachgan index`` would write).
    """
    o = config.section("bachgan")
    path = (assets or {}).get(BANK_FILE)
    if path is None and o.bank:
        path = Path(o.bank)
        if not path.is_file():
            raise DataError(
                f"{path}: memory bank not found (bachgan.bank; build one with `spadekit bachgan index --preset "
                f"{config.preset} --out {path}`)"
            )
    bank = MemoryBank.load(path) if path is not None else training_bank(config, progress)
    channels = channels_of(config)
    if bank.num_classes != channels:
        raise DataError(f"{path or 'memory bank'}: has {bank.num_classes} classes, the model {channels} (label_nc + don't-care)")
    return bank, path


def open_data(config: Config, split: str, train: bool, assets: dict[str, Path]) -> BoxRetrievalDataset:
    """The method's ``open_data`` hook: ``split`` of ``config.data`` with boxes and retrieved layouts."""
    bank, path = resolve_bank(config, assets)
    return BoxRetrievalDataset(open_base(config, split, train), bank, config.section("bachgan"),
                               config.model.label_nc, config.model.contain_dontcare, path)


def release_assets(config: Config, dataset: Any) -> dict[str, Any]:
    """The method's ``release_assets`` hook: the training bank travels with the model (its file, or
    the in-memory bank written out)."""
    if not isinstance(dataset, BoxRetrievalDataset):
        return {}
    if dataset.bank_path is not None:
        return {BANK_FILE: Path(dataset.bank_path)}
    return {BANK_FILE: dataset.bank.save}
