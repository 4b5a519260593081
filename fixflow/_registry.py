"""The lazy name tables behind the dialect and pass registries. Imports nothing.

The core (`fixflow.ir`) asks here which module defines a dialect prefix or which modules define
passes; `fixflow.dialects` and `fixflow.passes` (imported by the package root, both cheap) fill the
tables. So the core never names a dialect or pass module, and nothing is imported until it is used.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # no run-time import: this module must stay free
    from typing import Callable

#: prefix -> module, registered one by one (`register_lazy_dialect`); wins over the sources
_dialects: dict[str, str] = {}
#: callables returning {prefix: module} (e.g. a scan of fixflow/dialects/), asked on first need
_dialect_sources: list = []
_scanned: dict[str, str] | None = None
#: callables returning the names of modules that register passes when imported
_pass_sources: list = []


def add_dialect(prefix: str, module: str) -> None:
    """`prefix.*` ops, types and attributes are defined by `module`."""
    _dialects[prefix] = module


def add_dialect_source(source: "Callable[[], dict[str, str]]") -> None:
    """`source()` lists {prefix: module}; it is called once, when a prefix is first looked up."""
    global _scanned
    _dialect_sources.append(source)
    _scanned = None


def _table() -> dict[str, str]:
    global _scanned
    if _scanned is None:
        _scanned = {}
        for source in _dialect_sources:
            _scanned.update(source())
    return _scanned


def dialect_module(prefix: str) -> str | None:
    """The module that defines dialect `prefix`, or None."""
    return _dialects.get(prefix) or _table().get(prefix)


def dialect_prefixes() -> list[str]:
    """Every known dialect prefix (loaded or not)."""
    return sorted(set(_table()) | set(_dialects))


def add_pass_source(source: "Callable[[], list[str]]") -> None:
    """`source()` lists modules whose import registers passes; called when all passes are needed."""
    _pass_sources.append(source)


def pass_modules() -> list[str]:
    return [m for source in _pass_sources for m in source()]
