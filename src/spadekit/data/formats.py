"""Dataset layouts: where the label maps, photos and instance maps of each format live, and how they pair.

Every format turns a root folder and a split into a list of :class:`Sample` (label, image, instance
paths) plus the files that could not be paired. Pairing is by key, never by sorted position, so one
missing file cannot shift every pair after it.

==================  =====================================================================================
``cityscapes``      ``gtFine/{split}/<city>/*_gtFine_labelIds.png`` (+ ``*_gtFine_instanceIds.png``, 16-bit),
                    ``leftImg8bit/{split}/<city>/*_leftImg8bit.png``; key = ``<city>_<seq>_<frame>``
``ade20k``          ``ADE_{split}_%08d.jpg`` (photo) and ``ADE_{split}_%08d.png`` (label) anywhere under the
                    root (the ADEChallengeData2016 ``images/`` and ``annotations/`` trees); key = stem.
                    ``split`` val reads ``ADE_val_*``.
``ade20k-outdoor``  the ADE20K images whose scene is outdoor (:func:`ade20k_outdoor_stems`)
``coco``            ``{split}_label/*.png``, ``{split}_img/*.jpg``, ``{split}_inst/*.png`` (COCO-Stuff as prepared
                    for SPADE); at training time also ``{split}_{label,img,inst}_portrait/`` when present
``folder``/``toy``  ``labels/``, ``images/``, ``instances/`` (optional) under the root, or under
                    ``root/{split}/`` when that folder exists; key = stem
``celebamask-hq``   ``CelebAMask-HQ-mask-anno/<k // 2000>/<k:05d>_<part>.png`` (one binary mask per face part,
                    merged into one label map, :mod:`spadekit.data.celebamask_hq`) and ``CelebA-HQ-img/<k>.jpg``;
                    faces k >= 28000 are ``val``. Photos are resized (bicubic) to the 512×512 masks.
==================  =====================================================================================

Samples are ordered by the official "natural" sort of the label paths (digits compare as numbers).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from spadekit.errors import DataError

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".tif", ".tiff", ".webp")
FORMATS = ("cityscapes", "ade20k", "ade20k-outdoor", "coco", "folder", "toy", "celebamask-hq")
SPLITS = ("train", "val")

FOLDER_LABEL_DIRS = ("labels", "label")
FOLDER_IMAGE_DIRS = ("images", "image", "img")
FOLDER_INSTANCE_DIRS = ("instances", "instance", "inst")


@dataclass(frozen=True)
class Sample:
    """The files of one training pair."""

    label: Path
    image: Path
    instance: Path | None = None


@dataclass
class Scan:
    """What a layout found for one split."""

    samples: list[Sample] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)
    """(file, what is wrong) for files that could not be paired."""
    where: str = ""
    """The folders that were searched (for messages)."""


def natural_key(path: str | Path) -> list:
    """Sort key that orders ``img2`` before ``img10`` (the official code's natural sort)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def _list(folder: Path, recursive: bool) -> list[Path]:
    """Image files in ``folder`` (following symlinks when recursive); [] when it does not exist."""
    if not folder.is_dir():
        return []
    if not recursive:
        return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p.name))
    found = []
    for dirpath, _, filenames in os.walk(folder, followlinks=True):
        found.extend(Path(dirpath) / f for f in filenames if is_image_file(f))
    return sorted(found)


def _index(paths: list[Path], key: Callable[[Path], str], what: str, problems: list[tuple[Path, str]]) -> dict[str, Path]:
    table: dict[str, Path] = {}
    for path in paths:
        k = key(path)
        if k in table:
            problems.append((path, f"two {what} files share the key {k!r} (the other is {table[k]})"))
            continue
        table[k] = path
    return table


def pair(
    labels: dict[str, Path],
    images: dict[str, Path],
    instances: dict[str, Path] | None,
    problems: list[tuple[Path, str]],
    image_hint: Callable[[Path], str] = lambda p: "an image with the same name",
) -> list[Sample]:
    """Join the three tables on their keys; unpaired files become problems."""
    samples = []
    for key, label in labels.items():
        image = images.get(key)
        instance = instances.get(key) if instances is not None else None
        if image is None:
            problems.append((label, f"label map has no matching image (expected {image_hint(label)})"))
            continue
        if instances is not None and instance is None:
            problems.append((label, "label map has no matching instance map"))
            continue
        samples.append(Sample(label, image, instance))
    for key, image in images.items():
        if key not in labels:
            problems.append((image, "image has no matching label map"))
    if instances is not None:
        for key, instance in instances.items():
            if key not in labels:
                problems.append((instance, "instance map has no matching label map"))
    samples.sort(key=lambda s: natural_key(s.label))
    return samples


# ------------------------------------------------------------------------------ formats


def _cityscapes_key(path: Path) -> str:
    return "_".join(path.name.split("_")[:3])


def scan_cityscapes(root: Path, split: str, use_instance: bool, train: bool) -> Scan:
    scan = Scan(where=f"{root / 'gtFine' / split} and {root / 'leftImg8bit' / split}")
    gt = _list(root / "gtFine" / split, recursive=True)
    labels = _index([p for p in gt if p.name.endswith("_labelIds.png")], _cityscapes_key, "label", scan.problems)
    instances = (
        _index([p for p in gt if p.name.endswith("_instanceIds.png")], _cityscapes_key, "instance", scan.problems)
        if use_instance
        else None
    )
    images = _index(_list(root / "leftImg8bit" / split, recursive=True), _cityscapes_key, "image", scan.problems)

    def hint(label: Path) -> str:
        city = label.parent.name
        return str(root / "leftImg8bit" / split / city / f"{_cityscapes_key(label)}_leftImg8bit.png")

    scan.samples = pair(labels, images, instances, scan.problems, hint)
    return scan


_ADE_NAME = re.compile(r"^ADE_(train|val)_\d+\.(jpg|png)$")


def scan_ade20k(root: Path, split: str, use_instance: bool, train: bool, keep: set[str] | None = None) -> Scan:
    if use_instance:
        raise DataError("ade20k has no instance maps: set model.use_instance=false")
    scan = Scan(where=f"ADE_{split}_*.jpg / .png under {root}")
    labels: list[Path] = []
    images: list[Path] = []
    for path in _list(root, recursive=True):
        match = _ADE_NAME.match(path.name)
        if not match or match.group(1) != split or (keep is not None and path.stem not in keep):
            continue
        (images if match.group(2) == "jpg" else labels).append(path)
    scan.samples = pair(
        _index(labels, lambda p: p.stem, "label", scan.problems),
        _index(images, lambda p: p.stem, "image", scan.problems),
        None,
        scan.problems,
        lambda label: f"{label.stem}.jpg",
    )
    return scan


OUTDOOR_SCENES = frozenset(
    """
    airfield alley amusement_park apartment_building_outdoor aqueduct arch athletic_field_outdoor backyard
    badlands balcony_exterior bamboo_forest barn baseball_field basketball_court_outdoor bayou beach beach_house
    boardwalk boat_deck bog botanical_garden bridge building_facade bullring bus_station_outdoor butte cabin_outdoor
    campsite campus canal_natural canal_urban canyon castle cathedral_outdoor cemetery chalet church_outdoor cliff
    coast construction_site corn_field corral cottage cottage_garden courtyard covered_bridge_exterior creek
    crosswalk dam desert_road desert_sand desert_vegetation dirt_track dock doorway_outdoor downtown driveway dune
    excavation farm field_cultivated field_road field_wild fire_escape fishpond football_field forest_broadleaf
    forest_needleleaf forest_path forest_road formal_garden fountain garden gas_station gazebo_exterior glacier
    golf_course greenhouse_outdoor hangar_outdoor harbor hayfield heliport highway hill hot_spring hotel_outdoor
    house ice_floe ice_shelf iceberg industrial_area inn_outdoor islet japanese_garden kasbah kennel_outdoor
    lagoon lake lake_natural landing_deck lawn library_outdoor lighthouse loading_dock mansion marsh market_outdoor
    medina mosque_outdoor motel mountain mountain_path mountain_snowy oast_house ocean office_building oil_refinery
    oilrig orchard outdoor pagoda palace park parking_lot pasture patio pavilion picnic_area pier playground plaza
    pond porch promenade raceway racecourse railroad_track rainforest residential_neighborhood rice_paddy river
    rock_arch roof_garden rope_bridge ruin runway sandbox sea_cliff shed ski_resort ski_slope sky skyscraper slum
    snowfield soccer_field stadium_baseball stadium_football street swamp swimming_pool_outdoor synagogue_outdoor
    temple_asia tennis_court_outdoor toll_plaza topiary_garden tower train_railway tree_farm trench valley
    vegetable_garden viaduct village vineyard volcano water_tower waterfall wheat_field wind_farm windmill yard
    """.split()
)
"""Outdoor scene categories of ADE20K's ``sceneCategories.txt`` (a name ending in ``outdoor`` also counts)."""
ADE_OUTDOOR_LIST = "ade20k_outdoor_images.txt"


def is_outdoor_scene(scene: str) -> bool:
    """spadekit's rule for ADE20K-outdoor: the scene is in :data:`OUTDOOR_SCENES` or its name ends in ``outdoor``."""
    scene = scene.strip().lower()
    return scene in OUTDOOR_SCENES or scene.endswith("outdoor")


def ade20k_outdoor_stems(root: Path) -> set[str]:
    """Image stems of the ADE20K-outdoor subset under ``root``.

    A file ``ade20k_outdoor_images.txt`` (one stem per line) at the root wins, so a published list can
    be used as is; otherwise ADE20K's own ``sceneCategories.txt`` (``ADE_train_00000001 airport_terminal``
    lines, shipped in ADEChallengeData2016) is filtered with :func:`is_outdoor_scene`.
    """
    explicit = root / ADE_OUTDOOR_LIST
    if explicit.is_file():
        return {line.split()[0] for line in explicit.read_text().splitlines() if line.strip()}
    candidates = [root / "sceneCategories.txt", *sorted(root.glob("*/sceneCategories.txt"))]
    for path in candidates:
        if path.is_file():
            stems = set()
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 2 and is_outdoor_scene(parts[1]):
                    stems.add(parts[0])
            return stems
    raise DataError(
        f"{root}: ade20k-outdoor needs ADE20K's sceneCategories.txt (in ADEChallengeData2016) at the root or one "
        f"folder below, or a list of image stems in {root / ADE_OUTDOOR_LIST}"
    )


def scan_ade20k_outdoor(root: Path, split: str, use_instance: bool, train: bool) -> Scan:
    return scan_ade20k(root, split, use_instance, train, keep=ade20k_outdoor_stems(root))


def scan_coco(root: Path, split: str, use_instance: bool, train: bool) -> Scan:
    scan = Scan(where=f"{root}/{split}_label, {split}_img" + (f", {split}_inst" if use_instance else ""))
    suffixes = [""] + (["_portrait"] if train and (root / f"{split}_label_portrait").is_dir() else [])
    labels: list[Path] = []
    images: list[Path] = []
    instances: list[Path] = []
    for suffix in suffixes:
        labels += _list(root / f"{split}_label{suffix}", recursive=False)
        images += _list(root / f"{split}_img{suffix}", recursive=False)
        if use_instance:
            instances += _list(root / f"{split}_inst{suffix}", recursive=False)
    scan.samples = pair(
        _index(labels, lambda p: p.stem, "label", scan.problems),
        _index(images, lambda p: p.stem, "image", scan.problems),
        _index(instances, lambda p: p.stem, "instance", scan.problems) if use_instance else None,
        scan.problems,
        lambda label: str(label.parent.parent / label.parent.name.replace("_label", "_img") / f"{label.stem}.jpg"),
    )
    return scan


def _folder_base(root: Path, split: str) -> Path | None:
    """``root/split`` when the dataset has split folders (None if this split is absent), else ``root``."""
    if (root / split).is_dir():
        return root / split
    if any((root / s).is_dir() for s in SPLITS):
        return None
    return root


def split_name(format: str, root: str | Path | None, split: str) -> str:
    """The split a scan really reads: ``split``, or ``"all"`` for a folder-layout dataset without
    ``train/`` / ``val/`` subfolders (every pair under the root serves every split)."""
    if format in ("folder", "toy") and root is not None and Path(root).is_dir() and _folder_base(Path(root), split) == Path(root):
        return "all"
    return split


def folder_dirs(root: Path, split: str) -> tuple[Path | None, Path | None, Path | None]:
    """(labels, images, instances) folders of the folder layout; None where absent."""
    base = _folder_base(root, split)
    if base is None:
        return None, None, None

    def first(names: tuple[str, ...]) -> Path | None:
        return next((base / n for n in names if (base / n).is_dir()), None)

    return first(FOLDER_LABEL_DIRS), first(FOLDER_IMAGE_DIRS), first(FOLDER_INSTANCE_DIRS)


def scan_folder(root: Path, split: str, use_instance: bool, train: bool) -> Scan:
    base = _folder_base(root, split)
    if base is None:  # split folders exist, but not this one: no samples
        return Scan(where=str(root / split))
    label_dir, image_dir, instance_dir = folder_dirs(root, split)
    scan = Scan(where=str(base))
    if label_dir is None or image_dir is None:
        missing = "labels/" if label_dir is None else "images/"
        raise DataError(f"{base}: no {missing} folder (the folder format needs labels/ and images/, optionally instances/)")
    if use_instance and instance_dir is None:
        raise DataError(f"{base}: no instances/ folder, but the configuration uses instance maps (model.use_instance)")
    scan.samples = pair(
        _index(_list(label_dir, False), lambda p: p.stem, "label", scan.problems),
        _index(_list(image_dir, False), lambda p: p.stem, "image", scan.problems),
        _index(_list(instance_dir, False), lambda p: p.stem, "instance", scan.problems) if use_instance else None,
        scan.problems,
        lambda label: str(image_dir / f"{label.stem}.<png|jpg>"),
    )
    return scan


def scan_celebamask_hq(root: Path, split: str, use_instance: bool, train: bool) -> Scan:
    from spadekit.data.celebamask_hq import scan_celebamask_hq as scan

    return scan(root, split, use_instance, train)


def _read_celebamask_hq_label(key: Path):
    from spadekit.data.celebamask_hq import read_label

    return read_label(key)


LABEL_READERS: dict[str, Callable[[Path], "object"]] = {"celebamask-hq": _read_celebamask_hq_label}
"""Formats whose label "path" is a key that a reader turns into an (H, W) id array (no single file)."""
PHOTOS_TO_LABEL_SIZE = frozenset({"celebamask-hq"})
"""Formats whose photos come at another resolution than their labels: photos are resized to the label size."""


SCANNERS: dict[str, Callable[[Path, str, bool, bool], Scan]] = {
    "cityscapes": scan_cityscapes,
    "ade20k": scan_ade20k,
    "ade20k-outdoor": scan_ade20k_outdoor,
    "coco": scan_coco,
    "folder": scan_folder,
    "toy": scan_folder,  # toy scenes written by `spadekit toy make` are in the folder layout
    "celebamask-hq": scan_celebamask_hq,
}


def scan_dataset(format: str, root: str | Path, split: str, use_instance: bool, train: bool = True) -> Scan:
    """Find the samples of one split; unpaired files are listed in ``Scan.problems``, not raised."""
    if format not in SCANNERS:
        raise DataError(f"unknown data.format {format!r}; choose one of {', '.join(FORMATS)}")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use train or val")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset root not found" if not root.exists() else f"{root}: not a folder")
    return SCANNERS[format](root, split, use_instance, train)
