"""What a user may hand to synthesis, checked one way for the command line, the studio's HTTP API
and the :class:`~spadekit.inference.Pipeline`: image limits, accepted file formats, seeds, sizes.

Every rule raises a :class:`~spadekit.errors.SpadekitError` naming the input and the problem, so the
CLI prints one line and exits 2, and the studio answers a 4xx JSON error: 413 for
:class:`~spadekit.errors.InputTooLargeError`, 415 for :class:`~spadekit.errors.UnsupportedFormatError`,
422 for any other :class:`~spadekit.errors.DataError`, 400 for a bad seed.

Picture headers are checked against :class:`ImageLimits` *before* any pixel is decoded, so a small
file that claims to be huge (a decompression bomb) costs nothing, and a requested output size is
refused before a model is loaded.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from spadekit.config import MAX_SEED as _CONFIG_MAX_SEED
from spadekit.errors import ConfigError, DataError, InputTooLargeError, UnsupportedFormatError

LABEL_FORMATS = ("PNG", "BMP", "TIFF", "GIF", "PPM")
"""Lossless formats accepted for label and instance maps (Pillow's format names). JPEG and WebP are
refused: lossy compression blurs class boundaries into colours and ids that are no class."""
LOSSY_FORMATS = ("JPEG", "WEBP", "MPO", "JPEG2000")
STYLE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")
"""Formats accepted for style photos."""
LABEL_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")
"""File name suffixes of the label-map formats (for listing folders)."""
LOSSY_SUFFIXES = (".jpg", ".jpeg", ".webp", ".jp2")
"""Suffixes that look like label maps but are refused with a reason rather than silently skipped."""

MAX_SEED = _CONFIG_MAX_SEED
"""Seeds lie in ``0 .. 2**63-1`` everywhere (CLI ``--seed``, the studio's ``seed`` field, the Pipeline,
``train.seed``); sample ``k`` of a request uses ``seed + k``, which must stay in that range too."""


@dataclass(frozen=True)
class ImageLimits:
    """Sizes an input picture or a requested output size may have (width × height in pixels)."""

    max_side: int = 4096
    """Largest width or height."""
    max_pixels: int = 4096 * 4096
    """Largest width × height."""
    min_side: int = 8
    """Smallest width or height: a smaller map holds no layout, only a few stretched pixels."""
    max_aspect: float = 8.0
    """Largest long side / short side: a more extreme picture would be squashed out of shape."""

    def check(self, width: int, height: int, source: str) -> None:
        """Raise for a ``width`` × ``height`` outside the limits (largest side and pixel count first)."""
        if width > self.max_side or height > self.max_side or width * height > self.max_pixels:
            raise InputTooLargeError(
                f"{source}: {width}x{height} is larger than the limit ({self.max_side} pixels a side, "
                f"{self.max_pixels} pixels in all)"
            )
        if width < self.min_side or height < self.min_side:
            raise DataError(f"{source}: {width}x{height} is smaller than the limit of {self.min_side} pixels a side")
        if max(width, height) > self.max_aspect * min(width, height):
            raise DataError(
                f"{source}: {width}x{height} has an aspect ratio beyond {self.max_aspect:g}:1 "
                "(it would be squashed out of shape); crop it first"
            )

    def to_json(self) -> dict:
        return {"max_side": self.max_side, "max_pixels": self.max_pixels, "min_side": self.min_side, "max_aspect": self.max_aspect}


DEFAULT_LIMITS = ImageLimits()


def check_seed(value: int | str, source: str = "seed", count: int = 1) -> int:
    """A seed as an int in ``0 .. MAX_SEED`` (with ``seed + count - 1`` in range too), else ConfigError."""
    try:
        seed = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{source}: {str(value)[:40]!r} is not an integer") from None
    if not 0 <= seed <= MAX_SEED - max(count - 1, 0):
        top = "2**63-1" if count <= 1 else f"2**63-1 - {count - 1} (sample k uses seed + k)"
        raise ConfigError(f"{source}: {str(value)[:40]} is not a seed: seeds lie in 0..{top}")
    return seed


def parse_size(text: str, source: str = "size", limits: ImageLimits = DEFAULT_LIMITS) -> tuple[int, int]:
    """``"WxH"`` → (width, height) within ``limits``; a ConfigError for anything else."""
    parts = str(text).lower().split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"{source} {text!r} must look like WIDTHxHEIGHT, e.g. 256x256") from None
    check_side_sizes(width, height, f"{source} {text}", limits)
    return width, height


def check_side_sizes(width: int, height: int, source: str, limits: ImageLimits = DEFAULT_LIMITS) -> None:
    """A requested output size within ``limits``, as a ConfigError (it is an option, not a file)."""
    try:
        limits.check(width, height, source)
    except DataError as exc:
        raise ConfigError(str(exc)) from None


def open_picture(
    source: bytes | str | Path,
    formats: tuple[str, ...] | None = LABEL_FORMATS,
    limits: ImageLimits = DEFAULT_LIMITS,
    name: str | None = None,
    what: str = "label map",
) -> Image.Image:
    """Open a picture file (a path or uploaded bytes), check its format and size, then decode it.

    Args:
        formats: Pillow format names accepted (:data:`LABEL_FORMATS` for label and instance maps,
            :data:`STYLE_FORMATS` for style photos; None: any picture).
        name: how errors name the input (default: the path).
        what: what the picture is, for messages.
    Returns:
        The decoded picture (fully loaded: a truncated file fails here).
    """
    label = name or (str(source) if isinstance(source, (str, Path)) else "upload")
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise DataError(f"{label}: the file is empty")
        stream: object = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise DataError(f"{label}: file not found" if not path.exists() else f"{label}: not a file")
        if path.stat().st_size == 0:
            raise DataError(f"{label}: the file is empty")
        stream = path
    shown = " or ".join(formats or ("an image file",))
    try:
        with warnings.catch_warnings():
            # The size check below replaces Pillow's decompression-bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream)  # type: ignore[arg-type]
    except Image.DecompressionBombError:
        raise InputTooLargeError(f"{label}: the image is larger than {limits.max_side}x{limits.max_side} pixels") from None
    except Exception:  # Pillow raises many types for non-images; all mean the same thing to the user.
        raise UnsupportedFormatError(f"{label}: not a readable image (use {shown})") from None
    kind = image.format or "unknown"
    if formats is not None and kind not in formats:
        why = " (lossy compression changes the class colours and ids)" if kind in LOSSY_FORMATS and formats == LABEL_FORMATS else ""
        raise UnsupportedFormatError(f"{label}: {kind} images are not accepted as a {what}{why}; use {shown}")
    limits.check(*image.size, label)
    try:
        image.load()
    except Exception:  # truncated or corrupt data: Pillow's error types vary by format
        raise DataError(f"{label}: not a readable image (the image data is truncated or corrupt)") from None
    return image
