"""The ASAPNet generator (Rott Shaham et al., "Spatially-Adaptive Pixelwise Networks for Fast Image
Translation"): a low-res CNN predicts, for every k×k tile, the weights of a tiny per-pixel MLP that
then runs at full resolution."""

from __future__ import annotations

import torch
from torch import nn

from spadekit.errors import ConfigError
from spadekit.methods.asapnet.layers import TentDownsample
from spadekit.methods.asapnet.lowres import LowResStream
from spadekit.methods.asapnet.pixelmlp import PixelMLP


def _power_of_two(value: float) -> bool:
    return value >= 1 and float(value).is_integer() and (int(value) & (int(value) - 1)) == 0


def total_downsampling(width: int, aspect_ratio: float) -> float:
    """The total factor S = width // (16 · aspect_ratio) (Python floor division, as the paper's code):
    the parameter grid is always 16 rows × 16·aspect_ratio columns at the training size."""
    return width // (16 * aspect_ratio)


def allowed_widths(aspect_ratio: float, learned_downsampling: int, count: int = 5) -> list[int]:
    """The smallest training widths whose total factor S is a power of two ≥ the learned factor and
    whose image (width × round(width / aspect_ratio)) tiles exactly into S×S cells."""
    found, width = [], 1
    while len(found) < count and width <= 1 << 16:
        s = total_downsampling(width, aspect_ratio)
        if _power_of_two(s) and s >= learned_downsampling and width % s == 0 and round(width / aspect_ratio) % s == 0:
            found.append(width)
        width += 1
    return found


def check_downsampling(width: int, aspect_ratio: float, learned_downsampling: int) -> int:
    """The total factor S for a training size, or a ConfigError naming the allowed widths."""
    if not _power_of_two(learned_downsampling):
        raise ConfigError(f"ASAPNet: the learned downsampling factor must be a power of two (1, 2, 4, 8, 16, ...), got {learned_downsampling}")
    s = total_downsampling(width, aspect_ratio)
    if not _power_of_two(s) or s < learned_downsampling:
        allowed = ", ".join(map(str, allowed_widths(aspect_ratio, learned_downsampling)))
        raise ConfigError(
            f"ASAPNet: width {width} with aspect ratio {aspect_ratio} gives a total downsampling "
            f"{width} // (16·{aspect_ratio}) = {s:g}, which must be a power of two ≥ the learned factor "
            f"{learned_downsampling}; allowed widths: {allowed}, ..."
        )
    return int(s)


def check_tile(tile: int, learned_downsampling: int) -> int:
    """An explicit total factor S (a model run at another size than it was trained at keeps its S):
    a ConfigError unless it is a power of two ≥ the learned factor."""
    if not _power_of_two(tile) or tile < learned_downsampling:
        raise ConfigError(
            f"ASAPNet: the tile size (total downsampling) must be a power of two ≥ the learned factor "
            f"{learned_downsampling}, got {tile}"
        )
    return int(tile)


def check_tile_size(tile: int, height: int, width: int) -> None:
    """ConfigError unless an H×W input tiles exactly into ``tile``×``tile`` cells."""
    if height % tile or width % tile or height < tile or width < tile:
        raise ConfigError(
            f"ASAPNet (tile size {tile}) needs height and width multiples of {tile}, got {height}×{width} (H×W); "
            f"e.g. {max(tile, height // tile * tile)}×{max(tile, width // tile * tile)}"
        )


class ASAPNetGenerator(nn.Module):
    """Semantics → image through per-cell pixel MLPs.

    ``G(x) = HR(x', LR(down(x)))``: ``down`` is the fixed tent filter by s = S / S2 (absent when
    S = S2), the low-res stream (:class:`LowResStream`, all semantic channels) predicts an
    (H / S) × (W / S) grid of parameter vectors, and the pixel MLP (:class:`PixelMLP`) evaluates
    them on ``x'``, the semantics without their last channel when ``lr_instance`` (the instance
    edges then only reach the low-res stream; like the paper's code the last channel is dropped
    whether or not it is an instance channel).

    Args:
        semantic_nc: input channels (one-hot classes, don't-care, instance edges).
        width, aspect_ratio: training width (``crop_size``) and width/height; they fix the total
            downsampling S = width // (16 · aspect_ratio), which must be a power of two ≥ S2.
        learned_downsampling: S2, the stride-2 steps of the low-res stream (``learned_ds_factor``).
        lr_width, lr_max_width, lr_depth: low-res stream widths and block count.
        hr_width, hr_depth: pixel MLP width and layer count.
        positional: append the positional encoding to the pixel MLP input (``hr_coor cosine``).
        lr_instance: the last semantic channel feeds only the low-res stream.
        output_nc: image channels.
        norm, spectral, reflection_pad: the low-res stream's norm layer (``instanceaffine`` by
            default), spectral norm and padding.
        tile: the total factor S itself, instead of the official rule from ``width`` and
            ``aspect_ratio`` (the weights depend on S: a model keeps its S at any other size).

    Shapes: ``semantics`` (N, semantic_nc, H, W) with H, W multiples of S → (N, output_nc, H, W) in [-1, 1].
    """

    latent_dim = None
    spatial_latent = False

    def __init__(
        self,
        semantic_nc: int,
        width: int = 512,
        aspect_ratio: float = 1.0,
        learned_downsampling: int = 16,
        lr_width: int = 64,
        lr_max_width: int = 1024,
        lr_depth: int = 7,
        hr_width: int = 64,
        hr_depth: int = 5,
        positional: bool = True,
        lr_instance: bool = True,
        output_nc: int = 3,
        norm: str = "instanceaffine",
        spectral: bool = False,
        reflection_pad: bool = False,
        tile: int | None = None,
    ):
        super().__init__()
        if tile is None:
            s = check_downsampling(width, aspect_ratio, learned_downsampling)
        else:
            s = check_tile(tile, learned_downsampling)
        self.semantic_nc = semantic_nc
        self.downsampling = s
        self.learned_downsampling = learned_downsampling
        self.lr_instance = lr_instance
        self.output_nc = output_nc
        hr_in = semantic_nc - int(lr_instance)
        self.highres_stream = PixelMLP(hr_in, output_nc, hr_width, hr_depth, self.downsampling, positional)
        self.lowres_stream = LowResStream(
            semantic_nc,
            self.highres_stream.num_params,
            lr_width,
            lr_max_width,
            lr_depth,
            learned_downsampling,
            norm,
            spectral,
            reflection_pad,
        )
        stride = self.downsampling // learned_downsampling
        self.pre_downsample = TentDownsample(stride, semantic_nc) if stride > 1 else None

    @property
    def num_params(self) -> int:
        """Parameters per cell that the low-res stream predicts."""
        return self.highres_stream.num_params

    def check_size(self, height: int, width: int) -> None:
        """ConfigError unless an H×W input tiles exactly into S×S cells."""
        check_tile_size(self.downsampling, height, width)

    def lowres_input(self, semantics: torch.Tensor) -> torch.Tensor:
        """What the low-res stream sees: the semantics pre-downsampled by S / S2 (or as they are)."""
        return semantics if self.pre_downsample is None else self.pre_downsample(semantics)

    def predict_parameters(self, semantics: torch.Tensor) -> torch.Tensor:
        """The per-cell MLP parameters: (N, semantic_nc, H, W) → (N, num_params, H / S, W / S)."""
        if semantics.shape[1] != self.semantic_nc:
            raise ValueError(f"ASAPNet generator takes {self.semantic_nc} semantic channels, got {semantics.shape[1]}")
        self.check_size(semantics.shape[-2], semantics.shape[-1])
        return self.lowres_stream(self.lowres_input(semantics))

    def render(self, semantics: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """The pixel MLPs with the given parameters: → (N, output_nc, H, W)."""
        x = semantics[:, :-1] if self.lr_instance else semantics
        return self.highres_stream(x, params)

    def forward_with_parameters(self, semantics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(image, per-cell parameters), e.g. for the paper's optional weight-decay loss on the parameters."""
        params = self.predict_parameters(semantics)
        return self.render(semantics, params), params

    def forward(
        self, semantics: torch.Tensor, z: torch.Tensor | None = None, return_parameters: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``z`` is accepted for the common generator interface and ignored (ASAPNet is deterministic).
        ``return_parameters``: return (image, per-cell parameters), through whatever wraps the module
        (DDP), for the weight-decay loss on the parameters."""
        image, params = self.forward_with_parameters(semantics)
        return (image, params) if return_parameters else image
