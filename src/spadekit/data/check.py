"""``spadekit data check``: scan a dataset and report every problem with the files it concerns.

Problems found (kinds): missing partner, duplicate key, unreadable file, size mismatch, colour-coded
label map, unknown palette colour, label ids out of range, don't-care without channel. The report
ends with the class histogram and the ``label_nc`` / don't-care setting the data suggests.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spadekit.data.dataset import instance_picture, label_picture, open_picture
from spadekit.data.formats import LABEL_READERS, PHOTOS_TO_LABEL_SIZE, SPLITS, scan_dataset
from spadekit.data.palette import DONTCARE, Palette
from spadekit.errors import DataError


@dataclass
class Problem:
    kind: str
    path: Path
    detail: str


@dataclass
class CheckReport:
    """Everything ``check_dataset`` found."""

    root: Path
    format: str
    label_nc: int
    contain_dontcare: bool
    samples: dict[str, int] = field(default_factory=dict)
    """Samples per split that was found."""
    problems: list[Problem] = field(default_factory=list)
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """Pixel count per label id (index 255 = don't-care)."""
    images_per_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """How many label maps contain each id."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def suggestion(self) -> tuple[int, bool] | None:
        """(label_nc, contain_dontcare) that would fit the ids seen, or None when no label was read."""
        if not self.histogram.size or not self.histogram.any():
            return None
        seen = np.flatnonzero(self.histogram)
        ids = seen[seen != DONTCARE]
        return (int(ids.max()) + 1 if ids.size else 1), bool(self.histogram[DONTCARE:DONTCARE + 1].sum())

    def format_text(self, class_names: list[str] | tuple[str, ...] | None = None, max_files: int = 10) -> str:
        lines = [f"dataset {self.root} (format {self.format}): " + ", ".join(f"{n} {s} samples" for s, n in self.samples.items())]
        by_kind: dict[str, list[Problem]] = defaultdict(list)
        for problem in self.problems:
            by_kind[problem.kind].append(problem)
        if by_kind:
            lines.append(f"{len(self.problems)} problem(s):")
            for kind, items in by_kind.items():
                lines.append(f"  {kind} ({len(items)}):")
                for p in items[:max_files]:
                    lines.append(f"    {p.path}: {p.detail}")
                if len(items) > max_files:
                    lines.append(f"    ... and {len(items) - max_files} more")
        else:
            lines.append("no problems found")
        if self.histogram.any():
            total = int(self.histogram.sum())
            lines.append("class histogram (id, name, share of pixels, label maps containing it):")
            for i in np.flatnonzero(self.histogram):
                name = "don't-care" if i == DONTCARE else (class_names[i] if class_names and i < len(class_names) else "")
                lines.append(f"  {i:5d} {name:<20} {100 * self.histogram[i] / total:7.3f}% {int(self.images_per_id[i]):7d}")
            suggested = self.suggestion()
            if suggested:
                label_nc, dontcare = suggested
                lines.append(
                    f"suggested: model.label_nc={label_nc} model.contain_dontcare={str(dontcare).lower()} "
                    f"(configured: label_nc={self.label_nc}, contain_dontcare={str(self.contain_dontcare).lower()})"
                )
                if label_nc < self.label_nc:
                    lines.append(
                        f"  note: ids {label_nc}..{self.label_nc - 1} never occur; that is fine when the preset "
                        "fixes the class list (e.g. ADE20K and COCO-Stuff)"
                    )
        return "\n".join(lines)


def _accumulate(report: CheckReport, ids: np.ndarray) -> None:
    counts = np.bincount(ids.ravel().astype(np.int64))
    if counts.size > report.histogram.size:
        report.histogram = np.pad(report.histogram, (0, counts.size - report.histogram.size))
        report.images_per_id = np.pad(report.images_per_id, (0, counts.size - report.images_per_id.size))
    report.histogram[: counts.size] += counts
    report.images_per_id[: counts.size] += counts > 0


def _check_ids(report: CheckReport, ids: np.ndarray, path: Path) -> None:
    channels = report.label_nc + int(report.contain_dontcare)
    seen = np.flatnonzero(np.bincount(ids.ravel().astype(np.int64)))
    if report.contain_dontcare:
        seen = seen[seen != DONTCARE]
    elif DONTCARE in seen:
        report.problems.append(
            Problem("don't-care without channel", path, "has value 255 but model.contain_dontcare is false")
        )
        seen = seen[seen != DONTCARE]
    bad = seen[seen >= channels]
    if bad.size:
        shown = ", ".join(map(str, bad[:10].tolist())) + (f" and {bad.size - 10} more" if bad.size > 10 else "")
        report.problems.append(Problem("label ids out of range", path, f"ids {shown} (allowed 0..{channels - 1})"))


def check_dataset(
    root: str | Path,
    format: str,
    label_nc: int,
    contain_dontcare: bool,
    use_instance: bool,
    palette: Palette | None = None,
    splits: tuple[str, ...] = SPLITS,
    decode_images: bool = True,
    progress: bool = True,
) -> CheckReport:
    """Scan the given splits of a dataset.

    Args:
        decode_images: fully decode photos (finds truncated files); ``False`` only reads their headers.
    Raises:
        DataError when the root is missing or no split has any file at all.
    """
    from tqdm import tqdm

    root = Path(root)
    report = CheckReport(root, format, label_nc, contain_dontcare)
    seen_where: set[str] = set()
    scans = []
    for split in splits:
        scan = scan_dataset(format, root, split, use_instance, train=True)
        if scan.where in seen_where:  # the folder format without split folders: one set of files
            continue
        seen_where.add(scan.where)
        if scan.samples or scan.problems:
            scans.append((split, scan))
    if not scans:
        raise DataError(f"{root}: no {format} files found for split(s) {', '.join(splits)}")
    for split, scan in scans:
        report.samples[split] = len(scan.samples)
        for path, detail in scan.problems:
            kind = "duplicate key" if detail.startswith("two ") else "missing partner"
            report.problems.append(Problem(kind, path, detail))
        reader = LABEL_READERS.get(format)
        for sample in tqdm(scan.samples, desc=f"checking {split}", unit="sample", disable=not progress):
            _check_sample(report, sample, palette, decode_images, reader, format in PHOTOS_TO_LABEL_SIZE)
    return report


def _open(report: CheckReport, path: Path, what: str, decode: bool):
    try:
        if decode:
            return open_picture(path, what)
        from PIL import Image

        with Image.open(path) as img:  # header only; the closed picture still knows its size
            return img
    except (DataError, OSError, SyntaxError, ValueError) as exc:
        report.problems.append(Problem("unreadable file", path, str(exc).split(": ", 1)[-1]))
        return None


def _check_sample(report: CheckReport, sample, palette: Palette | None, decode_images: bool, reader=None,
                  any_photo_size: bool = False) -> None:
    if reader is not None:  # a label merged from several files (e.g. CelebAMask-HQ's part masks)
        try:
            from PIL import Image

            label = Image.fromarray(reader(sample.label))
        except DataError as exc:
            report.problems.append(Problem("unreadable file", sample.label, str(exc).split(": ", 1)[-1]))
            label = None
    else:
        label = _open(report, sample.label, "label map", True)
    image = _open(report, sample.image, "image", decode_images)
    instance = _open(report, sample.instance, "instance map", True) if sample.instance is not None else None
    if label is None:
        return
    for other, path in ((None if any_photo_size else image, sample.image), (instance, sample.instance)):
        if other is not None and other.size != label.size:
            report.problems.append(
                Problem(
                    "size mismatch",
                    path,
                    f"{other.size[0]}x{other.size[1]}, its label map {sample.label.name} is {label.size[0]}x{label.size[1]}",
                )
            )
    if instance is not None:
        try:
            instance_picture(instance, sample.instance)
        except DataError as exc:
            report.problems.append(Problem("unreadable file", sample.instance, str(exc).split(": ", 1)[-1]))
    try:
        ids = np.asarray(label_picture(label, sample.label, palette))
    except DataError as exc:
        detail = str(exc).split(": ", 1)[-1]
        if "not in the palette" in detail:
            kind = "unknown palette colour"
        elif "colour-coded" in detail:
            kind = "colour-coded label map"
        else:
            kind = "unreadable file"
        report.problems.append(Problem(kind, sample.label, detail))
        return
    _accumulate(report, ids)
    _check_ids(report, ids, sample.label)
