"""Inference: label maps (+ instance maps, a style image, a seed) → images, with one call.

:class:`Pipeline` wraps a loaded :class:`~spadekit.release.SpadeModel`. It is built once (weights
loaded, the fast generator prepared) and is then cheap to call repeatedly: a call only converts
its inputs, runs the generator and converts the outputs. A call keeps no state on the pipeline,
so calls serialised by a lock from several threads are safe.

Conventions:

* Label maps are integer ids ``0 .. label_nc-1``; with a don't-care channel, 255 (as on disk) or
  ``label_nc`` mark don't-care pixels. Colour-coded pictures (RGB) are read with the model's palette.
* Maps of any size are resized (nearest) to the model size; the network always runs at that size.
* Instance maps are optional for models with an instance-edge channel: without one, the label map
  itself is used, so the edges are the class boundaries.
* Sample ``k`` of every map draws its latent from ``seed + k`` (the same seed → the same style for
  every map and identical bytes on every call). Models without a VAE are deterministic: the seed
  and ``num_samples`` change nothing. Seeds lie in ``0 .. 2**63-1`` (:mod:`spadekit.data.inputs`).
* Methods whose generator does not take label maps bring their own input (``Method.label_input``,
  e.g. BachGAN boxes the objects of the map); methods with the ``"boxes"`` capability also take
  object boxes (:meth:`Pipeline.from_boxes`).

Reading and validating label maps (files, formats, colours, ids) is :mod:`spadekit.data.label_maps`,
shared with ``spadekit synthesize`` and the studio.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from spadekit.config import Config
from spadekit.data.inputs import check_seed
from spadekit.data.label_maps import (
    ImageLike, check_ids, class_index, image_to_ids, image_to_tensor, read_style_image, resize_ids,
)
from spadekit.data.labels import instance_edges
from spadekit.data.palette import Palette, default_colors, make_palette
from spadekit.errors import DataError
from spadekit.release import SpadeModel, layout_to_image, load_model
from spadekit.style_refine import (
    DEFAULT_REFINE_STEPS, StyleCode, StyleRefinement, check_refine_request, check_refine_steps, refine_latent,
)


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(N, 3, H, W) in [-1, 1] → N RGB PIL images."""
    array = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return [Image.fromarray(a.permute(1, 2, 0).numpy()) for a in array]


class Pipeline:
    """A loaded model (any layout→image method) ready to turn label maps into images.

    Args:
        model: a loaded :class:`SpadeModel` (see :meth:`from_pretrained` to load by path or name).
            A model whose method makes something else than photos from label maps (e.g. layouts
            from class proportions) contributes its image stage (:attr:`Method.image_stage`).
        device: where the networks run.
        dtype: their dtype (``torch.bfloat16`` / ``torch.float16`` are for GPUs).
        fast: use the method's optimised generator when it has one (same images, less work).
        channels_last: channels-last activations in the fast generator (default: on).
        compile: wrap the generator in ``torch.compile``.
        batch_size: most images per generator call (bounds the memory of large requests).
    """

    def __init__(
        self,
        model: SpadeModel,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        fast: bool = True,
        channels_last: bool = True,
        compile: bool = False,
        batch_size: int = 8,
    ):
        model = layout_to_image(model)
        self.model = model.eval()
        self.device = torch.device(device)
        self.dtype = dtype
        self.batch_size = max(1, int(batch_size))
        m = model.config.model
        self._num_classes = m.label_nc + int(m.contain_dontcare)
        method = model.method
        self.latent_dim: int | None = getattr(model.generator, "latent_dim", None)
        """Size of the latent each sample draws from its seed (None: a deterministic generator)."""
        self.spatial_latent = bool(getattr(model.generator, "spatial_latent", False)) and self.latent_dim is not None
        """Whether the latent may differ per pixel (per-region resampling)."""
        generator: torch.nn.Module | None = None
        if fast and method.fast_generator is not None:
            generator = method.fast_generator(model.generator, model.config, channels_last)
        self.fast = generator is not None
        if generator is None and method.label_input is not None:
            generator = method.label_input(model)
        if generator is None:
            generator = OneHotInput(model.generator, self._num_classes)
        self.generator = generator.to(device=self.device, dtype=dtype).eval()
        self.encoder = model.encoder.to(device=self.device, dtype=dtype).eval() if model.encoder is not None else None
        self._forward = torch.compile(self.generator) if compile else self.generator
        self._palette = self._build_palette()
        self._boxes = None
        self._refine_generator: torch.nn.Module | None = None

    @classmethod
    def from_pretrained(
        cls,
        model: str | Path,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        fast: bool = True,
        preset: str | None = None,
        overrides: list[str] | None = None,
        **kwargs,
    ) -> "Pipeline":
        """Load a release model directory, a bundled model name (e.g. ``"toy"``) or a directory of
        official checkpoints (``preset`` and dotted ``overrides`` give their layout) and build a
        pipeline on it; ``kwargs`` go to the constructor."""
        return cls(load_model(model, preset=preset, overrides=overrides), device=device, dtype=dtype, fast=fast, **kwargs)

    # ------------------------------------------------------------------ description

    @property
    def config(self) -> Config:
        return self.model.config

    @property
    def class_names(self) -> list[str]:
        return self.model.class_names

    @property
    def colors(self) -> list[list[int]] | None:
        """Display colour per class as stored with the model (None when the model has none)."""
        return self.model.colors

    @property
    def palette(self) -> Palette:
        """The palette used for colour-coded label maps: the model's colours, or the default colour map.

        When the model stores ``label_nc + 1`` colours the last one is the don't-care colour.
        """
        return self._palette

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of generated images."""
        return self.model.output_size

    @property
    def has_encoder(self) -> bool:
        return self.encoder is not None

    @property
    def uses_latent(self) -> bool:
        """Whether the generator draws a latent (a VAE's ``z``, OASIS's noise): seeds and samples then differ."""
        return self.latent_dim is not None

    def _build_palette(self) -> Palette:
        m = self.config.model
        names = self.class_names
        colors = self.colors
        if colors is None:
            return make_palette(names=names, colors=default_colors(m.label_nc))
        colors = [list(c) for c in colors]
        dontcare = None
        if len(colors) == m.label_nc + 1:
            dontcare = tuple(int(c) for c in colors.pop())
        if len(colors) != m.label_nc:
            colors = (colors + default_colors(m.label_nc).tolist())[: m.label_nc]
        names = (list(names) + [f"class {i}" for i in range(len(names), m.label_nc)])[: m.label_nc]
        palette = make_palette(names=names, colors=colors)
        return Palette(palette.names, palette.colors, dontcare)

    # ------------------------------------------------------------------ inputs

    def labels_from_image(self, img: ImageLike, source: str = "labels") -> torch.Tensor:
        """A label map (id map or colour-coded picture, file path, array or tensor) → (H, W) int64 ids,
        validated against the model (255 marks don't-care pixels when the model has that channel).

        Raises :class:`DataError` naming ``source`` for ids the model does not know or colours not
        in its palette. The map keeps its size (resizing happens in :meth:`__call__`).
        """
        ids = image_to_ids(img, self._palette, source, "label map")
        m = self.config.model
        check_ids(ids, m.label_nc, m.contain_dontcare, source)
        return ids

    def _class_index(self, ids: torch.Tensor) -> torch.Tensor:
        """Validated ids → channel indices (don't-care 255 → ``label_nc``)."""
        m = self.config.model
        return class_index(ids, m.label_nc, m.contain_dontcare)

    def prepare(
        self,
        labels: ImageLike | Sequence[ImageLike],
        instances: ImageLike | Sequence[ImageLike | None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Label (and instance) maps → ``(index, edges)`` at the model size on the pipeline's device.

        ``index``: (N, H, W) int64 channel indices (don't-care → ``label_nc``); ``edges``: (N, 1, H, W)
        float instance boundaries, or None when the model has no instance channel.
        """
        label_list = _as_list(labels)
        if not label_list:
            raise DataError("labels: no label maps given")
        inst_list = _as_list(instances) if instances is not None else [None] * len(label_list)
        if len(inst_list) == 1 and len(label_list) > 1:
            inst_list = inst_list * len(label_list)
        if len(inst_list) != len(label_list):
            raise DataError(f"instances: {len(inst_list)} instance maps for {len(label_list)} label maps")
        m = self.config.model
        index, edges = [], []
        for i, (label, inst) in enumerate(zip(label_list, inst_list)):
            source = _source(label, "labels", i, len(label_list))
            ids = self.labels_from_image(label, source=source)
            ids = resize_ids(self._class_index(ids).to(self.device), self.size)
            index.append(ids)
            if m.use_instance:
                if inst is None:
                    inst_ids = ids  # no instance map: edges at class boundaries
                else:
                    inst_ids = image_to_ids(inst, None, _source(inst, "instances", i, len(inst_list)), "instance map")
                    inst_ids = resize_ids(inst_ids.to(self.device), self.size)
                edges.append(instance_edges(inst_ids[None, None])[0])
        index_t = torch.stack(index)
        edges_t = torch.stack(edges).to(self.dtype) if m.use_instance else None
        return index_t, edges_t

    def semantics(
        self,
        labels: ImageLike | Sequence[ImageLike],
        instances: ImageLike | Sequence[ImageLike | None] | None = None,
    ) -> torch.Tensor:
        """The one-hot input of the plain generator: (N, S, H, W) in the pipeline's dtype."""
        index, edges = self.prepare(labels, instances)
        return one_hot(index, self._num_classes, edges, self.dtype)

    @torch.inference_mode()
    def encode_style(self, style: ImageLike, source: str = "style") -> tuple[torch.Tensor, torch.Tensor]:
        """A style photo → (mu, logvar), each (1, z_dim), with the model's encoder."""
        if self.encoder is None:
            raise DataError(
                f"{source}: this model has no style encoder (trained without a VAE or released without "
                "encoder.safetensors), so it cannot take a style image"
            )
        image = image_to_tensor(style, self.size, source).to(self.device, self.dtype)
        mu, logvar = self.encoder(image[None])
        return mu.float(), logvar.float()

    def refine_style(
        self,
        style: ImageLike,
        labels: ImageLike,
        instances: ImageLike | None = None,
        steps: int = DEFAULT_REFINE_STEPS,
        source: str = "style",
    ) -> StyleCode:
        """A style photo and its own label map → its :class:`StyleCode`: the encoder's mean refined
        by ``steps`` Adam steps so that the generator redraws the photo from its label map
        (:mod:`spadekit.style_refine`), and the encoder's logvar for the posterior sample. Give the
        code as ``style`` to draw it on any number of label maps without refining again."""
        steps = check_refine_steps(steps, f"{source}: refine steps")
        if isinstance(style, (str, Path)):
            style = read_style_image(style, source=source)
        image = image_to_tensor(style, self.size, source)
        labels_source = _source(labels, f"{source} labels", 0, 1)
        ids = self.labels_from_image(labels, source=labels_source)
        photo_hw = _photo_size(style)
        if photo_hw is not None and tuple(ids.shape) != photo_hw:
            raise DataError(f"{labels_source}: a {ids.shape[1]}x{ids.shape[0]} label map for the "
                            f"{photo_hw[1]}x{photo_hw[0]} style photo {source} (they must be the same size)")
        mu, logvar = self.encode_style(image, source)
        if steps == 0:
            return StyleCode(mu, logvar)
        index, edges = self.prepare(ids, instances)
        z, _ = refine_latent(self._refiner(), index, edges.float() if edges is not None else None,
                             image[None].to(self.device), mu.to(self.device), self._num_classes,
                             StyleRefinement(steps=steps))
        return StyleCode(z.cpu(), logvar)

    def _refiner(self) -> torch.nn.Module:
        """The plain generator in float32 behind the ``(index, edges, z)`` interface, for refinement
        (a copy: the pipeline's own generator may be the fast one, or in half precision)."""
        if self.model.method.label_input is not None:
            raise DataError(f"style: refining a style is not available for {self.model.method.title} models")
        if self._refine_generator is None:
            generator = copy.deepcopy(self.model.generator).to(self.device, torch.float32).eval().requires_grad_(False)
            self._refine_generator = OneHotInput(generator, self._num_classes)
        return self._refine_generator

    def latents(
        self,
        count: int,
        num_samples: int,
        seed: int | None,
        style: ImageLike | Sequence[ImageLike] | None = None,
        style_labels: ImageLike | Sequence[ImageLike] | None = None,
        style_instances: ImageLike | Sequence[ImageLike | None] | None = None,
        refine_steps: int = 0,
    ) -> torch.Tensor | None:
        """The (count·num_samples, latent_dim) latents of a call (map-major), or None for
        deterministic generators. With ``refine_steps`` the style photos' latents are refined
        against their label maps ``style_labels`` (:meth:`refine_style`)."""
        if style is not None and self.encoder is None:
            styles = _as_list(style)
            raise DataError(
                f"{_source(styles[0], 'style', 0, 1)}: this model has no style encoder (trained without a VAE "
                "or released without encoder.safetensors), so it cannot take a style image"
            )
        refine_steps = check_refine_steps(refine_steps)
        check_refine_request(refine_steps, style is not None, style_labels is not None)
        if seed is not None:
            seed = check_seed(seed, "seed", count=num_samples)
        if self.latent_dim is None:
            return None
        if seed is None:
            seed = random.randrange(2**31)
        # eps of sample k comes from seed + k: the same seed gives the same z whatever the batch.
        eps = torch.stack([seeded_latent(self.latent_dim, int(seed) + k) for k in range(num_samples)])
        eps = eps.repeat(count, 1)
        if style is None:
            return eps
        styles = _as_list(style)
        if len(styles) not in (1, count):
            raise DataError(f"style: {len(styles)} style images for {count} label maps (give one, or one per map)")
        if refine_steps > 0:
            label_list = _as_list(style_labels)
            inst_list = _as_list(style_instances) if style_instances is not None else [None] * len(label_list)
            if len(label_list) != len(styles) or len(inst_list) != len(styles):
                raise DataError(f"style labels: {len(label_list)} label maps and {len(inst_list)} instance maps "
                                f"for {len(styles)} style images (give one per style image)")
            codes = [self.refine_style(s, label, inst, refine_steps, _source(s, "style", i, len(styles)))
                     for i, (s, label, inst) in enumerate(zip(styles, label_list, inst_list))]
        else:
            codes = [s if isinstance(s, StyleCode) else StyleCode(*self.encode_style(s, _source(s, "style", i, len(styles))))
                     for i, s in enumerate(styles)]
        for i, code in enumerate(codes):
            if tuple(code.mu.shape) != (1, self.latent_dim) or code.logvar.shape != code.mu.shape:
                raise DataError(f"{_source(styles[i], 'style', i, len(styles))}: a style code of shape "
                                f"{tuple(code.mu.shape)} for a model whose latent has {self.latent_dim} values")
        mu = torch.cat([c.mu for c in codes]).cpu()
        logvar = torch.cat([c.logvar for c in codes]).cpu()
        if len(styles) == 1:
            mu, logvar = mu.expand(count, -1), logvar.expand(count, -1)
        mu = mu.repeat_interleave(num_samples, 0)
        logvar = logvar.repeat_interleave(num_samples, 0)
        return mu + eps * torch.exp(0.5 * logvar)

    def region_latents(
        self,
        z: torch.Tensor | None,
        region: ImageLike | Sequence[ImageLike],
        count: int,
        num_samples: int,
        region_seed: int | None,
    ) -> torch.Tensor:
        """Latent maps (count·num_samples, latent_dim, H, W): ``z`` everywhere, and inside ``region``
        the latent of ``region_seed + k`` (a fresh random seed when None)."""
        if not self.spatial_latent or z is None:
            raise DataError("region: this model's latent is one vector per image, so it cannot resample one region")
        regions = _as_list(region)
        if len(regions) not in (1, count):
            raise DataError(f"region: {len(regions)} masks for {count} label maps (give one, or one per map)")
        masks = []
        for i, item in enumerate(regions):
            ids = image_to_ids(item, None, _source(item, "region", i, len(regions)), "region mask")
            masks.append(resize_ids(ids, self.size) != 0)
        mask = torch.stack(masks)
        if len(regions) == 1:
            mask = mask.expand(count, -1, -1)
        if region_seed is None:
            region_seed = random.randrange(2**31)
        inner = torch.stack([seeded_latent(self.latent_dim, int(region_seed) + k) for k in range(num_samples)]).repeat(count, 1)
        mask = mask.repeat_interleave(num_samples, 0)[:, None].to(z.dtype)
        return z[:, :, None, None] * (1 - mask) + inner[:, :, None, None] * mask

    # ------------------------------------------------------------------ running

    # ------------------------------------------------------------------ boxes

    @property
    def takes_boxes(self) -> bool:
        """Whether the model synthesizes from object boxes (:meth:`from_boxes`)."""
        method = self.model.method
        return "boxes" in method.capabilities and method.box_input is not None

    @property
    def box_conditioner(self):
        """The method's box input (BachGAN: :class:`~spadekit.methods.bachgan.synthesis.BoxConditioner`,
        with ``classes`` a box may have, ``parse`` and ``bank``); DataError for models without boxes."""
        if not self.takes_boxes:
            raise DataError(f"boxes: this {self.model.method.title} model takes label maps, not boxes")
        if self._boxes is None:
            self._boxes = self.model.method.box_input(self.model)
        return self._boxes

    @torch.inference_mode()
    def from_boxes(
        self,
        boxes,
        *,
        bank=None,
        choose: Sequence[int] | None = None,
        candidates: int | None = None,
        seed: int | None = None,
        num_samples: int = 1,
        output: str = "pil",
        source: str = "boxes",
    ):
        """Synthesize a scene from object boxes (models with the ``"boxes"`` capability).

        Args:
            boxes: a JSON file path, a decoded JSON document (``{"width", "height", "boxes": [{"class":
                name or id, "box": [x0, y0, x1, y1]}, ...]}`` or the list alone) or a list of boxes.
            bank: the memory bank to retrieve from (a file or a loaded bank); default: the model's own.
            choose: bank entries to use instead of the best-ranked ones (every sample uses them).
            candidates: how many ranked entries the result lists (to choose from).
            seed: sample ``k`` draws its latent from ``seed + k`` (models with a latent).
            num_samples: images; without ``choose`` each sample uses the next best retrieved layouts.
            output: ``"pil"`` or ``"tensor"`` for the result's ``images``.
        Returns:
            The method's result: for BachGAN a :class:`~spadekit.methods.bachgan.synthesis.BoxSynthesis`
            (images, boxes, the retrieved layouts and bank entries each sample used, the ranking).
        Raises:
            DataError naming ``source`` for malformed boxes, unknown classes, boxes outside the image, or a
            missing/unfit bank.
        """
        if output not in ("pil", "tensor"):
            raise ValueError("output must be 'pil' or 'tensor'")
        if num_samples < 1:
            raise ValueError("num_samples must be >= 1")
        plan = self.box_conditioner.plan(
            boxes, num_samples=num_samples, bank=bank, choose=choose, candidates=candidates, source=source
        )
        if seed is None:
            seed = random.randrange(2**31)
        z = self.latents(1, num_samples, seed)
        generator = self.model.generator.to(device=self.device, dtype=self.dtype)
        semantics = plan.semantics.to(self.device, self.dtype)
        outputs = []
        for start in range(0, num_samples, self.batch_size):
            sl = slice(start, start + self.batch_size)
            outputs.append(generator(semantics[sl], z[sl].to(self.device, self.dtype) if z is not None else None).float())
        images = torch.cat(outputs)
        return plan.result(images if output == "tensor" else to_pil(images))

    @torch.inference_mode()
    def generate(self, index: torch.Tensor, edges: torch.Tensor | None, z: torch.Tensor | None) -> torch.Tensor:
        """Run the generator in chunks of ``batch_size``: (N, H, W) indices → (N, 3, H, W) float32 in [-1, 1]."""
        outputs = []
        for start in range(0, index.shape[0], self.batch_size):
            sl = slice(start, start + self.batch_size)
            zc = z[sl].to(self.device, self.dtype) if z is not None else None
            ec = edges[sl] if edges is not None else None
            outputs.append(self._forward(index[sl], ec, zc).float().contiguous())
        return torch.cat(outputs)

    def __call__(
        self,
        labels: ImageLike | Sequence[ImageLike],
        instances: ImageLike | Sequence[ImageLike | None] | None = None,
        style: ImageLike | Sequence[ImageLike] | None = None,
        seed: int | None = None,
        num_samples: int = 1,
        output: str = "pil",
        region: ImageLike | Sequence[ImageLike] | None = None,
        region_seed: int | None = None,
        style_labels: ImageLike | Sequence[ImageLike] | None = None,
        style_instances: ImageLike | Sequence[ImageLike | None] | None = None,
        refine_steps: int = 0,
    ) -> list[Image.Image] | torch.Tensor:
        """Synthesize images.

        Args:
            labels: one label map or a list (PIL images, arrays, tensors or file paths; id maps or
                colour-coded with the model's palette), any size.
            instances: matching instance maps (or None: class boundaries are used as edges).
            style: a style photo (or one per label map) encoded into the latent; needs an encoder.
                A :class:`StyleCode` (from :meth:`refine_style`) stands for an already encoded photo.
            seed: sample ``k`` uses ``seed + k``; None draws a random seed.
            num_samples: images per label map.
            output: ``"pil"`` (list of images) or ``"tensor"`` ((N·K, 3, H, W) float32 in [-1, 1] on
                the pipeline's device).
            region, region_seed: per-region resampling (models whose latent may differ per pixel,
                :attr:`spatial_latent`): inside ``region`` (a mask, any size, non-zero = inside; one,
                or one per label map) the latent of sample ``k`` comes from ``region_seed + k``,
                elsewhere from ``seed + k``. The rest of the image changes little.
            style_labels, style_instances, refine_steps: refine each style photo's latent for
                ``refine_steps`` steps against its own label (and instance) map, one per style photo,
                before drawing (:meth:`refine_style`; seconds per photo on a CPU). 0: the encoder's
                latent as it is.
        Returns:
            Images ordered map by map, ``num_samples`` consecutive images per map.
        """
        if output not in ("pil", "tensor"):
            raise ValueError("output must be 'pil' or 'tensor'")
        if num_samples < 1:
            raise ValueError("num_samples must be >= 1")
        index, edges = self.prepare(labels, instances)
        if seed is None:
            seed = random.randrange(2**31)
        z = self.latents(index.shape[0], num_samples, seed, style, style_labels, style_instances, refine_steps)
        if region is not None:
            z = self.region_latents(z, region, index.shape[0], num_samples, region_seed)
        if num_samples > 1:
            index = index.repeat_interleave(num_samples, 0)
            edges = edges.repeat_interleave(num_samples, 0) if edges is not None else None
        images = self.generate(index, edges, z)
        return images if output == "tensor" else to_pil(images)


def seeded_latent(size: int, seed: int) -> torch.Tensor:
    """The standard-normal latent vector of ``seed`` (float32, CPU): one rule for every method."""
    return torch.randn(size, generator=torch.Generator().manual_seed(int(seed)))


class OneHotInput(torch.nn.Module):
    """A plain generator behind the fast-path interface ``(index, edges, z)``: builds the one-hot input."""

    def __init__(self, generator: torch.nn.Module, num_classes: int):
        super().__init__()
        self.inner = generator
        self.num_classes = num_classes

    def forward(self, index: torch.Tensor, edges: torch.Tensor | None, z: torch.Tensor | None) -> torch.Tensor:
        dtype = next(self.inner.parameters()).dtype
        return self.inner(one_hot(index, self.num_classes, edges, dtype), z)


def one_hot(index: torch.Tensor, num_classes: int, edges: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """(N, H, W) channel indices (+ (N, 1, H, W) edges) → (N, C (+1), H, W) one-hot semantics."""
    n, h, w = index.shape
    semantics = torch.zeros(n, num_classes, h, w, dtype=dtype, device=index.device)
    semantics.scatter_(1, index[:, None], 1.0)
    if edges is not None:
        semantics = torch.cat([semantics, edges.to(dtype)], dim=1)
    return semantics


def _photo_size(img: ImageLike) -> tuple[int, int] | None:
    """(height, width) of a style photo as given (a picture, array or tensor; None otherwise, and
    :func:`image_to_tensor` then names the problem)."""
    if isinstance(img, Image.Image):
        return img.height, img.width
    if isinstance(img, torch.Tensor):
        return tuple(img.shape[-2:])
    if hasattr(img, "shape") and len(img.shape) == 3:
        return tuple(img.shape[:2])
    return None


def _as_list(items) -> list:
    if isinstance(items, (list, tuple)):
        return list(items)
    if isinstance(items, torch.Tensor) and items.dim() == 4:
        return list(items)  # a batch: (N, 1, H, W) id maps or (N, 3, H, W) pictures
    return [items]


def _source(item, default: str, index: int, count: int) -> str:
    if isinstance(item, (str, Path)):
        return str(item)
    return default if count == 1 else f"{default}[{index}]"


def model_at_size(model: SpadeModel, size: tuple[int, int]) -> SpadeModel:
    """The same weights rebuilt for another output size (width, height).

    Fully convolutional generators (SPADE without VAE, OASIS, ...) run at any size their
    upsampling allows (sides multiples of 32 for five ×2 steps): the semantics still modulate every
    layer, though a model sees its training scale best. A generator whose weights fix the size (a
    VAE's ``fc``) is refused with the reason.
    """
    from spadekit.errors import CheckpointError, ConfigError
    from spadekit.release import load_state_into

    current = tuple(model.output_size)
    size = (int(size[0]), int(size[1]))
    if size == current:
        return model
    m = model.config.model
    try:
        config = model.method.config_at_size(model.config, size)
        reached = model.method.size_of(config)
    except ConfigError as exc:
        raise ConfigError(f"size {size[0]}x{size[1]}: {exc}") from None
    if tuple(reached) != size:
        step = max(1, current[0] // max(1, m.latent_size[0]))
        raise ConfigError(
            f"size {size[0]}x{size[1]} cannot be reached by this generator (both sides must be multiples of {step}; "
            f"the nearest is {reached[0]}x{reached[1]})"
        )
    generator = model.method.build_networks(config, False)["generator"]
    try:
        load_state_into(generator, model.generator.state_dict(), "generator")
    except CheckpointError:
        raise ConfigError(
            f"size {size[0]}x{size[1]}: this generator's weights fix its size at {current[0]}x{current[1]}"
            + (" (a VAE generator's fc layer sets the latent size)" if m.use_vae else "")
        ) from None
    reference = next(iter(model.generator.state_dict().values()))
    generator.to(device=reference.device, dtype=reference.dtype).eval()
    return SpadeModel(
        config=config, generator=generator, discriminator=None, encoder=model.encoder, provenance=model.provenance, assets=model.assets
    )
