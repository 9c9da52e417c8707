"""Proportions → layout → photo, with one call: :class:`PalettePipeline`.

It works with any model whose method has the ``"palette"`` capability: the model's ``generator`` is
a layout generator (``forward(z, palette, res, alpha) -> list of layouts``, ``latent_dim``,
``num_semantics``, ``conditional``), ``mixture`` (optional) samples palettes, ``schedule`` (optional)
says the resolution reached, and the method's image stage (or any layout→image model given here)
draws the photos through :class:`~spadekit.inference.Pipeline`.

Seeds: sample ``k`` of a call draws its layout noise from ``seed + k`` (:func:`seeded_latent`) and its
photo from ``seed + k`` too; palettes sampled from the mixture come from ``seed``. The same seed
gives the same layouts and photos. The soft layout is upsampled (bilinear) to the photo size and its
argmax is the label map the image model receives (the official test path discretises too).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from spadekit.data.inputs import check_seed
from spadekit.data.palette import default_colors, ids_to_colors
from spadekit.errors import ConfigError
from spadekit.inference import Pipeline, seeded_latent
from spadekit.methods.palette.proportions import Palette, check_palette
from spadekit.release import SpadeModel, load_model


@dataclass
class PaletteResult:
    """What a :class:`PalettePipeline` call made, sample by sample.

    ``palettes``: requested proportions (N, C); ``layouts``: the generator's soft layouts (N, C, h, w);
    ``labels``: class ids (N, H, W) int64 at the image model's size (the layout size without one);
    ``achieved``: the proportions of ``labels`` (N, C); ``images``: the photos (PIL images, or an
    (N, 3, H, W) tensor in [-1, 1]; None when no photo was asked for); ``notice``: a message when the
    given proportions were renormalised; ``seed``: the seed used.
    """

    palettes: torch.Tensor
    layouts: torch.Tensor
    labels: torch.Tensor
    achieved: torch.Tensor
    images: list[Image.Image] | torch.Tensor | None
    notice: str | None
    seed: int
    colors: np.ndarray

    def layout_pictures(self) -> list[Image.Image]:
        """The label maps coloured with the model's class colours."""
        return [Image.fromarray(ids_to_colors(ids.cpu().numpy(), self.colors)) for ids in self.labels]

    def label_maps(self) -> list[Image.Image]:
        """The label maps as 8-bit id pictures (what ``spadekit synthesize`` reads)."""
        return [Image.fromarray(ids.cpu().numpy().astype(np.uint8), mode="L") for ids in self.labels]


class PalettePipeline:
    """A palette model ready to turn class proportions into layouts and photos.

    Args:
        model: a loaded model whose method has the ``"palette"`` capability.
        device, dtype, fast, batch_size: where and how the image stage runs (see :class:`Pipeline`).
        image_model: the layout→image model for the photos (a loaded model, a release folder or a
            bundled name); default: the model's own image stage. None there too: layouts only.
    """

    def __init__(
        self,
        model: SpadeModel,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        fast: bool = True,
        batch_size: int = 8,
        image_model: SpadeModel | str | Path | None = None,
    ):
        method = model.method
        if "palette" not in method.capabilities:
            raise ConfigError(f"{method.title} models do not generate layouts from class proportions (no palette capability)")
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.generator = model.generator
        schedule = model.extras.get("schedule")
        if schedule is not None and not schedule.done:
            self.res, self.alpha = schedule.res, schedule.fade_alpha
        else:
            self.res, self.alpha = int(getattr(self.generator, "res")), None
        self.image: Pipeline | None = None
        image = self._image_model(image_model)
        if image is not None:
            self.image = Pipeline(image, device=device, dtype=dtype, fast=fast, batch_size=batch_size)

    def _image_model(self, image_model) -> SpadeModel | None:
        from spadekit.methods.palette.method import check_image_model

        if image_model is None:
            try:
                return self.model.method.image_stage(self.model)
            except ConfigError:
                return None  # a layouts-only model; asking it for photos says why
        image = load_model(image_model) if isinstance(image_model, (str, Path)) else image_model
        return check_image_model(image, self.model.config)

    @classmethod
    def from_pretrained(cls, model: str | Path, device: str | torch.device = "cpu", **kwargs) -> "PalettePipeline":
        """Load a palette model (release folder or official checkpoints) and build a pipeline on it."""
        return cls(load_model(model, device=device), device=device, **kwargs)

    # ------------------------------------------------------------------ description
    @property
    def class_names(self) -> list[str]:
        return self.model.class_names

    @property
    def colors(self) -> np.ndarray:
        """(C, 3) uint8 class colours (the default colour map when the model has none)."""
        colors = self.model.colors
        c = self.num_classes
        return np.asarray(colors[:c], dtype=np.uint8) if colors and len(colors) >= c else default_colors(c)

    @property
    def num_classes(self) -> int:
        return int(self.generator.num_semantics)

    @property
    def layout_size(self) -> tuple[int, int]:
        """(width, height) of the generated layouts."""
        return self.res * int(self.generator.aspect_ratio), self.res

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the label maps and photos of a call (the photo size, or the layout size
        without an image model)."""
        return self.image.size if self.image is not None else self.layout_size

    @property
    def has_mixture(self) -> bool:
        mixture = self.model.extras.get("mixture")
        return mixture is not None and mixture.fitted

    # ------------------------------------------------------------------ palettes
    def check(self, proportions: str | Mapping[str, float] | Sequence[float] | torch.Tensor) -> Palette:
        """Validate user proportions (``"sky=0.4,road=0.3"``, a {name: value} mapping or a full
        vector): ConfigError for unknown classes, negative values, totals far from 1."""
        return check_palette(proportions, self.class_names)

    def sample_palettes(self, count: int, seed: int | None = None) -> torch.Tensor:
        """``count`` palettes (count, C) drawn from the model's fitted mixture."""
        if not self.has_mixture:
            raise ConfigError(
                "this model has no fitted palette mixture (converted models have none): give proportions, or fit one "
                "with `spadekit palette fit --model M --out M2`"
            )
        excluded = self.model.config.section("palette").excluded_classes
        return self.model.extras["mixture"].sampler(excluded).sample(count, seed=seed)

    # ------------------------------------------------------------------ running
    @torch.inference_mode()
    def layouts(self, palettes: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """Soft layouts (N, C, h, w) for palettes (N, C), layout noise of sample i from ``seeds[i]``."""
        z = torch.stack([seeded_latent(self.generator.latent_dim, int(s)) for s in seeds]).to(self.device)
        palette = palettes.to(self.device, torch.float32) if self.generator.conditional else None
        return self.generator(z, palette, self.res, self.alpha)[-1].sem_seg.float()

    def label_maps(self, layouts: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Soft layouts → class ids (N, H, W) at ``size`` (width, height; default :attr:`size`)."""
        width, height = size or self.size
        if tuple(layouts.shape[-2:]) != (height, width):
            layouts = F.interpolate(layouts, size=(height, width), mode="bilinear", align_corners=False)
        return layouts.argmax(1)

    def __call__(
        self,
        proportions: str | Mapping[str, float] | Sequence[float] | torch.Tensor | None = None,
        num_samples: int = 1,
        seed: int | None = None,
        images: bool = True,
        output: str = "pil",
    ) -> PaletteResult:
        """Generate ``num_samples`` layouts (and photos).

        Args:
            proportions: the palette (see :meth:`check`); None: one palette per sample drawn from
                the model's mixture.
            seed: see the module docstring; None draws one.
            images: also draw the photos (needs an image model).
            output: photos as ``"pil"`` images or a ``"tensor"``.
        """
        if num_samples < 1:
            raise ConfigError("num_samples must be >= 1")
        if output not in ("pil", "tensor"):
            raise ValueError("output must be 'pil' or 'tensor'")
        if images and self.image is None:
            self.model.method.image_stage(self.model)  # raises the reason
        seed = random.randrange(2**31) if seed is None else check_seed(seed, "seed", count=num_samples)
        notice = None
        if proportions is None:
            palettes = self.sample_palettes(num_samples, seed)
        else:
            checked = self.check(proportions)
            palettes, notice = checked.proportions[None].repeat(num_samples, 1), checked.notice
        seeds = [seed + k for k in range(num_samples)]
        soft = self.layouts(palettes, seeds)
        labels = self.label_maps(soft).cpu()
        counts = torch.stack([torch.bincount(ids.reshape(-1), minlength=self.num_classes) for ids in labels]).float()
        achieved = counts / counts.sum(1, keepdim=True)
        photos = None
        if images:
            made = [self.image(ids, seed=s, output="tensor") for ids, s in zip(labels, seeds)]
            photos = torch.cat(made)
            if output == "pil":
                from spadekit.inference import to_pil

                photos = to_pil(photos)
        return PaletteResult(palettes.cpu(), soft.cpu(), labels, achieved, photos, notice, seed, self.colors)


def contact_sheet(result: PaletteResult, class_names: Sequence[str] | None = None, bar: int = 12) -> Image.Image:
    """One row per sample: requested proportions | achieved proportions (stacked bars in the class
    colours) | layout | photo (when made)."""
    layouts = result.layout_pictures()
    photos = result.images if isinstance(result.images, list) else None
    width, height = layouts[0].size
    pad = 4
    columns = [bar, bar, width] + ([width] if photos else [])
    sheet = Image.new("RGB", (sum(columns) + pad * (len(columns) + 1), len(layouts) * (height + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, layout in enumerate(layouts):
        y = pad + i * (height + pad)
        x = pad
        for shares in (result.palettes[i], result.achieved[i]):
            top = 0.0
            for c, share in enumerate(shares.tolist()):
                if share <= 0:
                    continue
                y0, y1 = y + round(top * height), y + round((top + share) * height)
                draw.rectangle([x, y0, x + bar - 1, max(y0, y1 - 1)], fill=tuple(int(v) for v in result.colors[c]))
                top += share
            x += bar + pad
        sheet.paste(layout, (x, y))
        x += width + pad
        if photos:
            sheet.paste(photos[i].resize((width, height)), (x, y))
    return sheet
