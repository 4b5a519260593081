"""Passes: a base class with a registered name and typed (attrs) options, the pass registry with lazy
loading and plugins, MLIR-style pipeline strings, and the pass manager (verification after each pass,
IR printing around passes, timing)."""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import time
import typing
from typing import Any, Callable, Iterable, TextIO

import attrs

from .. import _registry
from .core import Operation
from .diagnostics import FixflowError, PassError, VerifyError


class PipelineError(FixflowError):
    """A malformed pass pipeline or an unknown pass/option."""


class Pass:
    """Base class of passes. Subclasses set NAME, SUMMARY, optionally an attrs `Options` class, and `run`."""

    NAME: str = ""
    SUMMARY: str = ""
    Options: type | None = None

    def __init__(self, options: Any = None, **kwargs: Any):
        if self.Options is None:
            if kwargs or options is not None:
                raise PipelineError(f"pass '{self.NAME}' takes no options")
            self.options = None
        elif options is not None:
            self.options = options
        else:
            try:
                self.options = self.Options(**kwargs)
            except (TypeError, ValueError) as e:   # ValueError: an option's validator rejected its value
                msg = e.args[0] if e.args and isinstance(e.args[0], str) else str(e)
                raise PipelineError(f"pass '{self.NAME}': {msg}") from None

    def run(self, module: Operation) -> None:
        raise NotImplementedError

    @classmethod
    def option_fields(cls) -> list[tuple[str, type, Any, str]]:
        """(name, type, default, help) for each option."""
        if cls.Options is None:
            return []
        hints = typing.get_type_hints(cls.Options)
        out = []
        for f in attrs.fields(cls.Options):
            default = f.default
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                default = default.factory()
            out.append((f.name, hints.get(f.name, str), default, f.metadata.get("help", "")))
        return out

    @classmethod
    def from_option_string(cls, text: str) -> "Pass":
        """Build from MLIR option syntax: `key=value key2=value2` (space separated)."""
        fields = {name: (typ, default) for name, typ, default, _ in cls.option_fields()}
        values: dict[str, Any] = {}
        for item in _split_options(text):
            if "=" in item:
                key, raw = item.split("=", 1)
            else:
                key, raw = item, "true"
            key = key.strip().replace("-", "_")
            if key not in fields:
                known = ", ".join(fields) or "none"
                raise PipelineError(f"pass '{cls.NAME}' has no option '{key}' (options: {known})")
            values[key] = _convert_option(cls.NAME, key, raw.strip(), fields[key][0])
        return cls(**values)

    def describe(self) -> str:
        if self.options is None:
            return self.NAME
        items = " ".join(f"{k}={_format_option(v)}" for k, v in attrs.asdict(self.options).items())
        return f"{self.NAME}{{{items}}}"


def _split_options(text: str) -> list[str]:
    items, depth, cur = [], 0, []
    for ch in text:
        if ch in "{[(":
            depth += 1
        elif ch in "}])":
            depth -= 1
        if ch.isspace() and depth == 0:
            if cur:
                items.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
    if cur:
        items.append("".join(cur))
    return items


def _format_option(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    return str(v)


def _convert_option(pass_name: str, key: str, raw: str, typ: Any) -> Any:
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        non_none = [a for a in args if a is not type(None)]
        if raw.lower() in ("none", "") and len(non_none) < len(args):
            return None
        typ = non_none[0] if non_none else str
        origin, args = typing.get_origin(typ), typing.get_args(typ)
    try:
        if typ is bool:
            if raw.lower() in ("true", "1", "yes", "on"):
                return True
            if raw.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError(raw)
        if typ is int:
            return int(raw, 0)
        if typ is float:
            return float(raw)
        if origin in (list, tuple) or typ in (list, tuple):
            elem = args[0] if args else str
            parts = [p for p in raw.strip("[]{}").split(",") if p.strip()]
            vals = [_convert_option(pass_name, key, p.strip(), elem) for p in parts]
            return tuple(vals) if origin is tuple or typ is tuple else vals
        return raw.strip('"')
    except ValueError:
        tname = getattr(typ, "__name__", str(typ))
        raise PipelineError(f"pass '{pass_name}': option '{key}' expects {tname}, got '{raw}'") from None


# ---- registry -------------------------------------------------------------------------------
_PASSES: dict[str, type[Pass]] = {}
# The modules that define the built-in passes are listed by `fixflow.passes` (PASS_MODULES) in
# `fixflow._registry` and imported on demand (keeps start-up fast); the core names none of them.
_loaded_all = False


def register_pass(cls: type[Pass]) -> type[Pass]:
    """Class decorator registering a pass under its NAME."""
    if not cls.NAME:
        raise ValueError(f"pass class {cls.__name__} needs a NAME")
    if cls.Options is not None and not attrs.has(cls.Options):
        raise ValueError(f"{cls.__name__}.Options must be an attrs class")
    old = _PASSES.get(cls.NAME)
    if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise FixflowError(f"pass name '{cls.NAME}' of {cls.__module__}.{cls.__qualname__} is already registered "
                           f"by {old.__module__}.{old.__qualname__}")
    _PASSES[cls.NAME] = cls
    return cls


def _load_all() -> None:
    global _loaded_all
    if _loaded_all:
        return
    _loaded_all = True
    for mod in _registry.pass_modules():
        importlib.import_module(mod)
    load_entry_point_plugins()


def load_entry_point_plugins(group: str = "fixflow.passes") -> list[str]:
    """Import every entry point of `group` (an installed package's passes and dialects)."""
    from importlib.metadata import entry_points
    loaded = []
    for ep in entry_points(group=group):
        obj = ep.load()
        if isinstance(obj, type) and issubclass(obj, Pass):
            register_pass(obj)
        elif callable(obj) and not isinstance(obj, type):
            obj()
        loaded.append(ep.name)
    return loaded


def load_pass_plugin(path: str) -> None:
    """Import a Python file whose `@register_pass` classes (and dialects) become available."""
    import os
    if not os.path.exists(path):
        raise FixflowError(f"pass plugin '{path}' does not exist")
    _load_all()  # built-in passes first, so a plugin cannot silently take (or lose) their names
    name = "fixflow_plugin_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FixflowError(f"cannot load pass plugin '{path}'")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except FixflowError:
        raise
    except Exception as e:  # a broken plugin is the user's input: report it as one message
        raise FixflowError(f"pass plugin '{path}' failed to load: {type(e).__name__}: {e}") from None


def _plugin_crash(p: Pass, e: Exception) -> PassError:
    """A user (plugin) pass raised a Python exception: name the pass and the raising line."""
    import traceback
    frames = traceback.extract_tb(e.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    msg = " ".join(str(e).split("\n"))
    return PassError(f"pass '{p.NAME}' ({type(p).__module__}.{type(p).__qualname__}) raised "
                     f"{type(e).__name__}: {msg}{where}")


def get_pass(name: str) -> type[Pass]:
    cls = _PASSES.get(name)
    if cls is None:
        _load_all()
        cls = _PASSES.get(name)
    if cls is None:
        raise PipelineError(f"unknown pass '{name}' (available: {', '.join(sorted(_PASSES))})")
    return cls


def registered_passes() -> dict[str, type[Pass]]:
    _load_all()
    return dict(sorted(_PASSES.items()))


# ---- pipelines ------------------------------------------------------------------------------
_ANCHORS = ("builtin.module", "func.func", "any")


def parse_pipeline(text: str) -> list[Pass]:
    """`builtin.module(canonicalize,cse)`, `canonicalize,cse`, `fold-bn{eps=1e-3}`, nested anchors."""
    passes: list[Pass] = []
    pos = _parse_pipeline_items(text.strip(), 0, passes, closing=None)
    if pos != len(text.strip()):
        raise PipelineError(f"unexpected '{text.strip()[pos:]}' in pass pipeline '{text}'")
    return passes


def _parse_pipeline_items(text: str, pos: int, out: list[Pass], closing: str | None) -> int:
    n = len(text)
    while pos < n:
        while pos < n and text[pos] in " ,\t\n":
            pos += 1
        if pos >= n or (closing and text[pos] == closing):
            return pos
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*").match(text, pos)
        if m is None:
            raise PipelineError(f"expected a pass name at '{text[pos:]}' in pass pipeline")
        name = m.group(0)
        pos = m.end()
        if pos < n and text[pos] == "(":
            if name not in _ANCHORS:
                raise PipelineError(f"'{name}' is not a pipeline anchor (use builtin.module(...) or func.func(...))")
            pos = _parse_pipeline_items(text, pos + 1, out, ")")
            if pos >= n or text[pos] != ")":
                raise PipelineError(f"missing ')' in pass pipeline '{text}'")
            pos += 1
            continue
        opts = ""
        if pos < n and text[pos] == "{":
            depth, start = 1, pos + 1
            pos += 1
            while pos < n and depth:
                depth += {"{": 1, "}": -1}.get(text[pos], 0)
                pos += 1
            if depth:
                raise PipelineError(f"missing '}}' in options of pass '{name}'")
            opts = text[start:pos - 1]
        cls = get_pass(name)
        out.append(cls.from_option_string(opts) if opts else cls())
    if closing:
        raise PipelineError(f"missing '{closing}' in pass pipeline '{text}'")
    return pos


# ---- the pass manager -----------------------------------------------------------------------
@attrs.define
class PassTiming:
    name: str
    seconds: float


class PassManager:
    """Runs passes in order, verifying after each (unless `verify_each=False`)."""

    def __init__(self, passes: Iterable[Pass] = (), *, verify_each: bool = True,
                 print_before: Iterable[str] = (), print_after: Iterable[str] = (),
                 print_before_all: bool = False, print_after_all: bool = False,
                 print_fn: Callable[[str], None] | None = None, print_locations: bool = False):
        self.passes = list(passes)
        self.verify_each = verify_each
        self.print_before = set(print_before)
        self.print_after = set(print_after)
        self.print_before_all = print_before_all
        self.print_after_all = print_after_all
        self.print_fn = print_fn or (lambda s: sys.stderr.write(s))
        self.print_locations = print_locations
        self.timings: list[PassTiming] = []

    @classmethod
    def parse(cls, pipeline: str, **kwargs: Any) -> "PassManager":
        return cls(parse_pipeline(pipeline), **kwargs)

    def add(self, p: Pass) -> "PassManager":
        self.passes.append(p)
        return self

    def pipeline_text(self) -> str:
        return "builtin.module(" + ",".join(p.describe() for p in self.passes) + ")"

    def run(self, module: Operation) -> None:
        from .printer import print_module
        self.timings = []
        for p in self.passes:
            if self.print_before_all or p.NAME in self.print_before:
                self.print_fn(f"// -----// IR Dump Before {p.NAME} //----- //\n"
                              + print_module(module, print_locations=self.print_locations) + "\n")
            t0 = time.perf_counter()
            try:
                p.run(module)
            except Exception as e:
                if isinstance(e, FixflowError) or type(p).__module__.startswith("fixflow."):
                    raise
                raise _plugin_crash(p, e) from e
            self.timings.append(PassTiming(p.NAME, time.perf_counter() - t0))
            if self.verify_each:
                t0 = time.perf_counter()
                try:
                    module.verify()
                except VerifyError as e:
                    e.notes.append((f"the IR became invalid after pass '{p.NAME}'", None))
                    raise
                self.timings.append(PassTiming("(verifier)", time.perf_counter() - t0))
            if self.print_after_all or p.NAME in self.print_after:
                self.print_fn(f"// -----// IR Dump After {p.NAME} //----- //\n"
                              + print_module(module, print_locations=self.print_locations) + "\n")

    def timing_report(self) -> str:
        """An MLIR-style execution time report of the last run."""
        total = sum(t.seconds for t in self.timings) or 1e-12
        merged: dict[str, float] = {}
        order: list[str] = []
        for t in self.timings:
            key = t.name
            if key == "(verifier)":
                merged[key] = merged.get(key, 0.0) + t.seconds
                if key not in order:
                    order.append(key)
                continue
            if key in merged:
                key = f"{key} #{sum(1 for k in order if k.split(' #')[0] == t.name) + 1}"
            merged[key] = t.seconds
            order.append(key)
        bar = "===" + "-" * 73 + "==="
        lines = [bar, "Execution time report".center(79), bar,
                 f"  Total Execution Time: {total:.4f} seconds", "",
                 "  ----Wall Time----  ----Name----"]
        for key in order:
            s = merged[key]
            lines.append(f"  {s:9.4f} ({100 * s / total:5.1f}%)  {key}")
        lines.append(f"  {total:9.4f} (100.0%)  Total")
        return "\n".join(lines) + "\n"


def print_pass_help(stream: TextIO) -> None:
    for name, cls in registered_passes().items():
        stream.write(f"  --{name:<28} {cls.SUMMARY}\n")
        for oname, typ, default, help_ in cls.option_fields():
            tname = getattr(typ, "__name__", str(typ)).replace("typing.", "")
            stream.write(f"      {oname}=<{tname}> (default {_format_option(default)}) {help_}\n")
