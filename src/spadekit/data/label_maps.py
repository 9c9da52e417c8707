"""Label maps handed to a model: any supported picture → validated (H, W) int64 class ids.

One path for every caller (``spadekit synthesize``, the studio, the :class:`~spadekit.inference.Pipeline`):

* files are opened with :func:`spadekit.data.inputs.open_picture` (lossless formats only for label and
  instance maps, size limits checked before decoding);
* :func:`image_to_ids` reads id maps (greyscale, palette-mode, 16-bit; arrays and tensors) and
  colour-coded pictures (exact colours of a :class:`~spadekit.data.palette.Palette`);
* :func:`check_ids` accepts ``0 .. label_nc-1``, plus 255 (as on disk) or ``label_nc`` for don't-care
  pixels when the model has that channel;
* :func:`resize_ids` brings a map to the model size with nearest neighbour at pixel centres.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from spadekit.data.inputs import DEFAULT_LIMITS, LABEL_FORMATS, STYLE_FORMATS, ImageLimits, open_picture
from spadekit.data.palette import DONTCARE, Palette, colors_to_ids
from spadekit.errors import DataError

ImageLike = Union[Image.Image, np.ndarray, torch.Tensor, str, Path]


def read_image(
    path: str | Path, source: str | None = None, formats: tuple[str, ...] | None = None, limits: ImageLimits = DEFAULT_LIMITS
) -> Image.Image:
    """Open a picture fully (so a truncated file fails here), or raise :class:`DataError` naming it.

    ``formats`` restricts the accepted file formats (e.g. :data:`~spadekit.data.inputs.LABEL_FORMATS`);
    sizes outside ``limits`` are refused before decoding.
    """
    return open_picture(path, formats, limits, name=source, what="image")


def read_label_map(path: str | Path, source: str | None = None, limits: ImageLimits = DEFAULT_LIMITS, what: str = "label map") -> Image.Image:
    """A label or instance map file: lossless formats only, within ``limits``."""
    return open_picture(path, LABEL_FORMATS, limits, name=source, what=what)


def read_style_image(path: str | Path, source: str | None = None, limits: ImageLimits = DEFAULT_LIMITS) -> Image.Image:
    """A style photo file (PNG, JPEG, WebP, BMP, TIFF) within ``limits``."""
    return open_picture(path, STYLE_FORMATS, limits, name=source, what="style image")


def _integral(array: np.ndarray, source: str, what: str) -> np.ndarray:
    if array.dtype.kind in "uib":
        return array.astype(np.int64)
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        return array.astype(np.int64)
    raise DataError(f"{source}: {what} must hold integer ids, got {array.dtype} values")


def image_to_ids(img: ImageLike, palette: Palette | None, source: str, what: str = "label map") -> torch.Tensor:
    """Any supported picture → (H, W) int64 ids (no validation against a model).

    Integer maps (PIL modes L, P, I, I;16, 1; 2-D arrays/tensors; (1, H, W) tensors) are read as ids.
    RGB(A) pictures ((H, W, 3) arrays, (3, H, W) tensors) are colour-coded: with ``palette`` they are
    mapped to ids by exact colour (255 for the palette's don't-care colour); without one (instance
    maps) every distinct colour becomes its own id. A file path is opened with :func:`read_label_map`.
    """
    if isinstance(img, (str, Path)):
        img = read_label_map(img, what=what)
    if isinstance(img, torch.Tensor):
        t = img.detach()
        if t.dim() == 3 and t.shape[0] == 1:
            t = t[0]
        if t.dim() == 2:
            if t.dtype.is_floating_point:
                if not bool(torch.all(t == t.round())):
                    raise DataError(f"{source}: {what} must hold integer ids, got fractional values")
            return t.long()
        if t.dim() == 3 and t.shape[0] in (3, 4):
            img = t[:3].permute(1, 2, 0).cpu().numpy()
        elif t.dim() == 3 and t.shape[-1] in (3, 4):
            img = t.cpu().numpy()
        else:
            raise DataError(f"{source}: a {what} tensor must be (H, W), (1, H, W) or RGB (3, H, W); got {tuple(t.shape)}")
    if isinstance(img, Image.Image):
        if img.mode in ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
            return _colors(np.asarray(img.convert("RGB")), palette, source)
        if img.mode == "LA":
            img = img.getchannel("L")
        array = np.asarray(img)
        if array.ndim != 2:
            raise DataError(f"{source}: unsupported image mode {img.mode!r} for a {what}")
        return torch.from_numpy(_integral(array, source, what))
    if isinstance(img, np.ndarray):
        if img.ndim == 3 and img.shape[0] == 1:
            img = img[0]
        if img.ndim == 2:
            return torch.from_numpy(_integral(img, source, what))
        if img.ndim == 3 and img.shape[-1] in (3, 4):
            rgb = img[..., :3]
            if rgb.dtype != np.uint8:
                if rgb.dtype.kind == "f" or rgb.min(initial=0) < 0 or rgb.max(initial=0) > 255:
                    raise DataError(f"{source}: a colour-coded {what} must be uint8 RGB, got {rgb.dtype}")
                rgb = rgb.astype(np.uint8)
            return _colors(rgb, palette, source)
        raise DataError(f"{source}: a {what} array must be (H, W) ids or (H, W, 3) colours; got shape {img.shape}")
    raise DataError(f"{source}: cannot read a {what} from a {type(img).__name__}")


def _colors(rgb: np.ndarray, palette: Palette | None, source: str) -> torch.Tensor:
    if palette is None:  # instance maps: one id per distinct colour
        packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
        return torch.from_numpy(np.unique(packed, return_inverse=True)[1].reshape(packed.shape).astype(np.int64))
    try:
        return torch.from_numpy(colors_to_ids(np.ascontiguousarray(rgb), palette, source=source).astype(np.int64))
    except DataError as exc:
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
            raise DataError(f"{exc} (it looks like an id map saved as RGB: save it as a greyscale PNG)") from None
        raise


def check_ids(ids: torch.Tensor, label_nc: int, contain_dontcare: bool, source: str) -> None:
    """Raise a DataError naming ``source`` for ids a model with ``label_nc`` classes does not know.

    Accepted: ``0 .. label_nc-1``; with a don't-care channel also 255 (as on disk) and ``label_nc``.
    """
    known = (ids >= 0) & (ids < label_nc)
    if contain_dontcare:
        known |= (ids == DONTCARE) | (ids == label_nc)
    if bool(known.all()):
        return
    bad = torch.unique(ids[~known]).tolist()
    shown = ", ".join(map(str, bad[:8])) + (f" and {len(bad) - 8} more" if len(bad) > 8 else "")
    dontcare = "; 255 = don't care" if contain_dontcare else "; this model has no don't-care class"
    raise DataError(
        f"{source}: label id(s) {shown} not known to this model (it has {label_nc} classes, "
        f"ids 0..{label_nc - 1}{dontcare})"
    )


def class_index(ids: torch.Tensor, label_nc: int, contain_dontcare: bool) -> torch.Tensor:
    """Validated ids → channel indices (don't-care 255 → ``label_nc``)."""
    if contain_dontcare:
        ids = ids.masked_fill(ids == DONTCARE, label_nc)
    return ids


def resize_ids(ids: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(H, W) ids → (height, width) for ``size`` = (width, height), nearest neighbour at pixel
    centres (as PIL's NEAREST), so classes are never mixed."""
    width, height = size
    if tuple(ids.shape) == (height, width):
        return ids
    # float32 holds ids exactly up to 2**24 (16-bit instance maps included).
    out = F.interpolate(ids[None, None].float(), size=(height, width), mode="nearest-exact")
    return out[0, 0].long()


def image_to_tensor(img: ImageLike, size: tuple[int, int], source: str = "style") -> torch.Tensor:
    """A photo (PIL, (H, W, 3) uint8 array, (3, H, W) tensor in [-1, 1], or a file path) → (3, H, W)
    float in [-1, 1] at ``size`` = (width, height) (bicubic, as the data pipeline resizes photos)."""
    if isinstance(img, (str, Path)):
        img = read_style_image(img, source=source)
    if isinstance(img, torch.Tensor):
        t = img.detach().float().cpu()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 3 or t.shape[0] != 3:
            raise DataError(f"{source}: a style tensor must be (3, H, W) in [-1, 1]; got {tuple(t.shape)}")
        if tuple(t.shape[-2:]) != (size[1], size[0]):
            t = F.interpolate(t[None], size=(size[1], size[0]), mode="bicubic", align_corners=False)[0].clamp(-1, 1)
        return t
    if isinstance(img, np.ndarray):
        if img.ndim != 3 or img.shape[-1] not in (3, 4) or img.dtype != np.uint8:
            raise DataError(f"{source}: a style array must be (H, W, 3) uint8; got {img.dtype} {img.shape}")
        img = Image.fromarray(np.ascontiguousarray(img[..., :3]))
    if not isinstance(img, Image.Image):
        raise DataError(f"{source}: cannot read a style image from a {type(img).__name__}")
    img = img.convert("RGB")
    if img.size != tuple(size):
        img = img.resize(tuple(size), Image.Resampling.BICUBIC)
    array = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float()
    return array / 127.5 - 1.0
