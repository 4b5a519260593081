"""Passes: a base class with a registered name, typed (attrs) options and statistics, the pass registry
with lazy loading and plugins, MLIR-style pipeline strings, and the pass manager (verification after each
pass, IR printing around passes, timing and statistics reports shaped as mlir-opt's)."""

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
    #: the pipeline anchors this pass is nested in below the module, e.g. ("func.func",) (set by parse_pipeline)
    nest: tuple[str, ...] = ()

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
    """`builtin.module(canonicalize,cse)`, `canonicalize,cse`, `fold-bn{eps=1e-3}`, nested anchors.

    The passes come back in order, each with `nest`: the anchors it is nested in below the module
    (`("func.func",)` for `builtin.module(func.func(cse))`). Every pass runs on the module (a pass
    walks the ops it applies to); the nesting shapes the reports (timing, statistics, --dump-pass-pipeline)."""
    passes: list[Pass] = []
    pos = _parse_pipeline_items(text.strip(), 0, passes, closing=None, nest=())
    if pos != len(text.strip()):
        raise PipelineError(f"unexpected '{text.strip()[pos:]}' in pass pipeline '{text}'")
    return passes


def _parse_pipeline_items(text: str, pos: int, out: list[Pass], closing: str | None, nest: tuple[str, ...]) -> int:
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
            inner = nest if name == "builtin.module" and not nest else nest + (name,)
            pos = _parse_pipeline_items(text, pos + 1, out, ")", inner)
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
        p = cls.from_option_string(opts) if opts else cls()
        if nest:
            p.nest = nest
        out.append(p)
    if closing:
        raise PipelineError(f"missing '{closing}' in pass pipeline '{text}'")
    return pos


def _nested_groups(passes: list[Pass]) -> list:
    """The pipeline as a tree: a list whose items are passes or (anchor, [items]) nests; consecutive
    passes under the same anchors share one nest."""
    root: list = []
    for p in passes:
        items = root
        for anchor in getattr(p, "nest", ()):
            if items and isinstance(items[-1], tuple) and items[-1][0] == anchor:
                items = items[-1][1]
            else:
                nest: tuple[str, list] = (anchor, [])
                items.append(nest)
                items = nest[1]
        items.append(p)
    return root


# ---- statistics -----------------------------------------------------------------------------
class Statistic:
    """A counter a pass declares and increments while it runs (MLIR's `Pass::Statistic`)::

        class MyPass(Pass):
            NAME = "my-pass"
            num_rewritten = Statistic("num-rewritten", "Number of ops rewritten")

            def run(self, module):
                self.num_rewritten += 1

    `fixflow-opt --mlir-pass-statistics` prints them after the run."""

    def __init__(self, name: str, description: str):
        self.name = name
        self.description = description
        self.attr = ""

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr = attr

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return obj.__dict__.get(self.attr, 0)

    def __set__(self, obj: Any, value: int) -> None:
        obj.__dict__[self.attr] = value


def pass_statistics(p: Pass) -> list[tuple[Statistic, int]]:
    """(statistic, value) for each statistic `p`'s class declares, in declaration order."""
    seen: dict[str, Statistic] = {}
    for klass in reversed(type(p).__mro__):
        for v in vars(klass).values():
            if isinstance(v, Statistic):
                seen[v.attr] = v
    return [(st, st.__get__(p)) for st in seen.values()]


# ---- the pass manager -----------------------------------------------------------------------
@attrs.define
class PassTiming:
    name: str
    seconds: float
    user: float = 0.0
    nest: tuple[str, ...] = ()


def _fingerprint(module: Operation) -> list[tuple]:
    """What `--print-ir-after-change` compares (as MLIR's OperationFingerPrint): every op with its name,
    operands, attributes, result types, successors, location and blocks. Unchanged parts compare by
    identity (fast); a replaced attribute compares by value, so an equal one is no change (MLIR's
    attributes are uniqued: the same rule)."""
    out = []
    for op in module.walk():
        out.append((op, op.name, tuple(op.operands), tuple(op.attributes.items()), tuple(r.type for r in op.results),
                    tuple(op.successors), op.location,
                    tuple((b, tuple((a, a.type) for a in b.args)) for r in op.regions for b in r.blocks)))
    return out


_BAR = "===" + "-" * 73 + "==="


class PassManager:
    """Runs passes in order, verifying after each (unless `verify_each=False`).

    IR printing around passes (`print_before`, `print_after` (pass names), `print_*_all`,
    `print_after_change`: only when the pass changed the IR) elides large data as MLIR's debug printing
    does: dense elements of more than `print_elide_elements` (16) elements and resource blobs longer than
    `print_elide_resources` (64) characters; None prints them in full. Timing (`timing_report()`) and
    statistics (`statistics_report()`) follow mlir-opt's `--mlir-timing` / `--mlir-pass-statistics`."""

    def __init__(self, passes: Iterable[Pass] = (), *, verify_each: bool = True,
                 print_before: Iterable[str] = (), print_after: Iterable[str] = (),
                 print_before_all: bool = False, print_after_all: bool = False,
                 print_after_change: bool = False,
                 print_fn: Callable[[str], None] | None = None, print_locations: bool = False,
                 print_elide_elements: int | None = 16, print_elide_resources: int | None = 64):
        self.passes = list(passes)
        self.verify_each = verify_each
        self.print_before = set(print_before)
        self.print_after = set(print_after)
        self.print_before_all = print_before_all
        self.print_after_all = print_after_all
        self.print_after_change = print_after_change
        self.print_fn = print_fn or (lambda s: sys.stderr.write(s))
        self.print_locations = print_locations
        self.print_elide_elements = print_elide_elements
        self.print_elide_resources = print_elide_resources
        self.timings: list[PassTiming] = []

    @classmethod
    def parse(cls, pipeline: str, **kwargs: Any) -> "PassManager":
        return cls(parse_pipeline(pipeline), **kwargs)

    def add(self, p: Pass) -> "PassManager":
        self.passes.append(p)
        return self

    def pipeline_text(self) -> str:
        """The pipeline in the syntax `parse_pipeline` reads, nests included."""
        def items(group: list) -> str:
            return ",".join(f"{g[0]}({items(g[1])})" if isinstance(g, tuple) else g.describe() for g in group)
        return f"builtin.module({items(_nested_groups(self.passes))})"

    def pipeline_dump(self) -> str:
        """mlir-opt's `--dump-pass-pipeline` text: `Pass Manager with N passes:` and the nested pipeline."""
        groups = _nested_groups(self.passes)

        def lines(group: list, indent: str) -> list[str]:
            out: list[str] = []
            for i, g in enumerate(group):
                comma = "," if i + 1 < len(group) else ""
                if isinstance(g, tuple):
                    out.append(f"{indent}{g[0]}(")
                    out += lines(g[1], indent + "  ")
                    out.append(f"{indent}){comma}")
                else:
                    out.append(f"{indent}{g.describe()}{comma}")
            return out
        return "\n".join([f"Pass Manager with {len(groups)} passes:", "builtin.module("]
                         + lines(groups, "  ") + [")", "", ""])

    def _dump(self, when: str, p: Pass, module: Operation) -> None:
        from .printer import print_module
        self.print_fn(f"// -----// IR Dump {when} {p.NAME} //----- //\n"
                      + print_module(module, print_locations=self.print_locations,
                                     elide_elements_if_larger=self.print_elide_elements,
                                     elide_resources_if_larger=self.print_elide_resources) + "\n")

    def run(self, module: Operation) -> None:
        self.timings = []
        for p in self.passes:
            if self.print_before_all or p.NAME in self.print_before:
                self._dump("Before", p, module)
            dump_after = self.print_after_all or p.NAME in self.print_after
            before = _fingerprint(module) if dump_after and self.print_after_change else None
            t0, u0 = time.perf_counter(), time.process_time()
            try:
                p.run(module)
            except Exception as e:
                if isinstance(e, FixflowError) or type(p).__module__.startswith("fixflow."):
                    raise
                raise _plugin_crash(p, e) from e
            self.timings.append(PassTiming(p.NAME, time.perf_counter() - t0, time.process_time() - u0,
                                           getattr(p, "nest", ())))
            if self.verify_each:
                t0, u0 = time.perf_counter(), time.process_time()
                try:
                    module.verify()
                except VerifyError as e:
                    e.notes.append((f"the IR became invalid after pass '{p.NAME}'", None))
                    raise
                self.timings.append(PassTiming("(verifier)", time.perf_counter() - t0, time.process_time() - u0))
            if dump_after and (before is None or _fingerprint(module) != before):
                self._dump("After", p, module)
            before = None

    def timing_report(self, *, before: Iterable[tuple[str, float, float]] = (),
                      after: Iterable[tuple[str, float, float]] = (), total: tuple[float, float] | None = None,
                      display: str = "tree") -> str:
        """mlir-opt's `--mlir-timing` report of the last run: user and wall time, passes nested in their
        pipelines (`'func.func' Pipeline`), the verifier's time summed on one line. `before`/`after` are
        (name, wall, user) lines around the passes (fixflow-opt: Parser, Output); with `total` (wall, user)
        the unaccounted time is shown as `Rest`, as mlir-opt does. `display="list"` merges by name."""
        rows: list[tuple[int, str, float, float]] = []       # depth, name, wall, user
        verifier = [0.0, 0.0]
        root: list = []                                       # [name, wall, user, children] nodes
        for t in self.timings:
            if t.name == "(verifier)":
                verifier[0] += t.seconds
                verifier[1] += t.user
                continue
            items = root
            for anchor in t.nest:
                label = f"'{anchor}' Pipeline"
                if items and items[-1][3] is not None and items[-1][0] == label:
                    node = items[-1]
                else:
                    node = [label, 0.0, 0.0, []]
                    items.append(node)
                node[1] += t.seconds
                node[2] += t.user
                items = node[3]
            items.append([t.name, t.seconds, t.user, None])

        def walk(items: list, depth: int) -> None:
            for name, wall, user, children in items:
                rows.append((depth, name, wall, user))
                if children is not None:
                    walk(children, depth + 1)
        for name, wall, user in before:
            rows.append((0, name, wall, user))
        walk(root, 0)
        if self.timings and self.verify_each:
            rows.append((0, "(V) verifier", verifier[0], verifier[1]))
        for name, wall, user in after:
            rows.append((0, name, wall, user))
        if display == "list":
            merged: dict[str, list[float]] = {}
            for depth, name, wall, user in rows:
                if name.endswith(" Pipeline"):
                    continue
                m = merged.setdefault(name, [0.0, 0.0])
                m[0] += wall
                m[1] += user
            rows = [(0, k, w, u) for k, (w, u) in sorted(merged.items(), key=lambda kv: -kv[1][0])]
        top_wall = sum(r[2] for r in rows if r[0] == 0)
        top_user = sum(r[3] for r in rows if r[0] == 0)
        if total is not None:
            rest_wall, rest_user = max(total[0] - top_wall, 0.0), max(total[1] - top_user, 0.0)
            rows.append((0, "Rest", rest_wall, rest_user))
            tw, tu = top_wall + rest_wall, top_user + rest_user
        else:
            tw, tu = top_wall, top_user
        tw, tu = tw or 1e-12, tu or 1e-12
        lines = [_BAR, "... Execution time report ...".center(79).rstrip(), _BAR,
                 f"  Total Execution Time: {tw:.4f} seconds", "",
                 "  ----User Time----  ----Wall Time----  ----Name----"]
        for depth, name, wall, user in rows + [(0, "Total", tw, tu)]:
            lines.append(f"  {user:8.4f} ({100 * user / tu:5.1f}%)  {wall:8.4f} ({100 * wall / tw:5.1f}%)  "
                         f"{'  ' * depth}{name}")
        return "\n".join(lines) + "\n"

    def statistics_report(self, display: str = "pipeline") -> str:
        """mlir-opt's `--mlir-pass-statistics` report: each pass (in its pipeline nest) and its statistics as
        `(S) value name - description`; `display="list"` sums each statistic over the passes of one name."""
        lines = [_BAR, "... Pass statistics report ...".center(79).rstrip(), _BAR]

        def stat_lines(stats: list[tuple[Statistic, int]], indent: str) -> list[str]:
            width = max((len(str(v)) for _, v in stats), default=0)
            return [f"{indent}(S) {v:>{width}} {st.name} - {st.description}" for st, v in stats]
        if display == "list":
            merged: dict[str, dict[str, list]] = {}
            for p in self.passes:
                entry = merged.setdefault(p.NAME, {})
                for st, v in pass_statistics(p):
                    entry.setdefault(st.name, [st, 0])[1] += v
            for name in sorted(merged):
                lines.append(name)
                lines += stat_lines([(st, v) for st, v in merged[name].values()], "  ")
        else:
            def walk(items: list, indent: str) -> None:
                for g in items:
                    if isinstance(g, tuple):
                        lines.append(f"{indent}'{g[0]}' Pipeline")
                        walk(g[1], indent + "  ")
                    else:
                        lines.append(f"{indent}{g.NAME}")
                        lines.extend(stat_lines(pass_statistics(g), indent + "  "))
            walk(_nested_groups(self.passes), "")
        return "\n".join(lines) + "\n"


def print_pass_help(stream: TextIO) -> None:
    for name, cls in registered_passes().items():
        stream.write(f"  --{name:<28} {cls.SUMMARY}\n")
        for oname, typ, default, help_ in cls.option_fields():
            tname = getattr(typ, "__name__", str(typ)).replace("typing.", "")
            stream.write(f"      {oname}=<{tname}> (default {_format_option(default)}) {help_}\n")
