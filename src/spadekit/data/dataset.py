"""Torch datasets of label map / photo (/ instance map) samples, ``open_dataset`` and ``make_loader``.

Every item is a dict::

    label     (1, H, W) int64   class ids; 255 (don't-care) already mapped to label_nc
    instance  (1, H, W) int64   instance ids (only when the configuration uses instances)
    image     (3, H, W) float32 photo in [-1, 1]
    offsets   (2, H, W) float32 intra-class offsets (only with ``data.offsets``; :mod:`spadekit.data.offsets`)
    path      str               the photo's path (``toy:<split>/<index>`` for generated toy scenes)

Bad files raise :class:`~spadekit.errors.DataError` with the file name and the problem, in the main
process and (through :func:`make_loader`) from DataLoader workers alike.

Both datasets split an item into :meth:`load` (the pictures as read and checked, before any
geometry) and :meth:`finish` (one crop/flip for all of them, then tensors), so that a method can
bring its own maps along with the same geometry (BachGAN's retrieved layouts).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from spadekit.config import DataConfig, ModelConfig, load_config
from spadekit.data.formats import LABEL_READERS, PHOTOS_TO_LABEL_SIZE, SPLITS, Sample, scan_dataset
from spadekit.data.labels import map_dontcare
from spadekit.data.palette import DONTCARE, Palette, colors_to_ids, load_palette
from spadekit.data.toy import TOY_CLASSES, ToyScene, render_scene, scene_seed
from spadekit.data.transforms import Params, Preprocess, transform_triplet
from spadekit.errors import ConfigError, DataError, SpadekitError

# ------------------------------------------------------------------------------ reading files


def open_picture(path: Path, what: str = "image") -> Image.Image:
    """Open and fully decode a picture; a DataError naming the file when it is missing or corrupt."""
    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected a {what} file") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: cannot read {what} (not a picture file or corrupt)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read {what} (corrupt or truncated: {exc})") from None
    return img


def _count_colors(rgb: np.ndarray) -> int:
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    return int(np.unique(packed).size)


def label_picture(img: Image.Image, path: Path, palette: Palette | None = None) -> Image.Image:
    """A label picture as a single-channel picture of ids (modes L, P, I or I;16).

    Grayscale and palette-mode ("P") PNGs hold ids already. RGB label maps are converted with
    ``palette``; without one an RGB picture is accepted only when it is gray (R = G = B), otherwise
    it is reported as colour-coded.
    """
    mode = img.mode
    if mode in ("L", "P", "I", "I;16"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode.startswith("I;16"):
        return img.convert("I")
    if mode == "LA":
        return img.getchannel("L")
    if mode in ("RGB", "RGBA"):
        rgb = np.asarray(img.convert("RGB"))
        if palette is not None:
            return Image.fromarray(colors_to_ids(rgb, palette, str(path)), mode="L")
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return Image.fromarray(np.ascontiguousarray(rgb[..., 0]), mode="L")
        raise DataError(
            f"{path}: label map looks colour-coded (RGB with {_count_colors(rgb)} colours) where integer ids "
            "are expected; convert it to ids or give a palette file (data.palette=PALETTE.json)"
        )
    raise DataError(f"{path}: unsupported label map mode {mode!r} (expected 8/16-bit grayscale ids, or RGB with a palette)")


def instance_picture(img: Image.Image, path: Path) -> Image.Image:
    """An instance picture as single-channel ids (8/16-bit gray kept; RGB colours packed into 24-bit ids)."""
    mode = img.mode
    if mode in ("L", "P", "I", "I;16"):
        return img
    if mode == "1" or mode == "LA":
        return img.convert("L")
    if mode.startswith("I;16"):
        return img.convert("I")
    if mode in ("RGB", "RGBA"):
        rgb = np.asarray(img.convert("RGB")).astype(np.int32)
        return Image.fromarray((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2], mode="I")
    raise DataError(f"{path}: unsupported instance map mode {mode!r} (expected 8/16-bit grayscale ids)")


def check_label_ids(ids: np.ndarray, label_nc: int, contain_dontcare: bool, path: Path | str) -> None:
    """Raise a DataError naming ``path`` when ids fall outside what the model accepts.

    Accepted: ``0 .. label_nc-1``, plus ``label_nc`` and 255 (don't-care) when ``contain_dontcare``.
    """
    channels = label_nc + int(contain_dontcare)
    if ids.size == 0 or int(ids.max()) < channels:
        return
    bad = ids >= channels
    if contain_dontcare:
        bad &= ids != DONTCARE
    if not bad.any():
        return
    found = np.unique(ids[bad])
    if not contain_dontcare and found.tolist() == [DONTCARE]:
        raise DataError(
            f"{path}: has don't-care pixels (value 255) but the configuration has no don't-care channel "
            "(set model.contain_dontcare=true)"
        )
    shown = ", ".join(map(str, found[:10].tolist())) + (f" and {found.size - 10} more" if found.size > 10 else "")
    allowed = f"0..{channels - 1}" + (" and 255 (don't-care)" if contain_dontcare else "")
    raise DataError(f"{path}: label ids {shown} are out of range (model.label_nc={label_nc}; allowed {allowed})")


def shift_label_ids(ids: np.ndarray, offset: int) -> np.ndarray:
    """Raw ids ``v`` → ``v + offset``, and the don't-care value 255 → 0 (see ``data.label_offset``)."""
    shifted = ids.astype(np.int64) + offset
    shifted[ids == DONTCARE] = 0
    return shifted


def _finish(
    label: torch.Tensor,
    image: torch.Tensor,
    instance: torch.Tensor | None,
    label_nc: int,
    contain_dontcare: bool,
    path: str,
    offsets: torch.Tensor | None = None,
) -> dict[str, Any]:
    label = map_dontcare(label, label_nc, contain_dontcare, source=path)
    item: dict[str, Any] = {"label": label, "image": image, "path": path}
    if instance is not None:
        item["instance"] = instance
    if offsets is not None:
        item["offsets"] = offsets
    return item


def _finish_raw(
    raw: "RawSample",
    preprocess: Preprocess,
    params: Params | None,
    label_nc: int,
    contain_dontcare: bool,
    offsets: "OffsetMaps | None",
) -> dict[str, Any]:
    """The item of a loaded sample: one crop/flip draw (``params`` or a fresh one) for every picture
    and, with ``offsets``, the intra-class offset map of its annotation."""
    params = params if params is not None else preprocess.sample(*raw.label.size)
    label_t, image_t, instance_t = transform_triplet(raw.label, raw.image, raw.instance, preprocess, params=params)
    offset_map = None
    if offsets is not None:
        annotation = raw.annotation if raw.annotation is not None else np.asarray(raw.label)
        offset_map = offsets.make(annotation, preprocess, params)
    return _finish(label_t, image_t, instance_t, label_nc, contain_dontcare, raw.path, offset_map)


@dataclass(frozen=True)
class OffsetMaps:
    """Which intra-class offset maps items carry (``data.offsets``, ``data.offsets_ignore``)."""

    normalize: bool = True
    ignore_value: int | None = 0

    @classmethod
    def from_config(cls, data: DataConfig) -> "OffsetMaps | None":
        if data.offsets == "none":
            return None
        return cls(data.offsets == "normalized", data.offsets_ignore)

    def make(self, raw_ids: np.ndarray, preprocess: Preprocess, params: Params) -> torch.Tensor:
        """The (2, H, W) map of a raw annotation, transformed like its label map."""
        from spadekit.data.offsets import intra_class_offsets, transform_offsets

        return transform_offsets(intra_class_offsets(raw_ids, self.normalize, self.ignore_value), preprocess, params)


# ------------------------------------------------------------------------------ datasets


class RawSample(NamedTuple):
    """One sample as read and checked, before preprocessing (all pictures the same size)."""

    label: Image.Image
    """Single-channel ids (after the palette and ``data.label_offset``; don't-care still 255)."""
    image: Image.Image | None
    """RGB photo (None when not asked for)."""
    instance: Image.Image | None
    path: str
    """The photo's path (``toy:<split>/<index>`` for generated toy scenes)."""
    annotation: np.ndarray | None = None
    """The ids as the file has them (before ``data.label_offset``): intra-class offsets are
    computed on them, as the official code does."""


class PairedDataset(Dataset):
    """Label map + photo (+ instance map) files, preprocessed as the official SPADE pipeline does."""

    def __init__(
        self,
        samples: Sequence[Sample],
        label_nc: int,
        contain_dontcare: bool,
        use_instance: bool,
        preprocess: Preprocess,
        palette: Palette | None = None,
        class_names: Sequence[str] | None = None,
        label_offset: int = 0,
        check_hint: str | None = None,
        read_label: Callable[[Path], np.ndarray] | None = None,
        photo_to_label_size: bool = False,
        offsets: OffsetMaps | None = None,
    ) -> None:
        self.samples = list(samples)
        self.read_label = read_label
        """Turns a sample's label key into ids (formats without one label file per sample)."""
        self.photo_to_label_size = photo_to_label_size
        """Resize photos (bicubic) to their label map's size instead of refusing another size."""
        self.offsets = offsets
        self.label_offset = label_offset
        self.check_hint = check_hint
        """Appended to errors about a file (which command lists every bad file at once)."""
        self.label_nc = label_nc
        self.contain_dontcare = contain_dontcare
        self.use_instance = use_instance
        self.preprocess = preprocess
        self.palette = palette
        self.class_names = tuple(class_names) if class_names else (palette.names if palette else None)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.finish(self.load(index))

    def entry_name(self, index: int) -> str:
        """A stable name of sample ``index``: its label file's name."""
        return self.samples[index].label.name

    def load(self, index: int, image: bool = True) -> RawSample:
        """Read and check sample ``index`` (the photo only when ``image``)."""
        try:
            return self._load(index, image)
        except DataError as exc:
            if not self.check_hint:
                raise
            # Files are read as training reaches them: point to the command that finds every bad file now.
            raise DataError(f"{exc} ({self.check_hint})") from None

    def _load(self, index: int, with_image: bool) -> RawSample:
        sample = self.samples[index]
        if self.read_label is not None:
            label = Image.fromarray(self.read_label(sample.label))
        else:
            label = label_picture(open_picture(sample.label, "label map"), sample.label, self.palette)
        image = open_picture(sample.image, "image") if with_image else None
        if image is not None and self.photo_to_label_size and image.size != label.size:
            image = image.convert("RGB").resize(label.size, Image.BICUBIC)
        instance = None
        if self.use_instance:
            if sample.instance is None:
                raise DataError(f"{sample.label}: no instance map for this label map")
            instance = instance_picture(open_picture(sample.instance, "instance map"), sample.instance)
        for other, path in ((image, sample.image), (instance, sample.instance)):
            if other is not None and other.size != label.size:
                raise DataError(
                    f"{path}: size {other.size[0]}x{other.size[1]} differs from its label map {sample.label} "
                    f"({label.size[0]}x{label.size[1]})"
                )
        raw = ids = np.asarray(label)
        if self.label_offset:
            ids = shift_label_ids(ids, self.label_offset)
            label = Image.fromarray(ids.astype(np.uint8 if int(ids.max(initial=0)) < 256 else np.int32))
        check_label_ids(ids, self.label_nc, self.contain_dontcare, sample.label)
        return RawSample(label, image.convert("RGB") if image is not None else None, instance, str(sample.image), raw)

    def finish(self, raw: RawSample, params: Params | None = None) -> dict[str, Any]:
        """The item of a loaded sample: ``params`` (or a fresh draw) crop and flip every picture."""
        return _finish_raw(raw, self.preprocess, params, self.label_nc, self.contain_dontcare, self.offsets)


class ToySceneDataset(Dataset):
    """Toy scenes generated on the fly (deterministic from ``seed``; each split has its own seed stream).

    Scene ``i`` of a split is ``render_scene(scene_seed(seed, i, split), size)``, exactly what
    ``spadekit toy make`` writes as file ``i``, then the usual preprocessing.
    """

    def __init__(
        self,
        num_scenes: int,
        seed: int = 0,
        split: str = "train",
        size: tuple[int, int] = (128, 128),
        preprocess: Preprocess | None = None,
        use_instance: bool = True,
        label_nc: int = len(TOY_CLASSES),
        cache: bool = False,
        offsets: OffsetMaps | None = None,
        style_pairs: bool = False,
    ) -> None:
        if num_scenes < 1:
            raise ConfigError("data.toy_scenes must be >= 1")
        if label_nc < len(TOY_CLASSES):
            raise ConfigError(f"toy scenes have {len(TOY_CLASSES)} classes but model.label_nc={label_nc}")
        scene_seed(seed, 0, split)  # validates the split
        self.num_scenes = num_scenes
        self.seed = seed
        self.split = split
        self.size = size
        self.preprocess = preprocess or Preprocess.for_split("fixed", size[0], size[0], size[0] / size[1], train=False)
        self.use_instance = use_instance
        self.label_nc = label_nc
        self.contain_dontcare = False
        self.class_names = TOY_CLASSES
        self.offsets = offsets
        self.style_pairs = style_pairs
        self._cache: dict[int, ToyScene] | None = {} if cache else None

    def __len__(self) -> int:
        return self.num_scenes

    def scene(self, index: int) -> ToyScene:
        """The raw arrays of scene ``index`` (before preprocessing)."""
        if not 0 <= index < self.num_scenes:
            raise IndexError(index)
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        seed = scene_seed(self.seed, index, self.split)
        scene = render_scene(seed, self.size, style_seed=seed if self.style_pairs else None)
        if self._cache is not None:
            self._cache[index] = scene
        return scene

    def style_partner(self, index: int) -> ToyScene:
        """With ``style_pairs``: the next scene's layout in scene ``index``'s look (the same style seed)."""
        if not 0 <= index < self.num_scenes:
            raise IndexError(index)
        partner = scene_seed(self.seed, (index + 1) % self.num_scenes, self.split)
        return render_scene(partner, self.size, style_seed=scene_seed(self.seed, index, self.split))

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.finish(self.load(index))
        if self.style_pairs:
            item["style_image"] = self.finish(self._as_raw(self.style_partner(index), index, True, False))["image"]
        return item

    def entry_name(self, index: int) -> str:
        """A stable name of scene ``index``: ``toy:<split>/<index>``."""
        return f"toy:{self.split}/{index:06d}"

    def load(self, index: int, image: bool = True) -> RawSample:
        """Scene ``index`` as pictures (the photo only when ``image``)."""
        return self._as_raw(self.scene(index), index, image, self.use_instance)

    def _as_raw(self, scene: ToyScene, index: int, image: bool, instance: bool) -> RawSample:
        return RawSample(
            Image.fromarray(scene.label, mode="L"),
            Image.fromarray(scene.image, mode="RGB") if image else None,
            Image.fromarray(scene.instance, mode="L") if instance else None,
            self.entry_name(index),
        )

    def finish(self, raw: RawSample, params: Params | None = None) -> dict[str, Any]:
        """The item of a loaded scene: ``params`` (or a fresh draw) crop and flip every picture."""
        return _finish_raw(raw, self.preprocess, params, self.label_nc, False, self.offsets)


# ------------------------------------------------------------------------------ entry points


def open_dataset(
    root: str | Path | None,
    preset: str = "coco",
    split: str = "train",
    train: bool | None = None,
    data: DataConfig | None = None,
    model: ModelConfig | None = None,
) -> Dataset:
    """Open a dataset in any supported format.

    Args:
        root: dataset folder; ``None`` uses ``data.root`` (for the toy format with no root, scenes
            are generated in memory).
        preset: preset whose ``data`` and ``model`` sections are the defaults (``spadekit list``).
        split: ``train`` or ``val``.
        train: training-time preprocessing (random crops and flips) when true, the official test-time
            preprocessing when false; default: ``split == "train"``.
        data, model: explicit configurations that replace the preset's.
    Returns:
        A :class:`PairedDataset` or :class:`ToySceneDataset` (items described in the module docstring).
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use train or val")
    train = split == "train" if train is None else train
    if data is None or model is None:
        config = load_config(preset)
        data = data or config.data
        model = model or config.model
    root = root if root is not None else data.root
    preprocess = Preprocess.for_split(data.preprocess, data.load_size, data.crop_size, model.aspect_ratio, train, data.no_flip)
    if data.format == "toy" and root is None:
        size = (data.crop_size, round(data.crop_size / model.aspect_ratio))
        return ToySceneDataset(
            data.toy_scenes, data.toy_seed, split, size, preprocess, model.use_instance, model.label_nc,
            offsets=OffsetMaps.from_config(data), style_pairs=data.toy_style_pairs,
        )
    if data.toy_style_pairs:
        raise ConfigError("data.toy_style_pairs pairs two layouts in one look, which only the generated toy world has "
                          "(data.format=toy without data.root)")
    if root is None:
        raise ConfigError(f"data.format={data.format!r} needs a dataset root (data.root=PATH)")
    root = Path(root)
    scan = scan_dataset(data.format, root, split, model.use_instance, train)
    if scan.problems:
        raise DataError(problem_list(scan.problems, check_hint(root, preset)))
    if not scan.samples:
        raise DataError(f"{root}: no {split} samples found for data.format={data.format!r} (looked in {scan.where})")
    palette = None
    if data.palette:
        palette = load_palette(data.palette)
    elif data.format in ("folder", "toy") and (root / "palette.json").is_file():
        palette = load_palette(root / "palette.json")
    return PairedDataset(
        scan.samples, model.label_nc, model.contain_dontcare, model.use_instance, preprocess, palette, data.class_names,
        data.label_offset,
        check_hint=check_hint(root, preset),
        read_label=LABEL_READERS.get(data.format),
        photo_to_label_size=data.format in PHOTOS_TO_LABEL_SIZE,
        offsets=OffsetMaps.from_config(data),
    )


MAX_LISTED = 10
"""Problems listed in one error; the rest are counted (``spadekit data check`` lists them all)."""


def check_hint(root: Path, preset: str) -> str:
    """The command that lists every problem of a dataset at once."""
    return f"`spadekit data check {root} --preset {preset}` lists every problem at once"


def problem_list(problems: Sequence[tuple[Path, str]], hint: str) -> str:
    """One line for a single problem, else a numbered block of up to :data:`MAX_LISTED`, with ``hint``."""
    if len(problems) == 1:
        path, problem = problems[0]
        return f"{path}: {problem} ({hint})"
    lines = [f"  {path}: {problem}" for path, problem in problems[:MAX_LISTED]]
    if len(problems) > MAX_LISTED:
        lines.append(f"  ... and {len(problems) - MAX_LISTED} more")
    return f"{len(problems)} problems in the dataset ({hint}):\n" + "\n".join(lines)


def _worker_message(exc: SpadekitError) -> str:
    """The original one-line message of an error re-raised by a DataLoader worker (torch adds a traceback)."""
    text = str(exc)
    if not text.startswith("Caught "):
        return text
    marker = f"{type(exc).__name__}: "
    for line in reversed(text.splitlines()):
        if marker in line:
            return line.split(marker, 1)[1]
    return text.splitlines()[-1]


class SpadeLoader(DataLoader):
    """A DataLoader whose worker errors about user data surface as the original one-line :class:`SpadekitError`."""

    def __iter__(self):  # type: ignore[override]
        iterator = super().__iter__()
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except SpadekitError as exc:
                raise type(exc)(_worker_message(exc)) from None
            yield batch


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    data: DataConfig,
    sampler: torch.utils.data.Sampler | None = None,
    drop_last: bool = False,
    generator: torch.Generator | None = None,
) -> DataLoader:
    """A DataLoader with the configured workers and pinned memory.

    Args:
        shuffle: ignored when a ``sampler`` (e.g. a DistributedSampler) is given.
        data: reads ``num_workers`` and ``pin_memory``.
        generator: seeds the shuffling (and the workers' base seed) for reproducible runs.
    """
    workers = max(0, int(data.num_workers))
    return SpadeLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=workers,
        pin_memory=bool(data.pin_memory) and torch.cuda.is_available(),
        drop_last=drop_last,
        persistent_workers=workers > 0,
        generator=generator,
    )
