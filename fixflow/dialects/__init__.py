"""The dialects, one small module or package each, and their lazy registry.

Every module or package directly under `fixflow/dialects/` is a dialect whose text prefix is its
name: `fixflow/dialects/graph/` defines `graph.*`, `fixflow/dialects/dpu/` defines `dpu.*`. A new
dialect needs nothing else: it is imported the first time the parser, a builder or
`registered_dialects()` meets its prefix. A module that defines further prefixes lists them in
`EXTRA_PREFIXES`; names starting with `_` are not dialects.
"""

from __future__ import annotations

import os

from .. import _registry

#: prefixes defined by a module of another name
EXTRA_PREFIXES = {"func": "builtin"}


def dialect_modules() -> dict[str, str]:
    """{prefix: module} of every dialect under fixflow/dialects/ (found by one directory listing)."""
    here = os.path.dirname(__file__)
    found: dict[str, str] = {}
    for entry in sorted(os.listdir(here)):
        name = entry[:-3] if entry.endswith(".py") else entry
        if name.startswith(("_", ".")) or not name.isidentifier():
            continue
        if entry.endswith(".py") or os.path.isfile(os.path.join(here, entry, "__init__.py")):
            found[name] = f"{__name__}.{name}"
    for prefix, module in EXTRA_PREFIXES.items():
        found[prefix] = f"{__name__}.{module}"
    return found


_registry.add_dialect_source(dialect_modules)
