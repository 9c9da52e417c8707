"""Optimiser settings and the learning-rate schedule (method-agnostic)."""

from __future__ import annotations


def optimizer_settings(
    lr: float,
    ttur: bool,
    beta1: float | None = None,
    beta2: float | None = None,
    lr_G: float | None = None,
    lr_D: float | None = None,
) -> dict[str, tuple]:
    """Adam settings ``{"generator": (lr, betas), "discriminator": (lr, betas)}``.

    SPADE's rule: TTUR gives G lr/2 and D lr*2 with betas (0, 0.9); without it both use lr with
    betas (0.5, 0.999). Explicit betas and per-network learning rates override (other methods'
    presets set them, e.g. OASIS: G 1e-4, D 4e-4, betas (0, 0.999))."""
    if ttur:
        g_lr, d_lr, betas = lr / 2, lr * 2, (0.0, 0.9)
    else:
        g_lr, d_lr, betas = lr, lr, (0.5, 0.999)
    betas = (betas[0] if beta1 is None else beta1, betas[1] if beta2 is None else beta2)
    g_lr = g_lr if lr_G is None else lr_G
    d_lr = d_lr if lr_D is None else lr_D
    return {"generator": (g_lr, betas), "discriminator": (d_lr, betas)}


def decayed_lr(base_lr: float, epoch: int, epochs: int, epochs_decay: int) -> float:
    """Constant for ``epochs`` epochs, then linear decay to 0 over ``epochs_decay`` epochs."""
    if epochs_decay <= 0 or epoch < epochs:
        return base_lr
    done = min(epoch - epochs + 1, epochs_decay)
    return base_lr * (1 - done / epochs_decay)
