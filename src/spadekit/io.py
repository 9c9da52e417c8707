"""File helpers: atomic writes that respect the umask, and untrusted-checkpoint loading.

``tempfile.mkstemp`` / ``mkdtemp`` create private files (0600) and folders (0700) whatever the
umask. Everything spadekit writes goes through a temporary file or folder and is renamed into
place, so :func:`make_temp_file` / :func:`make_temp_dir` give them the mode ``open()`` /
``mkdir()`` would have given (``0666`` / ``0777`` minus the umask): outputs are as readable as any
other file the user creates.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import torch

from spadekit.errors import CheckpointError, MissingWeightsError


def current_umask() -> int:
    """The process's umask. Read from ``/proc/self/status`` where possible: setting and restoring
    it (the only portable way) races with threads that create files meanwhile."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def umask_mode(path: Path) -> None:
    """Give ``path`` the mode ``open()`` / ``mkdir()`` would have given it under the current umask
    (for writers that create their own private file, such as safetensors' ``save_file``)."""
    path = Path(path)
    path.chmod((0o777 if path.is_dir() else 0o666) & ~current_umask())


def make_temp_file(directory: Path, prefix: str, suffix: str = ".tmp") -> Path:
    """An empty temporary file in ``directory`` with the mode ``open()`` would give (0666 & ~umask)."""
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    return Path(name)


def make_temp_dir(directory: Path, prefix: str, suffix: str = "") -> Path:
    """A temporary folder in ``directory`` with the mode ``mkdir()`` would give (0777 & ~umask)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=directory))
    path.chmod(0o777 & ~current_umask())
    return path


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, then rename over ``path``.

    A reader (or a resumed run after SIGKILL) sees either the old file or the complete new one.
    The file gets the umask's mode, as ``open()`` would give it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_file(path.parent, prefix=f".{path.name}.")
    try:
        write(tmp)
        umask_mode(tmp)  # again: some writers replace the file with a private one of their own
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_torch_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def official_state(network: torch.nn.Module) -> "OrderedDict[str, torch.Tensor]":
    """A network's state dict as the official PyTorch codes save it: detached CPU copies in module
    order, with the ``_metadata`` (spectral-norm versions) that ``load_state_dict`` reads back."""
    source = network.state_dict()
    state = OrderedDict((k, v.detach().cpu().clone()) for k, v in source.items())
    state._metadata = getattr(source, "_metadata", None)  # type: ignore[attr-defined]
    return state


def checkpoint_keys(path: Path) -> set[str]:
    """The keys of a state-dict checkpoint, read memory-mapped (cheap for large files); an empty set
    when the file is missing or is not a state dict (for format detection, which must not raise)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001  (any unreadable file is simply "not this format")
        return set()
    return {k[len("module."):] if k.startswith("module.") else k for k in state} if isinstance(state, dict) else set()


def safe_torch_load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with one-line errors that name the file.

    Never unpickles arbitrary objects: a file that asks for code execution is refused.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: file not found")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: file is empty")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Weights only load failed" in text or "Unsupported global" in text or "GLOBAL" in text:
            raise CheckpointError(
                f"{path}: refused: the file asks to run code or build arbitrary Python objects when loaded "
                "(only plain tensors are accepted)"
            ) from None
        raise CheckpointError(f"{path}: not a valid PyTorch checkpoint ({text.splitlines()[0]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, IndexError, KeyError, TypeError, AttributeError) as exc:
        # Random or truncated bytes can fail anywhere inside the unpickler; all of it means "corrupt".
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({first})") from None


def find_hub_weights(filename: str, path: str | Path | None, what: str, how_else: str = "pass its path") -> Path:
    """Pretrained weights named ``filename``: the user's ``path``, else the torch hub cache
    (``torch.hub.get_dir()/checkpoints``). Never downloads: a missing file raises
    MissingWeightsError saying which file, where it comes from and where it goes."""
    if path is not None:
        candidate = Path(path)
        if not candidate.is_file():
            raise MissingWeightsError(f"{what} weights ({filename}) not found at {candidate}")
        return candidate
    cache = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if cache.is_file():
        return cache
    raise MissingWeightsError(
        f"{what} needs torchvision's ImageNet weights {filename} "
        f"(https://download.pytorch.org/models/{filename}); put it at {cache} or {how_else}"
    )


def read_format_json(path: Path, format_name: str, format_version: int, what: str) -> dict:
    """A JSON file tagged ``{"format": format_name, "format_version": N}``, checked with one-line
    CheckpointErrors naming the file (missing, not JSON, another format, written by a newer spadekit)."""
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (a {what} needs it)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != format_name:
        raise CheckpointError(f"{path}: not a {what} file (expected format {format_name!r})")
    if int(data.get("format_version", 0)) > format_version:
        raise CheckpointError(f"{path}: written by a newer spadekit (format {data['format_version']})")
    return data
