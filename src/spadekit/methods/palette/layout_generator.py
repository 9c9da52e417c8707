"""The progressive (ProGAN-style) layout generator of Semantic Palette: (z ⊕ palette) → soft layout.

Block i (i = 0 … B-1) works at 4·2^i × 4·aspect·2^i. Block 0 maps the pixel-normed input vector
with a linear layer to a 4 × 4·aspect map; every later block upsamples ×2 (nearest). Each block
then applies conv → LeakyReLU(0.2) → pixel norm (twice). After every active block but the last,
``joints_per_block`` *joints* run in sequence: each turns the current features into a layout with
the block's 1×1 ``to_mask`` convolution and the proportion-aware activation, then modulates the
features with that layout (``x ← σ(α)·x + LeakyReLU(β)``, α and β from a 3×3 conv of the layout).
All joints of a block and the block's final mask share ONE ``to_mask`` module: the official
checkpoints store it under k+1 keys with identical values, and so does this module's state dict.

All B blocks are built (and saved) whatever resolution is being trained; ``res`` selects how many
run. ``fade`` (the ProGAN fade-in) mixes the upsampled previous-resolution layout with the new one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.methods.palette.activation import ACTIVATIONS, LayoutStep, activate
from spadekit.methods.palette.layers import EqualizedConv2d, EqualizedLinear, pixel_norm

JOINT_TYPES = ("bias", "linear", "affine")
"""How a joint's 3×3 conv output y modulates the features x: ``bias``: x ← ½·x + LeakyReLU(y);
``linear``: x ← σ(y)·x + LeakyReLU(0) = σ(y)·x; ``affine``: y = (α, β), x ← σ(α)·x + LeakyReLU(β)."""


def official_widths(max_dim: int, max_hidden_dim: int) -> list[int]:
    """Output widths of the official generator's blocks: ``min(max_hidden_dim, 2^(12-i))``."""
    return [min(max_hidden_dim, 2 ** (12 - i)) for i in range(num_blocks(max_dim))]


def num_blocks(max_dim: int) -> int:
    """Blocks needed to reach layouts of height ``max_dim`` (a power of two ≥ 4)."""
    if max_dim < 4 or max_dim & (max_dim - 1):
        raise ValueError(f"max_dim must be a power of two >= 4, got {max_dim}")
    return int(math.log2(max_dim)) - 1


def blocks_for_res(res: int) -> int:
    """How many blocks run to produce layouts of height ``res``."""
    if res < 4 or res & (res - 1):
        raise ValueError(f"a layout height (resolution stage) must be a power of two >= 4, got {res}")
    return int(math.log2(res)) - 1


class Mask(nn.Module):
    """The 1×1 conv giving raw class scores (key ``sem_conv``). (N, ch, H, W) → (N, C, H, W)."""

    def __init__(self, channels: int, num_semantics: int):
        super().__init__()
        self.sem_conv = EqualizedConv2d(channels, num_semantics, 1, gain=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sem_conv(x)


class AssistedBlock(nn.Module):
    """One joint: layout from the features, then the features modulated by that layout.

    ``to_mask`` is the block's shared :class:`Mask` (tied weights).
    Shapes: x (N, ch, H, W), palette (N, C) → (x', LayoutStep).
    """

    def __init__(self, channels: int, num_semantics: int, to_mask: Mask, joint_type: str, activation: str, filter_small: bool):
        super().__init__()
        self.to_mask = to_mask
        self.conv1 = EqualizedConv2d(num_semantics, channels * (2 if joint_type == "affine" else 1), 3, padding=1, gain=1.0)
        self.channels = channels
        self.joint_type = joint_type
        self.activation = activation
        self.filter_small = filter_small

    def forward(self, x: torch.Tensor, palette: torch.Tensor | None) -> tuple[torch.Tensor, LayoutStep]:
        step = activate(self.to_mask(x), palette, self.activation, self.filter_small)
        y = self.conv1(step.sem_seg)
        if self.joint_type == "affine":
            x = torch.sigmoid(y[:, : self.channels]) * x + F.leaky_relu(y[:, self.channels :], 0.2)
        elif self.joint_type == "bias":
            # α = 0: σ(0) = ½.
            x = 0.5 * x + F.leaky_relu(y, 0.2)
        else:
            x = torch.sigmoid(y) * x
        return x, step


class CondJoint(nn.Module):
    """A block's ``to_mask`` and its joints (``assisted_blocks``), all sharing that ``to_mask``."""

    def __init__(self, channels: int, num_semantics: int, joints: int, joint_type: str, activation: str, filter_small: bool):
        super().__init__()
        self.to_mask = Mask(channels, num_semantics)
        self.activation = activation
        self.filter_small = filter_small
        self.assisted_blocks = nn.ModuleList(
            AssistedBlock(channels, num_semantics, self.to_mask, joint_type, activation, filter_small) for _ in range(joints)
        )

    def forward(self, x: torch.Tensor, palette: torch.Tensor | None) -> tuple[torch.Tensor, list[LayoutStep]]:
        steps = []
        for joint in self.assisted_blocks:
            x, step = joint(x, palette)
            steps.append(step)
        return x, steps

    def mask(self, x: torch.Tensor, palette: torch.Tensor | None) -> LayoutStep:
        return activate(self.to_mask(x), palette, self.activation, self.filter_small)


class GeneratorBlock(nn.Module):
    """One resolution of the generator (keys ``fc1`` for the first block, else ``conv1``; ``conv2``;
    ``cond_joint``). Shapes: first block (N, in) → (N, out, 4, 4·aspect); others (N, in, H, W) →
    (N, out, 2H, 2W)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        initial: bool,
        aspect_ratio: int,
        num_semantics: int,
        joints: int,
        joint_type: str,
        activation: str,
        filter_small: bool,
    ):
        super().__init__()
        self.initial = initial
        self.h0, self.w0 = 4, 4 * aspect_ratio
        if initial:
            self.fc1 = EqualizedLinear(in_channels, out_channels * self.h0 * self.w0, gain=math.sqrt(2) / 4)
        else:
            self.conv1 = EqualizedConv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = EqualizedConv2d(out_channels, out_channels, 3, padding=1)
        self.cond_joint = CondJoint(out_channels, num_semantics, joints, joint_type, activation, filter_small)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.initial:
            x = self.fc1(pixel_norm(x)).view(x.shape[0], -1, self.h0, self.w0)
        else:
            x = self.conv1(F.interpolate(x, scale_factor=2, mode="nearest"))
        x = pixel_norm(F.leaky_relu(x, 0.2))
        return pixel_norm(F.leaky_relu(self.conv2(x), 0.2))

    def mask(self, x: torch.Tensor, palette: torch.Tensor | None, upsample: bool = False) -> LayoutStep:
        if upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.cond_joint.mask(x, palette)


class LayoutGenerator(nn.Module):
    """Noise and class proportions → a list of soft layouts (every joint's, then the final one).

    Args:
        num_semantics: classes C of the layout.
        latent_dim: size of z.
        widths: output channels of each block, low to high resolution (B entries; B = log2(max_dim) - 1).
            :func:`official_widths` gives the official ``min(max_hidden_dim, 2^(12-i))``.
        aspect_ratio: layout width / height (an integer, 2 for Cityscapes).
        joints_per_block: joints after each non-final block (``joints_mul``; 0 = none).
        joint_type: one of :data:`JOINT_TYPES`.
        activation: one of :data:`~spadekit.methods.palette.activation.ACTIVATIONS`.
        conditional: concatenate the palette to z (False: an unconditional generator, cond_dim 0).
        filter_small: ignore proportions under one pixel in the activation (``filter_cond``).
        res: default layout height produced when ``forward`` is not given one (default: max).

    Shapes: z (N, latent_dim), palette (N, C) → list of :class:`LayoutStep` with (N, C, res, res·aspect)
    for the last one.
    """

    runs_parameter_subsets = True
    """Only the blocks of the current resolution run (DDP must look for unused parameters)."""

    def __init__(
        self,
        num_semantics: int,
        latent_dim: int,
        widths: Sequence[int],
        aspect_ratio: int = 1,
        joints_per_block: int = 1,
        joint_type: str = "bias",
        activation: str = "assisted",
        conditional: bool = True,
        filter_small: bool = False,
        res: int | None = None,
    ):
        super().__init__()
        if joint_type not in JOINT_TYPES:
            raise ValueError(f"unknown joint type {joint_type!r}; choose one of {', '.join(JOINT_TYPES)}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        if not widths:
            raise ValueError("widths must list at least one block")
        self.num_semantics = num_semantics
        self.latent_dim = latent_dim
        self.widths = list(widths)
        self.aspect_ratio = int(aspect_ratio)
        self.joints_per_block = joints_per_block
        self.joint_type = joint_type
        self.activation = activation
        self.conditional = conditional
        self.filter_small = filter_small
        self.cond_dim = num_semantics if conditional else 0
        blocks = []
        for i, out_channels in enumerate(self.widths):
            final = i == len(self.widths) - 1
            in_channels = self.cond_dim + latent_dim if i == 0 else self.widths[i - 1]
            blocks.append(
                GeneratorBlock(
                    in_channels,
                    out_channels,
                    initial=i == 0,
                    aspect_ratio=self.aspect_ratio,
                    num_semantics=num_semantics,
                    joints=0 if final else joints_per_block,
                    joint_type=joint_type,
                    activation=activation,
                    filter_small=filter_small,
                )
            )
        self.blocks = nn.ModuleList(blocks)
        self.res = self.max_dim if res is None else res

    @property
    def max_dim(self) -> int:
        """Height of the layouts of the last block."""
        return 2 ** (len(self.blocks) + 1)

    def _active(self, res: int | None) -> int:
        res = self.res if res is None else res
        active = blocks_for_res(res)
        if active > len(self.blocks):
            raise ValueError(f"resolution {res} is above this generator's maximum {self.max_dim}")
        return active

    def input_vector(self, z: torch.Tensor, palette: torch.Tensor | None) -> torch.Tensor:
        if not self.conditional:
            return z
        if palette is None:
            raise ValueError("this layout generator is conditional: pass a palette (N, C)")
        return torch.cat((z, palette), dim=1)

    def forward(
        self,
        z: torch.Tensor,
        palette: torch.Tensor | None = None,
        res: int | None = None,
        alpha: float | None = None,
    ) -> list[LayoutStep]:
        """Every joint's layout (block order, joint order) then the final layout at ``res``;
        with ``alpha`` the final layout is the fade-in mix (see :meth:`fade`)."""
        if alpha is not None:
            return self.fade(z, alpha, palette, res)
        active = self._active(res)
        x = self.input_vector(z, palette)
        steps: list[LayoutStep] = []
        for block in self.blocks[: active - 1]:
            x, joint_steps = block.cond_joint(block(x), palette)
            steps += joint_steps
        last = self.blocks[active - 1]
        steps.append(last.mask(last(x), palette))
        return steps

    def fade(self, z: torch.Tensor, alpha: float, palette: torch.Tensor | None = None, res: int | None = None) -> list[LayoutStep]:
        """:meth:`forward` during the fade-in to ``res``: the final layout is
        ``(1-alpha)·mask_prev(upsampled features of the previous block, before its joints) +
        alpha·mask_cur(features after the previous block's joints)``."""
        active = self._active(res)
        if active < 2:
            raise ValueError("there is no fade-in into the first resolution (4)")
        x = self.input_vector(z, palette)
        steps: list[LayoutStep] = []
        for block in self.blocks[: active - 2]:
            x, joint_steps = block.cond_joint(block(x), palette)
            steps += joint_steps
        prev, last = self.blocks[active - 2], self.blocks[active - 1]
        x = prev(x)
        coarse = prev.mask(x, palette, upsample=True)
        x, joint_steps = prev.cond_joint(x, palette)
        steps += joint_steps
        fine = last.mask(last(x), palette)
        steps.append(coarse.mix(fine, alpha))
        return steps

    def layout(self, z: torch.Tensor, palette: torch.Tensor | None = None, res: int | None = None) -> torch.Tensor:
        """The final soft layout (N, C, H, W) only."""
        return self.forward(z, palette, res)[-1].sem_seg
