"""DSL AST -> graph dialect: one `func.func` per net in a `builtin.module`."""

from __future__ import annotations

import difflib
import math
from typing import Any, Mapping

import numpy as np

from ...ir.attributes import DenseElementsAttr, DenseResourceElementsAttr
from ...ir.builder import Builder
from ...ir.core import IRError, Value
from ...ir.diagnostics import FixflowError, VerifyError
from ...ir.location import CallSiteLoc, FileLineColLoc, NameLoc
from ...ir.opdef import lookup_op_class
from ...ir.types import TensorType, f32
from .syntax import Assign, DslError, Lit, Net, Pos, Ref, Return, parse_program
from .weights import WeightStore, random_param

ELEMENT_TYPES = {"f32": f32}
_MAX_PARAM_ELEMENTS = 2**31 - 1


def _strip(message: str, op_name: str) -> str:
    """A graph op's message without its own `conv2d: ` prefix (the DSL adds the statement's op name)."""
    short = op_name.split(".", 1)[1] + ": "
    return message[len(short):] if message.startswith(short) else message


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class NetBuilder:
    """Builds one net's function body; ops call `emit`, `param` and `error` while lowering a statement."""

    def __init__(self, net: Net, filename: str, store: WeightStore, seed: int, key_prefix: str,
                 nets: dict[str, Net] | None = None):
        self.net = net
        self.filename = filename
        self.store = store
        self.seed = seed
        self.key_prefix = key_prefix
        self.nets = nets or {}
        self.env: dict[str, tuple[Value, Pos]] = {}
        self.stmt: Assign | None = None
        self.builder: Builder | None = None
        # when this builder inlines a called net: the top-level net (weights, seed), a prefix for the
        # statement names (`<call target>.`) and the call sites (locations, notes, recursion check)
        self.owner = net.name
        self.prefix = ""
        self.calls: list[tuple[str, FileLineColLoc]] = []

    def child(self, callee: Net, call: Assign) -> "NetBuilder":
        """A builder that inlines `callee` for the call statement `call` (into the same block)."""
        nb = NetBuilder(callee, self.filename, self.store, self.seed, self.key_prefix, self.nets)
        nb.builder = self.builder
        nb.owner = self.owner
        nb.prefix = f"{self.prefix}{call.target}."
        nb.calls = self.calls + [(self.net.name, self.loc(call.pos))]
        return nb

    def qual(self, name: str) -> str:
        """A statement name as it appears in the IR and weight keys (prefixed inside inlined nets)."""
        return self.prefix + name

    def op_loc(self, pos: Pos):
        """An op's location: the statement, wrapped in call-site locations when inlined."""
        loc = self.loc(pos)
        for _, call_loc in reversed(self.calls):
            loc = CallSiteLoc(loc, call_loc)
        return loc

    # ---- helpers for op lowerings ----------------------------------------------------------
    def loc(self, pos: Pos) -> FileLineColLoc:
        return FileLineColLoc(self.filename, pos.line, pos.col)

    def error(self, message: str, pos: Pos | None = None) -> DslError:
        """A DslError at `pos` (default: the current statement), prefixed with the op name."""
        stmt = self.stmt
        if pos is None:
            pos = stmt.pos if stmt is not None else self.net.pos
        prefix = f"{stmt.op}: " if stmt is not None and not message.startswith(stmt.op + ":") else ""
        return self.fail(prefix + message, pos)

    def fail(self, message: str, pos: Pos) -> DslError:
        """A DslError at `pos`, with a note per call site when inside an inlined net."""
        callees = [caller for caller, _ in self.calls[1:]] + [self.net.name]
        notes = [(f"in net '{callee}', called here", loc) for callee, (_, loc) in zip(callees, self.calls)]
        return DslError(message, self.loc(pos), notes[::-1])

    @staticmethod
    def shape(v: Value) -> tuple[int, ...]:
        return tuple(v.type.shape)

    def tensor(self, ref: Ref) -> Value:
        """The value a name refers to."""
        hit = self.env.get(ref.name)
        if hit is None:
            known = list(self.env)
            raise self.fail(f"unknown name '{ref.name}'{did_you_mean(ref.name, known)}", ref.pos)
        return hit[0]

    def emit(self, op_name: str, *operands: Any, name: str | None = None, **attrs: Any) -> Value:
        """Build, shape-check and append a graph op for the current statement; returns its result."""
        cls = lookup_op_class(op_name)
        if cls is None:  # pragma: no cover - the graph dialect defines every op we emit
            raise self.error(f"the graph dialect has no op '{op_name}'")
        stmt = self.stmt
        loc = self.op_loc(stmt.pos if stmt is not None else self.net.pos)
        attrs = {k: v for k, v in attrs.items() if v is not None}
        hint = name if name is not None else (self.qual(stmt.target) if stmt else None)
        try:
            return self.builder.emit(cls, *operands, name=hint, location=loc, **attrs)
        except VerifyError as e:
            raise self.error(_strip(e.bare_message, op_name)) from None
        except FixflowError as e:
            raise self.error(_strip(e.message, op_name)) from None
        except (ValueError, IRError, TypeError) as e:
            raise self.error(_strip(str(e), op_name)) from None

    def constant(self, array: np.ndarray, role: str | None, resource: bool = True) -> Value:
        """A `graph.constant` holding `array` (a dense_resource keyed `<stmt>.<role>` when `resource`)."""
        stmt = self.stmt
        array = np.ascontiguousarray(array, dtype=np.float32)
        name = self.qual(stmt.target)
        key = f"{self.key_prefix}{name}" + (f".{role}" if role else "")
        attr = DenseResourceElementsAttr.from_array(key, array) if resource else DenseElementsAttr.from_array(array)
        hint = f"{name}.{role}" if role else name
        return self.emit("graph.constant", value=attr, name=hint)

    def param(self, role: str, shape: tuple[int, ...], init: str, fan_in: int = 1,
              given: Any = None) -> Value:
        """A parameter tensor: `given` (a Value or an inline literal), else from the weights, else random."""
        shape = tuple(int(d) for d in shape)
        stmt = self.stmt
        if isinstance(given, Value):
            if self.shape(given) != shape:
                raise self.error(f"'{role}' has shape {list(self.shape(given))} but {list(shape)} is needed")
            return given
        if isinstance(given, Lit):
            arr = literal_array(self, given, role)
            if arr.shape != shape:
                raise self.error(f"inline '{role}' has shape {list(arr.shape)} but {list(shape)} is needed",
                                 given.pos)
            return self.constant(arr, role)
        hit = self.store.lookup(self.owner, self.qual(stmt.target), role)
        if hit is not None:
            key, arr = hit
            if tuple(arr.shape) != shape:
                raise self.error(f"weights entry '{key}' has shape {list(arr.shape)} but {list(shape)} "
                                 f"is needed")
            if not np.issubdtype(arr.dtype, np.number):
                raise self.error(f"weights entry '{key}' is not numeric ({arr.dtype})")
            return self.constant(arr, role)
        return self.constant(self.random_array(role, shape, init, fan_in), role)

    def random_array(self, role: str, shape: tuple[int, ...], init: str, fan_in: int = 1) -> np.ndarray:
        """The seeded-random values of parameter `role` of the current statement (size-checked)."""
        size = math.prod(shape)
        if size > _MAX_PARAM_ELEMENTS:
            raise self.error(f"'{role}' of shape {list(shape)} would have {size} elements; parameters are limited "
                             f"to {_MAX_PARAM_ELEMENTS} (2**31 - 1)")
        try:
            return random_param(self.seed, self.owner, self.qual(self.stmt.target), role, shape, init, fan_in)
        except MemoryError:
            raise self.error(f"not enough memory for '{role}' of shape {list(shape)} ({size} elements)") from None

    # ---- statements ----------------------------------------------------------------------
    def define(self, name: str, value: Value, pos: Pos) -> None:
        prev = self.env.get(name)
        if prev is not None:
            where = f"line {prev[1].line}"
            raise self.fail(f"'{name}' is already defined (at {where}); every name is assigned once", pos)
        self.env[name] = (value, pos)


def literal_array(nb: NetBuilder, lit: Lit, what: str) -> np.ndarray:
    """A nested numeric list literal as a float32 array (rectangular)."""
    def check(v: Any) -> Any:
        if isinstance(v, Lit) and isinstance(v.value, list):
            return [check(x) for x in v.value]
        if isinstance(v, Lit) and isinstance(v.value, (int, float)) and not isinstance(v.value, bool):
            return v.value
        pos = v.pos
        raise nb.error(f"'{what}' must be numbers or nested lists of numbers", pos)
    data = check(lit)
    try:
        return np.asarray(data, dtype=np.float32)
    except ValueError:
        raise nb.error(f"'{what}' is not rectangular (rows of different lengths)", lit.pos) from None


def _option(net: Net, key: str) -> Lit | None:
    for arg in net.options:
        if arg.key == key:
            return arg.value
    return None


def _check_options(net: Net, filename: str) -> None:
    allowed = ["seed"]
    seen = set()
    for arg in net.options:
        if arg.key not in allowed:
            raise DslError(f"unknown net option '{arg.key}'{did_you_mean(arg.key, allowed)}; "
                           f"options: {', '.join(allowed)}", FileLineColLoc(filename, arg.pos.line, arg.pos.col))
        if arg.key in seen:
            raise DslError(f"option '{arg.key}' given twice", FileLineColLoc(filename, arg.pos.line, arg.pos.col))
        seen.add(arg.key)
        v = arg.value
        if not (isinstance(v, Lit) and isinstance(v.value, int) and not isinstance(v.value, bool)):
            raise DslError("'seed' must be an integer", FileLineColLoc(filename, v.pos.line, v.pos.col))


def lower_program(nets: list[Net], filename: str, weights: Mapping[str, np.ndarray] | None,
                  seed: int | None = None, weights_name: str | None = None, resized: list[str] | None = None):
    """Lower parsed nets to a verified `builtin.module` (one `func.func` per net); `resized` as for
    `import_dsl`."""
    from ...dialects.builtin import FuncOp, ModuleOp, ReturnOp
    from .ops import lower_statement

    module = ModuleOp.empty(FileLineColLoc(filename, 1, 1))
    store = WeightStore(weights, resized)
    seen: dict[str, Pos] = {}
    multi = len(nets) > 1
    by_name = {net.name: net for net in reversed(nets)}
    for net in nets:
        loc = FileLineColLoc(filename, net.pos.line, net.pos.col)
        if net.name in seen:
            raise DslError(f"net '{net.name}' is already defined at line {seen[net.name].line}", loc)
        seen[net.name] = net.pos
        _check_options(net, filename)
        opt = _option(net, "seed")
        net_seed = seed if seed is not None else (opt.value if opt is not None else 0)
        nb = NetBuilder(net, filename, store, net_seed, f"{net.name}." if multi else "", by_name)
        in_types = []
        for inp in net.inputs:
            et = ELEMENT_TYPES.get(inp.dtype)
            if et is None:
                raise DslError(f"unknown element type '{inp.dtype}'; supported: {', '.join(ELEMENT_TYPES)}",
                               nb.loc(inp.dtype_pos))
            if any(d <= 0 for d in inp.shape) or not inp.shape:
                raise DslError(f"input '{inp.name}' needs a static shape of positive sizes, got "
                               f"{list(inp.shape)}", nb.loc(inp.pos))
            in_types.append(TensorType(inp.shape, et))
        func = FuncOp.create_function(net.name, in_types, [], location=loc)
        nb.builder = Builder.at_end(func.body)
        for inp, arg in zip(net.inputs, func.args):
            arg.name_hint = inp.name
            nb.define(inp.name, arg, inp.pos)
        ret: Return | None = None
        for stmt in net.body:
            if ret is not None:
                raise DslError("statement after 'return'; 'return' must come last",
                               nb.loc(stmt.pos))
            if isinstance(stmt, Return):
                ret = stmt
                continue
            nb.stmt = stmt
            value = lower_statement(nb, stmt)
            nb.stmt = None
            nb.define(stmt.target, value, stmt.pos)
        if ret is None:
            raise DslError(f"net '{net.name}' has no 'return' statement", nb.loc(net.end))
        outs = []
        for name, pos in ret.names:
            outs.append(nb.tensor(Ref(name, pos)))
        func.body.append(ReturnOp.build(outs, location=nb.loc(ret.pos)))
        func.update_function_type()
        module.body.append(func)
    unused = store.unused()
    if unused:
        src = f" in {weights_name}" if weights_name else ""
        raise DslError(f"weights{src} not used by any statement: {', '.join(unused)} "
                       f"(keys are <statement>.<weight|bias|mean|var|gamma|beta|slope>)",
                       NameLoc(weights_name) if weights_name else None)
    try:
        module.verify()
    except VerifyError as e:  # pragma: no cover - every op was checked as it was built
        raise DslError(e.message, e.location) from None
    return module


def import_program(text: str, filename: str, weights: Mapping[str, np.ndarray] | None, seed: int | None,
                   weights_name: str | None = None, resized: list[str] | None = None):
    return lower_program(parse_program(text, filename), filename, weights, seed, weights_name, resized)
