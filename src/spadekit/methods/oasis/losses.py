"""OASIS losses: class-balanced (N+1)-class cross-entropy and LabelMix.

Notation: semantics (B, N, H, W) one-hot, t = argmax over N (B, H, W); discriminator logits
(B, N + 1, H, W) with channel 0 = "fake" and channel c + 1 = class c.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LABELMIX_MASKS = ("official", "independent")


def class_balancing_weights(semantics: torch.Tensor, balance: bool = True, dontcare: bool = True) -> torch.Tensor:
    """Per-pixel weights ``alpha_t`` with ``alpha_c = B·H·W / (n · count_c)`` over the BATCH.

    count_c counts class-c pixels in the whole batch, n the classes present; with ``dontcare``
    class 0 is neither counted in n nor weighted (alpha_0 = 0). ``balance=False`` gives ones
    (official ``--no_balancing_inloss``).

    Shapes: semantics (B, N, H, W) → (B, 1, H, W).
    """
    b, _, h, w = semantics.shape
    if not balance:
        return semantics.new_ones(b, 1, h, w)
    counts = semantics.sum(dim=(0, 2, 3))
    if dontcare:
        counts[0] = 0
    present = (counts > 0).sum()
    # Same operation order as the official code (numel(one-hot) / (n · N) = B·H·W / n), for bitwise parity.
    alpha = torch.reciprocal(counts) * semantics.numel() / (present * semantics.shape[1])
    if dontcare:
        alpha[0] = 0
    return alpha[semantics.argmax(dim=1, keepdim=True)]


def n1_targets(semantics: torch.Tensor, real: bool) -> torch.Tensor:
    """(N+1)-class targets: t + 1 for real, 0 (fake) everywhere otherwise. (B, N, H, W) → (B, H, W) long."""
    labels = semantics.argmax(dim=1)
    return labels + 1 if real else torch.zeros_like(labels)


def n1_loss(logits: torch.Tensor, semantics: torch.Tensor, real: bool, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean per-pixel cross-entropy against :func:`n1_targets`.

    ``real``: weighted by ``weights`` (B, 1, H, W) (class balancing; None = ones); fake targets
    are never weighted, as in the official code.
    """
    ce = F.cross_entropy(logits, n1_targets(semantics, real), reduction="none")
    if real and weights is not None:
        ce = ce * weights[:, 0]
    return ce.mean()


def generator_adversarial_loss(
    logits_fake: torch.Tensor, semantics: torch.Tensor, balance: bool = True, dontcare: bool = True
) -> torch.Tensor:
    """The generator's loss: the balanced real-class loss of D on the fake image (no "not fake" term)."""
    return n1_loss(logits_fake, semantics, True, class_balancing_weights(semantics, balance, dontcare))


def labelmix_mask(semantics: torch.Tensor, mode: str = "official") -> torch.Tensor:
    """A LabelMix mask: every class present in the batch gets one random bit, shared by all images.

    The bits are ``torch.randint(0, 2, (1,))`` per class of ``torch.unique(t)`` in ascending order,
    drawn on the semantics' device, so a recorded mask reproduces after seeding.

    ``official``: bits written into t in place one class after another, as the official code does:
    class-0 pixels that received bit 1 then read as class 1 and take class 1's bit too (class 0
    inherits class 1's bit when its own bit is 1). ``independent``: every class keeps its own bit
    (same RNG draws). The two differ only on class-0 pixels, when class 0 drew 1 and class 1 is present.

    Shapes: (B, N, H, W) → (B, 1, H, W) float in {0, 1}.
    """
    if mode not in LABELMIX_MASKS:
        raise ValueError(f"unknown LabelMix mask {mode!r}; choose one of {', '.join(LABELMIX_MASKS)}")
    labels = semantics.argmax(dim=1, keepdim=True)
    classes = torch.unique(labels)
    if mode == "official":
        for c in classes:
            labels[labels == c] = torch.randint(0, 2, (1,), device=labels.device)
        return labels.to(semantics.dtype)
    bits = torch.stack([torch.randint(0, 2, (1,), device=labels.device) for _ in classes]).view(-1)
    lookup = torch.zeros(semantics.shape[1], dtype=bits.dtype, device=labels.device)
    lookup[classes] = bits
    return lookup[labels].to(semantics.dtype)


def labelmix_images(mask: torch.Tensor, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """``mask · real + (1 − mask) · fake``. mask (B, 1, H, W), images (B, 3, H, W)."""
    return mask * real + (1 - mask) * fake


def labelmix_consistency_loss(
    mask: torch.Tensor, logits_mixed: torch.Tensor, logits_fake: torch.Tensor, logits_real: torch.Tensor
) -> torch.Tensor:
    """Mean squared difference between D(mixed) and the same mix of D(real), D(fake) (on logits).

    Unweighted; gradients flow through all three logits tensors.
    """
    return F.mse_loss(mask * logits_real + (1 - mask) * logits_fake, logits_mixed)
