"""A registry of official checkpoint formats: how each method's own files become a spadekit model
and back. ``spadekit convert NAME DIR`` and ``spadekit convert to-NAME MODEL`` are built from it, and
:func:`spadekit.load_model` reads any registered format it recognises.

This module imports no converter: converters register themselves when their method is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from spadekit.config import Config, load_config
from spadekit.errors import ConfigError


@dataclass(frozen=True)
class CheckpointFormat:
    """One official format.

    ``read(directory, preset, overrides)`` returns a model (``preset``/``overrides`` give what the
    weights cannot tell; preset None = the format's default); ``write(model, directory)`` writes the
    official files and returns their paths; ``detect(directory)`` says whether a folder holds this
    format (used by :func:`spadekit.load_model`).
    """

    name: str
    method: str
    description: str
    files: str
    """What ``read`` looks for, for ``--help``."""
    read: Callable[[Path, "str | None", list[str]], Any]
    detect: Callable[[Path], bool]
    write: Callable[[Any, Path], list[Path]] | None = None
    default_preset: str = "custom"
    options_from_file: Callable[[Path], tuple["str | None", list[str], list[str]]] | None = None
    """``(official options file) -> (preset or None, dotted overrides, notes)``: what ``--opt FILE``
    of ``spadekit convert NAME`` turns the official run's options into (None: no ``--opt``)."""
    priority: int = 0
    """Formats with a higher priority are detected first: one whose files share another's names
    and that tells itself apart by their content ranks above 0; one whose ``detect`` only looks at
    file names that other formats share (SPADE's ``latest_net_G.pth``) ranks below, so a folder is
    read by the most specific format that claims it."""


_FORMATS: dict[str, CheckpointFormat] = {}


def register_format(fmt: CheckpointFormat) -> CheckpointFormat:
    _FORMATS[fmt.name] = fmt
    return fmt


def formats() -> dict[str, CheckpointFormat]:
    import spadekit.methods  # noqa: F401  (the methods register their formats)

    return dict(_FORMATS)


def get_format(name: str) -> CheckpointFormat:
    known = formats()
    if name not in known:
        raise ConfigError(f"unknown checkpoint format {name!r}; registered: {', '.join(known)}")
    return known[name]


def detect_format(directory: Path) -> CheckpointFormat | None:
    """The first registered format (highest priority first) whose files are in ``directory``, or None."""
    for fmt in sorted(formats().values(), key=lambda f: -f.priority):
        if fmt.detect(directory):
            return fmt
    return None


def format_for_method(method: str) -> CheckpointFormat | None:
    """The official format of a method (for ``to-<format>``), or None when it has none."""
    for fmt in formats().values():
        if fmt.method == method and fmt.write is not None:
            return fmt
    return None


OPTION_FILES = ("opt.json", "opt.txt")


def read_official_options(directory: Path) -> dict[str, Any]:
    """The official run's options saved beside its checkpoints: ``opt.json`` (a JSON object) or the
    SPADE family's ``opt.txt`` (``name: value [default: ...]`` lines); {} when there is neither.
    Values of ``opt.txt`` are read as YAML scalars (numbers, booleans, None)."""
    import json

    import yaml

    from spadekit.errors import CheckpointError

    directory = Path(directory)
    path = directory / "opt.json"
    if path.is_file():
        try:
            values = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a JSON object of options ({exc})") from None
        if not isinstance(values, dict):
            raise CheckpointError(f"{path}: not a JSON object of options")
        return values
    path = directory / "opt.txt"
    if not path.is_file():
        return {}
    values = {}
    for line in path.read_text(errors="replace").splitlines():
        name, colon, rest = line.partition(":")
        if not colon or not name.strip() or name.strip().startswith("-"):
            continue
        text = rest.split("\t[default:")[0].split("[default:")[0].strip()
        try:
            values[name.strip()] = yaml.safe_load(text) if text else None
        except yaml.YAMLError:
            values[name.strip()] = text
    return values


def resolve_official_options(
    directory: Path,
    preset: str,
    overrides: list[str],
    explicit_preset: bool,
    official_options: Callable[[Config], dict[str, Any]],
) -> dict[str, Any]:
    """The official options a converter builds the networks with: preset-implied values < the run's
    ``opt.json``/``opt.txt`` < what ``--set`` changed explicitly. ``official_options`` maps a config to
    the official option values it implies. Without an explicit preset the class count (``label_nc``)
    is left to the weights, so a default preset cannot contradict the checkpoint."""
    implied = official_options(load_config(preset))
    chosen = official_options(load_config(preset, overrides))
    explicit = {k: v for k, v in chosen.items() if implied[k] != v}
    if not explicit_preset:
        implied.pop("label_nc")
    return {**implied, **read_official_options(directory), **explicit}
