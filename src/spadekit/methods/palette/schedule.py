"""The progressive training schedule of the layout GAN, as explicit, checkpointable state.

Resolutions run 4, 8, … up to ``final_res``. Resolution 4 only has a *stabilize* phase; every later
one first *fades* in (the new block's output is mixed with the upsampled previous one with weight
``alpha = iteration / steps``), then *stabilizes* (the new block alone). Each phase of resolution r
lasts ``steps_per_res[log2(r) - 2]`` steps. A generic trainer calls :meth:`step` after every
iteration and stores :meth:`state_dict` in its checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

PHASES = ("fade", "stabilize")


def official_steps_per_res(
    niter: float,
    dataset_size: int,
    batch_per_res: Sequence[int],
    mul_per_res: Sequence[float] | None = None,
) -> list[int]:
    """Steps per phase at each resolution as the official trainer counts them:
    ``int(mul · int(niter · dataset_size / batch))`` (defaults: ``mul`` 1)."""
    mul = [1.0] * len(batch_per_res) if mul_per_res is None else list(mul_per_res)
    if len(mul) != len(batch_per_res):
        raise ValueError("batch_per_res and mul_per_res need one entry per resolution")
    return [int(m * int(niter * dataset_size / b)) for b, m in zip(batch_per_res, mul)]


class ProgressiveSchedule:
    """Where training stands: resolution ``res``, ``phase`` and ``iteration`` within the phase.

    Args:
        final_res: the last resolution trained (a power of two ≥ 4).
        steps_per_res: steps of each phase, one entry per resolution 4 … final_res.
        res, phase, iteration: the starting point (default: the beginning).
    """

    def __init__(
        self,
        final_res: int,
        steps_per_res: Sequence[int],
        res: int = 4,
        phase: str = "stabilize",
        iteration: int = 0,
    ):
        self.final_res = final_res
        self.steps_per_res = [int(s) for s in steps_per_res]
        expected = _index(final_res) + 1
        if len(self.steps_per_res) != expected:
            raise ValueError(f"steps_per_res needs {expected} entries (resolutions 4..{final_res}), got {len(self.steps_per_res)}")
        if any(s < 1 for s in self.steps_per_res):
            raise ValueError("every phase needs at least one step")
        self.res, self.phase, self.iteration = 4, "stabilize", 0
        self.done = False
        self.load_state_dict({"res": res, "phase": phase, "iteration": iteration, "done": False})

    @property
    def steps(self) -> int:
        """Steps of each phase at the current resolution."""
        return self.steps_per_res[_index(self.res)]

    @property
    def alpha(self) -> float:
        """``iteration / steps`` (the official trainer computes it in both phases; only fading uses it)."""
        return self.iteration / self.steps

    @property
    def fade_alpha(self) -> float | None:
        """The fade-in weight while fading, else None."""
        return self.alpha if self.phase == "fade" else None

    @property
    def total_steps(self) -> int:
        return self.steps_per_res[0] + 2 * sum(self.steps_per_res[1:])

    @property
    def global_step(self) -> int:
        """Steps taken since the start of the schedule."""
        before = self.steps_per_res[0] + 2 * sum(self.steps_per_res[1 : _index(self.res)]) if self.res > 4 else 0
        if self.done:
            return self.total_steps
        return before + (self.steps if self.phase == "stabilize" and self.res > 4 else 0) + self.iteration

    def step(self) -> str | None:
        """Advance one iteration. Returns ``"resolution_done"`` when the stabilize phase of a
        resolution has just finished (the official trainer then saves ``*_net_<res>.pth``),
        ``"phase_done"`` after a fade phase, else None."""
        if self.done:
            raise RuntimeError("the progressive schedule is finished")
        self.iteration += 1
        if self.iteration < self.steps:
            return None
        self.iteration = 0
        if self.phase == "fade":
            self.phase = "stabilize"
            return "phase_done"
        if self.res >= self.final_res:
            self.done = True
        else:
            self.res *= 2
            self.phase = "fade"
        return "resolution_done"

    @classmethod
    def at_step(cls, final_res: int, steps_per_res: Sequence[int], global_step: int) -> "ProgressiveSchedule":
        """The schedule after ``global_step`` iterations from the start."""
        schedule = cls(final_res, steps_per_res)
        remaining = global_step
        while remaining > 0 and not schedule.done:
            take = min(remaining, schedule.steps - schedule.iteration)
            schedule.iteration += take - 1
            remaining -= take
            schedule.step()
        return schedule

    def state_dict(self) -> dict[str, Any]:
        return {"res": self.res, "phase": self.phase, "iteration": self.iteration, "done": self.done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        res, phase, iteration = int(state["res"]), str(state["phase"]), int(state["iteration"])
        if res < 4 or res & (res - 1) or res > self.final_res:
            raise ValueError(f"resolution {res} is not a power of two in 4..{self.final_res}")
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; choose one of {', '.join(PHASES)}")
        if res == 4 and phase == "fade":
            raise ValueError("resolution 4 has no fade phase")
        if not 0 <= iteration < self.steps_per_res[_index(res)]:
            raise ValueError(f"iteration {iteration} is outside phase {phase} of resolution {res}")
        self.res, self.phase, self.iteration = res, phase, iteration
        self.done = bool(state.get("done", False))

    def __repr__(self) -> str:
        state = "done" if self.done else f"res={self.res}, phase={self.phase}, iteration={self.iteration}/{self.steps}"
        return f"ProgressiveSchedule({state})"


def _index(res: int) -> int:
    if res < 4 or res & (res - 1):
        raise ValueError(f"a resolution must be a power of two >= 4, got {res}")
    return int(math.log2(res)) - 2
