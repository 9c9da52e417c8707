"""Checking and decoding the images that studio clients upload: label maps and style images.

Everything here works on bytes and raises :class:`UploadError` (an HTTP status, a field name and a
one-line message) for anything a client got wrong, so the API can answer with a 4xx JSON error
instead of a stack trace. Image headers are checked against :class:`StudioLimits` *before* pixels
are decoded, so a small file that claims to be huge (a decompression bomb) costs nothing.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

LABEL_FORMATS = ("PNG", "BMP", "TIFF")
"""Lossless formats accepted for label maps (JPEG would blur class boundaries into unknown colours)."""
STYLE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")
"""Formats accepted for style images."""


@dataclass(frozen=True)
class StudioLimits:
    """What one request may send. Checked before any pixel is decoded."""

    max_upload_bytes: int = 16 * 1024 * 1024
    """Largest request body in bytes (all fields together)."""
    max_side: int = 4096
    """Largest width or height of an uploaded image, in pixels."""
    max_pixels: int = 4096 * 4096
    """Largest width × height of an uploaded image."""

    def to_json(self) -> dict:
        return {"max_upload_bytes": self.max_upload_bytes, "max_side": self.max_side, "max_pixels": self.max_pixels}


class UploadError(Exception):
    """A client mistake: answered with ``status`` and ``{"error": message, "field": field}``."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def to_json(self) -> dict:
        out: dict = {"error": self.message}
        if self.field:
            out["field"] = self.field
        return out


def open_image(data: bytes, field: str, formats: tuple[str, ...], limits: StudioLimits) -> Image.Image:
    """Open (but do not yet decode) an uploaded image after checking its type and declared size."""
    if not data:
        raise UploadError(400, f"{field}: the uploaded file is empty", field)
    if len(data) > limits.max_upload_bytes:
        raise UploadError(413, f"{field}: {len(data)} bytes is more than the limit of {limits.max_upload_bytes}", field)
    try:
        with warnings.catch_warnings():
            # Our own size check below replaces Pillow's decompression-bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise UploadError(413, f"{field}: the image is larger than {limits.max_side}x{limits.max_side} pixels", field) from None
    except Exception:  # Pillow raises many types for non-images; all mean the same thing to the client.
        raise UploadError(415, f"{field}: not a readable image (send {' or '.join(formats)})", field) from None
    if image.format not in formats:
        kind = image.format or "unknown"
        hint = " (lossy compression changes the class colours)" if field == "labels" and kind in ("JPEG", "WEBP") else ""
        raise UploadError(415, f"{field}: {kind} images are not accepted{hint}; send {' or '.join(formats)}", field)
    width, height = image.size
    if width < 1 or height < 1:
        raise UploadError(422, f"{field}: the image has no pixels ({width}x{height})", field)
    if width > limits.max_side or height > limits.max_side or width * height > limits.max_pixels:
        raise UploadError(
            413,
            f"{field}: {width}x{height} is larger than the limit ({limits.max_side} pixels a side, "
            f"{limits.max_pixels} pixels in all)",
            field,
        )
    return image


def _decode(image: Image.Image, field: str) -> Image.Image:
    try:
        image.load()
    except Exception:  # truncated or corrupt data: Pillow's error types vary by format
        raise UploadError(422, f"{field}: the image data is truncated or corrupt", field) from None
    return image


def read_label_image(data: bytes, limits: StudioLimits, field: str = "labels") -> Image.Image:
    """Check and decode an uploaded label map (PNG, BMP or TIFF; ids or palette colours).

    Turning its pixels into ids is the pipeline's job (:meth:`Pipeline.labels_from_image`), so the
    studio reads label maps exactly as ``spadekit synthesize`` does.
    """
    return _decode(open_image(data, field, LABEL_FORMATS, limits), field)


def resize_ids(ids: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(H, W) ids → (height, width) for ``size`` = (width, height), nearest neighbour at pixel
    centres (the sampling the pipeline uses), so classes are never mixed."""
    width, height = size
    if tuple(ids.shape) == (height, width):
        return ids
    # float32 holds ids exactly far beyond any class count.
    return F.interpolate(ids[None, None].float(), size=(height, width), mode="nearest-exact")[0, 0].long()


def read_style_image(data: bytes, limits: StudioLimits, field: str = "style") -> Image.Image:
    """Decode an uploaded style image to RGB."""
    image = _decode(open_image(data, field, STYLE_FORMATS, limits), field)
    try:
        return image.convert("RGB")
    except (ValueError, OSError):
        raise UploadError(415, f"{field}: images of mode {image.mode} cannot be used as a style", field) from None


def parse_seed(value: str | None, field: str = "seed") -> int | None:
    """A seed form field: empty → None, else an integer in ``0 .. 2**63-1``."""
    if value is None or str(value).strip() == "":
        return None
    try:
        seed = int(str(value).strip())
    except ValueError:
        raise UploadError(400, f"{field}: {str(value)[:40]!r} is not an integer", field) from None
    if not 0 <= seed < 2**63:
        raise UploadError(400, f"{field}: must lie in 0..{2**63 - 1}", field)
    return seed


def parse_class(value: str | None, class_names: list[str], field: str) -> int | None:
    """A class-id form field: empty → None, else an integer id the model knows."""
    if value is None or str(value).strip() == "":
        return None
    try:
        cls = int(str(value).strip())
    except ValueError:
        raise UploadError(400, f"{field}: {str(value)[:40]!r} is not an integer class id", field) from None
    if not 0 <= cls < len(class_names):
        raise UploadError(422, f"{field}: class {cls} is not known to this model (ids 0..{len(class_names) - 1})", field)
    return cls


def label_png(ids: np.ndarray, colors: np.ndarray | None, dontcare: tuple[int, int, int] | None = None) -> bytes:
    """Encode (H, W) ids as a PNG: colour-coded when ``colors`` ((K, 3) uint8) is given (don't-care
    255 gets ``dontcare``; ids without a colour become black), else 8-bit greyscale ids (16-bit when
    an id exceeds 255)."""
    ids = np.asarray(ids)
    buffer = io.BytesIO()
    if colors is not None:
        table = np.zeros((max(256, int(ids.max(initial=0)) + 1), 3), np.uint8)
        table[: len(colors)] = colors
        if dontcare is not None:
            table[255] = dontcare
        Image.fromarray(table[ids], mode="RGB").save(buffer, format="PNG")
    elif ids.max(initial=0) <= 255:
        Image.fromarray(ids.astype(np.uint8), mode="L").save(buffer, format="PNG")
    else:
        Image.fromarray(ids.astype(np.uint16)).save(buffer, format="PNG")
    return buffer.getvalue()


def unused_color(colors: np.ndarray) -> tuple[int, int, int]:
    """A colour that no class in ``colors`` ((K, 3)) uses: the first free one of a few easy-to-spot
    greys and magentas, else the first free grey level."""
    used = {tuple(int(v) for v in c) for c in np.asarray(colors).reshape(-1, 3)}
    candidates = [(0, 0, 0), (255, 255, 255), (255, 0, 255), (128, 128, 128)] + [(v, v, v) for v in range(256)]
    free = next((c for c in candidates if c not in used), None)
    if free is None:  # every grey is a class: walk the colour cube
        free = next((r, g, b) for r in range(256) for g in range(256) for b in range(256) if (r, g, b) not in used)
    return free
