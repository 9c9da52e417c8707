"""Resizing, cropping and flipping shared by label map, instance map and photo.

Geometry follows the official SPADE preprocessing modes (``data.preprocess``):

=========================  ==========================================================================
``resize_and_crop``        resize to ``load_size`` × ``load_size``, then crop ``crop_size`` × ``crop_size``
``crop``                   crop ``crop_size`` × ``crop_size`` from the original
``scale_width``            width → ``load_size``, height keeps the aspect ratio
``scale_width_and_crop``   as ``scale_width``, then crop
``scale_shortside``        short side → ``load_size``, long side keeps the aspect ratio
``scale_shortside_and_crop`` as ``scale_shortside``, then crop
``fixed``                  resize to ``crop_size`` × round(``crop_size`` / ``aspect_ratio``) (Cityscapes)
``none``                   round both sides to a multiple of 32
=========================  ==========================================================================

Label and instance maps are resized with nearest neighbour, photos with bicubic (both with PIL, as
the official code, so the pixels are identical). One random crop position and one flip decision
are drawn per sample and applied to all three. At test time (:meth:`Preprocess.for_split` with
``train=False``) ``load_size`` is set to ``crop_size`` (the official test defaults), flips are off and
crops are centred (the official code draws a random position even at test time; with its defaults
there is nothing to choose, except for the ``*_and_crop`` scale modes, where centred is reproducible).

Deviation, on purpose: the official ``scale_shortside`` keeps the short side at its original length
and only rescales the long side (distorting the aspect ratio); here the short side becomes
``load_size`` as the mode's name says.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from spadekit.config import DataConfig, ModelConfig, PreprocessMode
from spadekit.errors import ConfigError

NEAREST = Image.Resampling.NEAREST
BICUBIC = Image.Resampling.BICUBIC
POWER_OF_TWO_BASE = 32


@dataclass(frozen=True)
class Params:
    """The random choices of one sample, shared by its label, instance and photo."""

    crop_pos: tuple[int, int] = (0, 0)
    """Top-left (x, y) of the crop in the resized picture."""
    flip: bool = False


@dataclass(frozen=True)
class Preprocess:
    """One preprocessing recipe (see the module docstring for the modes)."""

    mode: PreprocessMode = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    aspect_ratio: float = 1.0
    """Width / height of the ``fixed`` mode's output."""
    flip: bool = True
    """Random horizontal flips."""
    random_crop: bool = True
    """Random crop position; ``False`` centres the crop."""

    @classmethod
    def for_split(
        cls,
        mode: PreprocessMode,
        load_size: int,
        crop_size: int,
        aspect_ratio: float = 1.0,
        train: bool = True,
        no_flip: bool = False,
    ) -> "Preprocess":
        """The training recipe, or its test-time version (load = crop size, no flips, centred crops)."""
        recipe = cls(mode, load_size, crop_size, aspect_ratio, flip=not no_flip, random_crop=True)
        if not train:
            recipe = replace(recipe, load_size=crop_size, flip=False, random_crop=False)
        return recipe

    # ------------------------------------------------------------------ geometry

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after the resize step, before any crop."""
        mode, load = self.mode, self.load_size
        if mode == "resize_and_crop":
            return load, load
        if mode.startswith("scale_width"):
            return (width, height) if width == load else (load, int(load * height / width))
        if mode.startswith("scale_shortside"):
            short = min(width, height)
            if short == load:
                return width, height
            long = int(load * max(width, height) / short)
            return (load, long) if width <= height else (long, load)
        if mode == "fixed":
            return self.crop_size, round(self.crop_size / self.aspect_ratio)
        if mode == "none":
            return (
                max(POWER_OF_TWO_BASE, int(round(width / POWER_OF_TWO_BASE) * POWER_OF_TWO_BASE)),
                max(POWER_OF_TWO_BASE, int(round(height / POWER_OF_TWO_BASE) * POWER_OF_TWO_BASE)),
            )
        return width, height  # crop

    @property
    def crops(self) -> bool:
        return "crop" in self.mode

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the final tensors for a source of this size."""
        if self.crops:
            return self.crop_size, self.crop_size
        return self.resized_size(width, height)

    def sample(self, width: int, height: int, generator: torch.Generator | None = None) -> Params:
        """Draw the crop position and flip for a source of ``width`` × ``height``.

        Uses torch's RNG (seeded per DataLoader worker by PyTorch), or ``generator`` when given.
        """
        new_w, new_h = self.resized_size(width, height)
        room_x, room_y = max(0, new_w - self.crop_size), max(0, new_h - self.crop_size)
        if not self.crops:
            x = y = 0
        elif self.random_crop:
            x = int(torch.randint(0, room_x + 1, (1,), generator=generator))
            y = int(torch.randint(0, room_y + 1, (1,), generator=generator))
        else:
            x, y = room_x // 2, room_y // 2
        flip = bool(torch.rand((), generator=generator) > 0.5) if self.flip else False
        return Params((x, y), flip)

    def apply(self, img: Image.Image, params: Params, nearest: bool) -> Image.Image:
        """Resize, crop and flip one PIL picture (nearest for ids, bicubic for photos)."""
        method = NEAREST if nearest else BICUBIC
        size = self.resized_size(*img.size)
        if size != img.size:
            img = img.resize(size, method)
        if self.crops:
            x, y = params.crop_pos
            # PIL pads with zeros when the crop reaches past the border, as the official code does.
            img = img.crop((x, y, x + self.crop_size, y + self.crop_size))
        if params.flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return img


def training_image_size(data: DataConfig, model: ModelConfig) -> tuple[int, int] | None:
    """(width, height) of every training tensor, or None when it follows each picture's size
    (``scale_width``, ``scale_shortside``, ``none``)."""
    if "crop" in data.preprocess:
        return data.crop_size, data.crop_size
    if data.preprocess == "fixed":
        return data.crop_size, round(data.crop_size / model.aspect_ratio)
    return None


def check_training_sizes(model: ModelConfig, data: DataConfig, output_size: tuple[int, int] | None = None) -> None:
    """ConfigError, naming both fields, when the training images and the generator's output
    (``output_size``, default ``model.output_size``; a method may size its output otherwise) differ in
    size (the discriminator compares them: training would crash at the first step)."""
    size = training_image_size(data, model)
    out = tuple(output_size) if output_size is not None else tuple(model.output_size)
    if size is None or tuple(size) == out:
        return
    if out[0] != out[1] and "crop" in data.preprocess:  # square crops cannot feed a non-square generator
        fix = f"data.preprocess=fixed data.crop_size={out[0]}"
    else:
        fix = f"data.crop_size={out[0]} data.load_size={max(out[0], round(data.load_size * out[0] / data.crop_size))}"
    raise ConfigError(
        f"data.crop_size={data.crop_size} (data.preprocess={data.preprocess}) makes {size[0]}x{size[1]} training "
        f"images, but model.width={model.width} (aspect_ratio {model.aspect_ratio:g}) makes the generator output "
        f"{out[0]}x{out[1]}; make them agree, e.g. --set {fix}"
    )


# ---------------------------------------------------------------------- to tensors


def image_to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL photo → (3, H, W) float32 in [-1, 1] (the same arithmetic as the official pipeline)."""
    tensor = TF.to_tensor(img)
    return TF.normalize(tensor, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def ids_to_tensor(img: Image.Image) -> torch.Tensor:
    """Single-channel id map (modes L, P, I, I;16) → (1, H, W) int64 ids (no 16-bit wrap-around)."""
    array = np.array(img)  # a writable copy: torch refuses to share read-only buffers
    if array.dtype == np.uint16:
        array = array.astype(np.int32)
    return torch.from_numpy(array).to(torch.int64).unsqueeze(0)


def transform_triplet(
    label: Image.Image,
    image: Image.Image,
    instance: Image.Image | None,
    preprocess: Preprocess,
    generator: torch.Generator | None = None,
    params: Params | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Apply one shared random crop/flip to a sample (``params``: that draw, when the caller made it
    to transform more maps of the sample alike).

    The three pictures must have the same size (callers check and name the files).
    Returns ``label`` (1, H, W) int64, ``image`` (3, H, W) float in [-1, 1], ``instance`` (1, H, W) int64 or None.
    """
    if params is None:
        params = preprocess.sample(*label.size, generator=generator)
    label_t = ids_to_tensor(preprocess.apply(label, params, nearest=True))
    image_t = image_to_tensor(preprocess.apply(image, params, nearest=False))
    instance_t = None if instance is None else ids_to_tensor(preprocess.apply(instance, params, nearest=True))
    return label_t, image_t, instance_t
