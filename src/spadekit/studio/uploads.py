"""Checking and decoding the images that studio clients upload: label maps and style images.

The rules are the command line's (:mod:`spadekit.data.inputs`: formats, picture limits, seeds);
here they work on uploaded bytes and their errors become :class:`UploadError` (an HTTP status, a
field name and a one-line message), so the API answers with a 4xx JSON error instead of a stack
trace. Image headers are checked *before* pixels are decoded, so a small file that claims to be
huge (a decompression bomb) costs nothing.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable, TypeVar

import numpy as np
from PIL import Image

from spadekit.data.inputs import LABEL_FORMATS, STYLE_FORMATS, ImageLimits, check_seed, open_picture
from spadekit.errors import DataError, InputTooLargeError, SpadekitError, UnsupportedFormatError
from spadekit.style_refine import check_refine_request, check_refine_steps

__all__ = ["LABEL_FORMATS", "STYLE_FORMATS", "StudioLimits", "UploadError", "read_label_image", "read_style_image",
           "parse_seed", "parse_refinement", "label_png", "unused_color", "upload_error"]

T = TypeVar("T")


@dataclass(frozen=True)
class StudioLimits(ImageLimits):
    """What one request may send: the shared picture limits (:class:`~spadekit.data.inputs.ImageLimits`,
    the same as the command line's) plus the size of the request body."""

    max_upload_bytes: int = 16 * 1024 * 1024
    """Largest request body in bytes (all fields together)."""

    def to_json(self) -> dict:
        return {"max_upload_bytes": self.max_upload_bytes, **super().to_json()}


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


def upload_error(exc: SpadekitError, field: str | None) -> UploadError:
    """The HTTP answer to a shared-validator error: 413 too large, 415 wrong format, 422 otherwise."""
    status = 413 if isinstance(exc, InputTooLargeError) else 415 if isinstance(exc, UnsupportedFormatError) else 422
    return UploadError(status, str(exc), field)


def _checked(field: str, check: Callable[[], T]) -> T:
    try:
        return check()
    except DataError as exc:
        raise upload_error(exc, field) from None


def _check_body(data: bytes, field: str, limits: StudioLimits) -> None:
    if not data:
        raise UploadError(400, f"{field}: the uploaded file is empty", field)
    if len(data) > limits.max_upload_bytes:
        raise UploadError(413, f"{field}: {len(data)} bytes is more than the limit of {limits.max_upload_bytes}", field)


def read_label_image(data: bytes, limits: StudioLimits, field: str = "labels") -> Image.Image:
    """Check and decode an uploaded label map (lossless formats; ids or palette colours) with the
    rules ``spadekit synthesize`` applies (:func:`spadekit.data.inputs.open_picture`).

    Turning its pixels into ids is the pipeline's job (:meth:`Pipeline.labels_from_image`), so the
    studio reads label maps exactly as ``spadekit synthesize`` does.
    """
    _check_body(data, field, limits)
    return _checked(field, lambda: open_picture(data, LABEL_FORMATS, limits, name=field, what="label map"))


def read_style_image(data: bytes, limits: StudioLimits, field: str = "style") -> Image.Image:
    """Decode an uploaded style image to RGB."""
    _check_body(data, field, limits)
    image = _checked(field, lambda: open_picture(data, STYLE_FORMATS, limits, name=field, what="style image"))
    try:
        return image.convert("RGB")
    except (ValueError, OSError):
        raise UploadError(415, f"{field}: images of mode {image.mode} cannot be used as a style", field) from None


def parse_seed(value: str | None, field: str = "seed") -> int | None:
    """A seed form field: empty → None, else an integer in ``0 .. 2**63-1`` (the CLI's rule)."""
    if value is None or str(value).strip() == "":
        return None
    try:
        return check_seed(value, field)
    except SpadekitError as exc:
        raise UploadError(400, str(exc), field) from None


def parse_refinement(steps_value: str | None, has_style: bool, has_style_labels: bool) -> int:
    """The ``refine_steps`` form field (empty → 0) checked with the CLI's rules, including that
    refining needs ``style`` and ``style_labels`` and that ``style_labels`` needs refining."""
    try:
        steps = 0 if steps_value is None or str(steps_value).strip() == "" else check_refine_steps(steps_value)
    except SpadekitError as exc:
        raise UploadError(400, str(exc), "refine_steps") from None
    try:
        check_refine_request(steps, has_style, has_style_labels)
    except SpadekitError as exc:
        # Style labels sent without refining are the labels' fault; every other rule is the steps'.
        raise UploadError(400, str(exc), "style_labels" if steps == 0 else "refine_steps") from None
    return steps


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
