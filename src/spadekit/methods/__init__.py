"""Methods of the SPADE family: networks + objective + presets, registered by name.

A method lives in its own module or package under ``spadekit/methods/`` and calls
:func:`register_method` when imported; every such module is imported here, so adding a method
means adding files. ``spadekit list`` shows what is registered.
"""

from __future__ import annotations

import importlib
import pkgutil

from torch import nn

from spadekit.config import Config, register_section
from spadekit.errors import ConfigError
from spadekit.methods.base import Batch, Method, Objective, layout_batch

_METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Add ``method`` to the registry (and its options dataclass as the config section of its name)."""
    if method.name in _METHODS and _METHODS[method.name] is not method:
        raise ValueError(f"method {method.name!r} is already registered")
    _METHODS[method.name] = method
    if method.options is not None:
        register_section(method.name, method.options)
    return method


def list_methods() -> dict[str, Method]:
    """Registered methods by name, in registration order."""
    return dict(_METHODS)


def get_method(name: str) -> Method:
    try:
        return _METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; registered: {', '.join(_METHODS) or 'none'}") from None


def method_of(config: Config) -> Method:
    return get_method(config.method)


def build_networks(config: Config, init: bool = True) -> dict[str, nn.Module]:
    """The networks of ``config``'s method by part name (``generator``, ``discriminator``, ...)."""
    return method_of(config).build_networks(config, init)


def check_config(config: Config) -> None:
    """Method-level checks run whenever a config is built (unknown method, the method's own rules)."""
    method = get_method(config.method)
    if method.validate is not None:
        method.validate(config)


def _import_all() -> None:
    # SPADE first (it is the reference every table starts from), then the others by name.
    names = sorted(info.name for info in pkgutil.iter_modules(__path__) if info.name != "base" and not info.name.startswith("_"))
    for name in sorted(names, key=lambda n: n != "spade"):
        importlib.import_module(f"{__name__}.{name}")


_import_all()

__all__ = [
    "Batch",
    "Method",
    "Objective",
    "build_networks",
    "check_config",
    "get_method",
    "layout_batch",
    "list_methods",
    "method_of",
    "register_method",
]
