"""The two non-network parts of a palette model, kept as buffers so checkpoints and releases hold them
like any network: the progressive schedule's position and the fitted palette mixture.

Both have fixed shapes given by the config (a run's resolution list, ``palette.max_components``), so
they load strictly like every other part.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from spadekit.methods.palette.sampler import PROJECTIONS, PaletteSampler
from spadekit.methods.palette.schedule import PHASES, ProgressiveSchedule


class ScheduleState(nn.Module):
    """Where progressive training stands (resolution, phase, iteration, done) as one long buffer.

    The objective reads :attr:`res` and :attr:`fade_alpha` at every step and the trainer advances it
    once per iteration (:meth:`step`). Because it is a part, both objectives the trainer builds share
    it and every checkpoint stores it: a resumed run continues inside the same phase.
    """

    def __init__(self, final_res: int, steps_per_res: Sequence[int]):
        super().__init__()
        self.final_res = int(final_res)
        self.steps_per_res = [int(s) for s in steps_per_res]
        start = ProgressiveSchedule(self.final_res, self.steps_per_res)  # validates the arguments
        self.register_buffer("state", self._encode(start))

    @staticmethod
    def _encode(schedule: ProgressiveSchedule) -> torch.Tensor:
        return torch.tensor([schedule.res, PHASES.index(schedule.phase), schedule.iteration, int(schedule.done)])

    def schedule(self) -> ProgressiveSchedule:
        """The position as a :class:`ProgressiveSchedule` (a copy; see :meth:`step` to advance)."""
        res, phase, iteration, done = (int(v) for v in self.state.tolist())
        schedule = ProgressiveSchedule(self.final_res, self.steps_per_res, res, PHASES[phase], iteration)
        schedule.done = bool(done)
        return schedule

    @property
    def res(self) -> int:
        return int(self.state[0])

    @property
    def done(self) -> bool:
        return bool(self.state[3])

    @property
    def fade_alpha(self) -> float | None:
        """The fade-in weight while fading into :attr:`res`, else None."""
        return self.schedule().fade_alpha

    @torch.no_grad()
    def step(self) -> str | None:
        """Advance one iteration (see :meth:`ProgressiveSchedule.step`); after the last phase the
        schedule stays at the final resolution (training may go on there)."""
        schedule = self.schedule()
        if schedule.done:
            return None
        event = schedule.step()
        self.state.copy_(self._encode(schedule))
        return event

    @torch.no_grad()
    def finish(self) -> None:
        """Mark the schedule done at the final resolution (a model trained elsewhere)."""
        self.state.copy_(torch.tensor([self.final_res, PHASES.index("stabilize"), 0, 1]))

    def extra_repr(self) -> str:
        return repr(self.schedule())


class MixtureState(nn.Module):
    """A fitted :class:`PaletteSampler` as fixed-size buffers (room for ``max_components``).

    Buffers: ``weights`` (K,), ``means`` (K, C), ``covariances`` (K, C, C) float64 with the first
    ``components`` entries in use, ``components`` (0 = not fitted yet) and ``projection``.
    """

    def __init__(self, num_classes: int, max_components: int):
        super().__init__()
        self.num_classes = int(num_classes)
        self.max_components = int(max_components)
        k, c = self.max_components, self.num_classes
        self.register_buffer("weights", torch.zeros(k, dtype=torch.float64))
        self.register_buffer("means", torch.zeros(k, c, dtype=torch.float64))
        self.register_buffer("covariances", torch.zeros(k, c, c, dtype=torch.float64))
        self.register_buffer("components", torch.zeros((), dtype=torch.long))
        self.register_buffer("projection", torch.zeros((), dtype=torch.long))

    @property
    def fitted(self) -> bool:
        return int(self.components) > 0

    @torch.no_grad()
    def store(self, sampler: PaletteSampler) -> None:
        """Keep ``sampler``'s mixture (its component count must fit ``max_components``)."""
        k = sampler.n_components
        if k > self.max_components:
            raise ValueError(f"{k} components do not fit the {self.max_components} this model holds")
        if sampler.num_classes != self.num_classes:
            raise ValueError(f"a mixture over {sampler.num_classes} classes for a model with {self.num_classes}")
        state = sampler.state_dict()
        for name in ("weights", "means", "covariances"):
            getattr(self, name).zero_()
            getattr(self, name)[:k] = state[name].to(getattr(self, name))
        self.components.fill_(k)
        self.projection.fill_(int(state["projection"]))

    def sampler(self, excluded: Sequence[int] = (), min_proportions: dict[int, float] | None = None) -> PaletteSampler:
        """The stored mixture as a :class:`PaletteSampler` (ValueError when nothing was fitted)."""
        if not self.fitted:
            raise ValueError("the palette mixture has not been fitted")
        k = int(self.components)
        return PaletteSampler.from_state_dict(
            {
                "weights": self.weights[:k].cpu(),
                "means": self.means[:k].cpu(),
                "covariances": self.covariances[:k].cpu(),
                "projection": self.projection.cpu(),
                "min_classes": torch.tensor(sorted(min_proportions or {}), dtype=torch.long),
                "min_values": torch.tensor([v for _, v in sorted((min_proportions or {}).items())], dtype=torch.float64),
                "excluded": torch.tensor(list(excluded), dtype=torch.long),
            }
        )

    def extra_repr(self) -> str:
        return f"classes={self.num_classes}, components={int(self.components)}/{self.max_components}, " + (
            f"projection={PROJECTIONS[int(self.projection)]}"
        )


def fit_mixture(
    proportions: np.ndarray | torch.Tensor,
    max_components: int,
    min_components: int = 1,
    seed: int = 0,
    projection: str = "approx",
) -> PaletteSampler:
    """A :class:`PaletteSampler` fitted to (N, C) proportion vectors, the component count chosen by AIC."""
    return PaletteSampler.fit(
        proportions, min_components=min_components, max_components=max_components, seed=seed, projection=projection
    )
