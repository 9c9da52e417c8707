"""Loss terms of the layout GAN: Wasserstein critic terms with gradient penalty, and the generator's
per-layout entropy, spread, proportion-recovery and one-versus-all terms. Plain functions."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

LOG_EPS = 1e-5


def wgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """``-mean D(fake)``."""
    return -fake_scores.mean()


def wgan_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """``mean D(fake) - mean D(real)`` (the penalty is added separately)."""
    return fake_scores.mean() - real_scores.mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """WGAN-GP: ``mean_n (‖∇_x̂ D(x̂)‖₂ - 1)²`` at x̂ = a·real + (1-a)·fake, one a ~ U(0, 1) per sample.

    ``weights`` are the a (N,); when None they are drawn with ``torch.rand(N)`` (the official code's
    only random draw in the critic loss). Returns (penalty, weights). The graph is kept so the
    penalty trains the critic.
    """
    n = real.shape[0]
    if weights is None:
        weights = torch.rand(n).to(real.device)
    a = weights.view(n, *([1] * (real.dim() - 1))).to(real)
    mixed = (a * real.detach() + (1 - a) * fake.detach()).requires_grad_(True)
    scores = critic(mixed)
    (grad,) = torch.autograd.grad(scores, mixed, grad_outputs=torch.ones_like(scores), create_graph=True, retain_graph=True)
    penalty = ((grad.reshape(n, -1).norm(2, dim=1) - 1) ** 2).mean()
    return penalty, weights


def entropy_loss(layout: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of the class entropy ``-Σ_c y log(y + 1e-5)``; pushes layouts to be crisp."""
    return torch.mean(-torch.sum(layout * torch.log(layout + LOG_EPS), dim=1, keepdim=True))


def spread_loss(masks: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of ``(Σ_c m_c - 1)²``: the proportion-aware class masks should tile the image
    (each pixel covered once)."""
    return torch.mean((masks.sum(dim=1) - 1) ** 2)


def recover_loss(layout: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """KL(palette ‖ achieved proportions) as the official ``F.kl_div(log(mean_hw y + 1e-5), p, 'batchmean')``."""
    achieved = layout.mean(dim=(2, 3))
    return F.kl_div(torch.log(achieved + LOG_EPS), palette, reduction="batchmean")


def hard_recover_loss(layout: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """:func:`recover_loss` of the argmax one-hot layout (a logged measure, not differentiable)."""
    index = layout.max(1, keepdim=True)[1]
    return recover_loss(torch.zeros_like(layout).scatter_(1, index, 1.0), palette)


def one_versus_all_loss(masks: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """Σ over the listed classes k of ``mean(m_k · Σ_{c≠k} m_c)``: penalises other classes overlapping k."""
    total = masks.new_zeros(())
    for k in classes:
        others = [c for c in range(masks.shape[1]) if c != k]
        total = total + torch.mean(torch.sum(masks[:, others], dim=1) * masks[:, k])
    return total
