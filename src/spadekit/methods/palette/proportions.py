"""Checking user-given class proportions (a palette) before they reach the layout generator.

Shared by the command line (``--proportions "sky=0.4,road=0.3,tree=0.1"``) and the Python API
(a {name: value} mapping or a full vector). Unknown class names, negative or non-finite values and
totals far from one are errors naming the problem; a total near one is renormalised and a notice
says so. Classes not mentioned get zero.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from spadekit.errors import ConfigError

SUM_TOLERANCE = 0.25
"""A total within 1 ± this is renormalised (with a notice); further away it is an error."""
EXACT = 1e-6


@dataclass
class Palette:
    """A checked palette: ``proportions`` (C,) float32 summing to one, and ``notice``: a message for
    the user when the input was renormalised (None when it already summed to one)."""

    proportions: torch.Tensor
    notice: str | None = None


def parse_proportions(text: str) -> dict[str, float]:
    """``"sky=0.4, road=0.3"`` → {"sky": 0.4, "road": 0.3}. Values may be percentages (``40%``)."""
    result: dict[str, float] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.rpartition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"proportions: {item!r} is not NAME=VALUE")
        value = value.strip()
        scale = 1.0
        if value.endswith("%"):
            value, scale = value[:-1].strip(), 0.01
        try:
            number = float(value) * scale
        except ValueError:
            raise ConfigError(f"proportions: {value!r} (for {name!r}) is not a number") from None
        if name in result:
            raise ConfigError(f"proportions: {name!r} is given twice")
        result[name] = number
    if not result:
        raise ConfigError("proportions: nothing given (expected NAME=VALUE pairs separated by commas)")
    return result


def _class_index(name: str, class_names: Sequence[str]) -> int:
    if name in class_names:
        return list(class_names).index(name)
    folded = [i for i, c in enumerate(class_names) if c.casefold() == name.casefold()]
    if len(folded) == 1:
        return folded[0]
    folded_names = {c.casefold(): c for c in class_names}
    close = [folded_names[c] for c in difflib.get_close_matches(name.casefold(), list(folded_names), n=3)]
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ConfigError(f"proportions: unknown class {name!r}{hint} (this model's classes: {', '.join(class_names)})")


def check_palette(
    proportions: str | Mapping[str, float] | Sequence[float] | torch.Tensor,
    class_names: Sequence[str],
    tolerance: float = SUM_TOLERANCE,
) -> Palette:
    """Validate proportions given as text, a {class name: value} mapping or a full vector of
    ``len(class_names)`` values, and return them as a :class:`Palette` summing to one."""
    c = len(class_names)
    if isinstance(proportions, str):
        proportions = parse_proportions(proportions)
    if isinstance(proportions, Mapping):
        vector = [0.0] * c
        for name, value in proportions.items():
            vector[_class_index(str(name), class_names)] = float(value)
        named = dict(proportions)
    else:
        values = proportions.detach().cpu().flatten().tolist() if isinstance(proportions, torch.Tensor) else list(proportions)
        if len(values) != c:
            raise ConfigError(f"proportions: {len(values)} values for {c} classes")
        vector = [float(v) for v in values]
        named = {class_names[i]: v for i, v in enumerate(vector)}
    bad = [name for name, v in named.items() if not math.isfinite(float(v))]
    if bad:
        raise ConfigError(f"proportions: not a finite number for {', '.join(map(repr, bad))}")
    negative = [f"{name}={float(v):g}" for name, v in named.items() if float(v) < 0]
    if negative:
        raise ConfigError(f"proportions: negative values ({', '.join(negative)}); proportions must be >= 0")
    total = sum(vector)
    if abs(total - 1.0) > tolerance:
        raise ConfigError(
            f"proportions: they sum to {total:.3g}, too far from 1 (allowed: {1 - tolerance:g}..{1 + tolerance:g}); "
            "give shares of the whole image"
        )
    notice = None
    if abs(total - 1.0) > EXACT:
        notice = f"proportions summed to {total:.3g}; rescaled to sum to 1"
    tensor = torch.tensor(vector, dtype=torch.float64)
    return Palette((tensor / tensor.sum()).float(), notice)
