"""In-memory model of an XIR graph, independent of any fixflow dialect.

``XGraph(name, ops, attrs, root)`` holds ``XOp``s in topological order, each with one
output ``XTensor``, and a tree of ``XSubgraph``s.  Attributes are ``dict[str, XAttr]``;
plain Python values are accepted everywhere and converted by :func:`to_attr`:

==========================  =====================================================
Python value                XIR kind inferred
==========================  =====================================================
``bool``                    ``bool``
``int``                     ``int32`` if it fits, else ``int64``, else ``uint64``
``float``                   ``double`` (lossless; wrap in ``XAttr("float", x)`` for float32)
``str`` / ``bytes``         ``string`` / ``bytes``
numpy scalar                by dtype: int32, uint32, int64, uint64, float32 -> float,
                            float64 -> double, bool
1-D numpy array             the matching ``*_vec`` kind
non-empty list/tuple        ``<element kind>_vec`` (ints: ``int32_vec`` if all fit,
                            else ``int64_vec``); bytes elements -> ``bytes_vec``
non-empty dict, str keys    ``map_string_2_<kind>``: values int -> int32 (or int64),
                            str -> string, bytes -> bytes, list of int -> int32_vec, ...
==========================  =====================================================

Anything ambiguous (empty list/dict, mixed element types) must be given explicitly as
``XAttr(kind, value)``, e.g. ``XAttr("uint64", 0x0101000056010407)``,
``XAttr("map_string_2_string", {})``.  Kinds are the ``AttrValue`` field names without
``_value`` (see :data:`ATTR_KINDS`).  ``XAttr`` normalises its value (lists, dicts, Python
ints/floats; ``float`` kinds are rounded to float32) so that a graph read back from a
file compares equal to the one written.

Tensor types are strings ``<BASE><bits>`` with BASE in INT, UINT, XINT, XUINT, FLOAT,
BFLOAT (``"XINT8"``, ``"FLOAT32"``); :func:`parse_data_type` maps them to the serial_v2
enum and bit width.
"""

from __future__ import annotations

import heapq
import re
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fixflow.ir.diagnostics import FixflowError


class XModelError(FixflowError):
    """A malformed XIR graph or .xmodel file; ``.message`` is the one-line text."""


SCALAR_KINDS = ("bool", "int32", "uint32", "int64", "uint64", "float", "double", "string", "bytes")
_VEC_ELEMS = ("bool", "int32", "uint32", "int64", "uint64", "float", "double", "string", "bytes")
_MAP_ELEMS = ("int32", "uint32", "int64", "uint64", "string", "bytes",
              "int32_vec", "uint32_vec", "int64_vec", "uint64_vec", "string_vec")
#: Every XIR attribute kind, in AttrValue field order.
ATTR_KINDS: tuple[str, ...] = (
    SCALAR_KINDS + tuple(f"{k}_vec" for k in _VEC_ELEMS)
    + tuple(f"map_string_2_{k}" for k in _MAP_ELEMS))

_INT_RANGES = {
    "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1),
}


def _f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _norm_scalar(kind: str, v: Any) -> Any:
    if kind == "bool":
        if not isinstance(v, (bool, np.bool_)):
            raise TypeError(f"expected bool, got {type(v).__name__}")
        return bool(v)
    if kind in _INT_RANGES:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"expected an integer, got {type(v).__name__}")
        lo, hi = _INT_RANGES[kind]
        if not lo <= int(v) <= hi:
            raise ValueError(f"{int(v)} is out of range for {kind}")
        return int(v)
    if kind in ("float", "double"):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"expected a number, got {type(v).__name__}")
        return _f32(float(v)) if kind == "float" else float(v)
    if kind == "string":
        if not isinstance(v, str):
            raise TypeError(f"expected str, got {type(v).__name__}")
        return v
    if kind == "bytes":
        if not isinstance(v, (bytes, bytearray, memoryview)):
            raise TypeError(f"expected bytes, got {type(v).__name__}")
        return bytes(v)
    raise ValueError(f"unknown attribute kind {kind!r}")


def _norm_value(kind: str, v: Any) -> Any:
    if kind in SCALAR_KINDS:
        return _norm_scalar(kind, v)
    if kind.startswith("map_string_2_"):
        elem = kind[len("map_string_2_"):]
        if not isinstance(v, Mapping):
            raise TypeError(f"expected a dict, got {type(v).__name__}")
        out = {}
        for k, x in v.items():
            if not isinstance(k, str):
                raise TypeError(f"map keys must be str, got {type(k).__name__}")
            out[k] = _norm_value(elem, x)
        return out
    if kind.endswith("_vec"):
        elem = kind[:-4]
        if isinstance(v, (str, bytes, Mapping)) or not hasattr(v, "__iter__"):
            raise TypeError(f"expected a list, got {type(v).__name__}")
        return [_norm_scalar(elem, x) for x in v]
    raise ValueError(f"unknown attribute kind {kind!r}")


@dataclass(frozen=True, eq=True)
class XAttr:
    """An attribute value with its explicit XIR kind (one of :data:`ATTR_KINDS`)."""

    kind: str
    value: Any

    def __post_init__(self) -> None:
        if self.kind not in ATTR_KINDS:
            raise XModelError(f"unknown attribute kind {self.kind!r}; expected one of "
                              + ", ".join(ATTR_KINDS))
        try:
            object.__setattr__(self, "value", _norm_value(self.kind, self.value))
        except (TypeError, ValueError) as e:
            raise XModelError(f"bad value for attribute kind {self.kind}: {e}") from None


_NP_KINDS = {np.dtype(np.bool_): "bool", np.dtype(np.int32): "int32", np.dtype(np.uint32): "uint32",
             np.dtype(np.int64): "int64", np.dtype(np.uint64): "uint64",
             np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


def _infer_scalar(v: Any) -> str | None:
    if isinstance(v, (bool, np.bool_)):
        return "bool"
    if isinstance(v, np.generic):
        return _NP_KINDS.get(v.dtype)
    if isinstance(v, int):
        for k in ("int32", "int64", "uint64"):
            lo, hi = _INT_RANGES[k]
            if lo <= v <= hi:
                return k
        return None
    if isinstance(v, float):
        return "double"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "bytes"
    return None


def _infer_vec(v: Any) -> str | None:
    if isinstance(v, np.ndarray):
        k = _NP_KINDS.get(v.dtype) if v.ndim == 1 else None
        return f"{k}_vec" if k else None
    kinds = {_infer_scalar(x) for x in v}
    if not kinds or None in kinds:
        return None
    if kinds <= {"int32", "int64", "uint64"}:
        if kinds == {"int32"}:
            return "int32_vec"
        if "uint64" not in kinds:
            return "int64_vec"
        return "uint64_vec" if all(int(x) >= 0 for x in v) else None
    return f"{kinds.pop()}_vec" if len(kinds) == 1 else None


def infer_kind(value: Any) -> str:
    """The XIR kind inferred for a plain Python/numpy value (see module docstring)."""
    kind = None
    if isinstance(value, Mapping):
        if value and all(isinstance(k, str) for k in value):
            elems = list(value.values())
            if all(isinstance(x, (list, tuple, np.ndarray)) for x in elems):
                ks = {_infer_vec(x) for x in elems}
                if ks == {"int32_vec", "int64_vec"}:
                    ks = {"int64_vec"}
            else:
                ks = {_infer_scalar(x) for x in elems}
                if ks == {"int32", "int64"}:
                    ks = {"int64"}
            if len(ks) == 1 and (k := ks.pop()) in _MAP_ELEMS:
                kind = f"map_string_2_{k}"
    elif isinstance(value, (list, tuple, np.ndarray)):
        kind = _infer_vec(value)
    else:
        kind = _infer_scalar(value)
    if kind is None:
        raise XModelError(f"cannot infer an XIR attribute kind for {_short(value)}; "
                          "wrap it as XAttr(kind, value)")
    return kind


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def to_attr(value: Any) -> XAttr:
    """``value`` itself if it is an :class:`XAttr`, else ``XAttr(infer_kind(value), value)``."""
    return value if isinstance(value, XAttr) else XAttr(infer_kind(value), value)


def to_attrs(attrs: Mapping[str, Any] | None, where: str = "") -> dict[str, XAttr]:
    """Convert a mapping of plain or ``XAttr`` values to ``dict[str, XAttr]``."""
    out: dict[str, XAttr] = {}
    for k, v in (attrs or {}).items():
        if not isinstance(k, str) or not k:
            raise XModelError(f"{where}attribute names must be non-empty strings, got {k!r}")
        try:
            out[k] = to_attr(v)
        except XModelError as e:
            raise XModelError(f"{where}attribute {k!r}: {e.message}") from None
    return out


class _HasAttrs:
    attrs: dict[str, XAttr]

    def attr(self, name: str, default: Any = None) -> Any:
        """The plain value of attribute ``name`` (``default`` if absent)."""
        a = self.attrs.get(name)
        return default if a is None else a.value

    def has_attr(self, name: str) -> bool:
        return name in self.attrs

    def set_attr(self, name: str, value: Any) -> None:
        """Set attribute ``name`` from a plain value or an ``XAttr``."""
        self.attrs[name] = to_attr(value)


# serial_v2 data_type enum
DATA_TYPE_ENUM = {"INT": 0, "UINT": 1, "XINT": 2, "XUINT": 3, "FLOAT": 4, "BFLOAT": 5}
DATA_TYPE_NAME = {v: k for k, v in DATA_TYPE_ENUM.items()}
_DTYPE_RE = re.compile(r"^(INT|UINT|XINT|XUINT|FLOAT|BFLOAT)([1-9][0-9]*)$")


def parse_data_type(s: str) -> tuple[int, int]:
    """``"XINT8"`` -> ``(2, 8)`` (serial_v2 enum value, bit width)."""
    m = _DTYPE_RE.match(s) if isinstance(s, str) else None
    if m is None:
        raise XModelError(f"unknown data_type {s!r}; expected e.g. XINT8, INT32, FLOAT32, BFLOAT16")
    return DATA_TYPE_ENUM[m.group(1)], int(m.group(2))


def format_data_type(enum: int, bit_width: int) -> str:
    """``(2, 8)`` -> ``"XINT8"``; raises :class:`XModelError` for an unknown enum."""
    if enum not in DATA_TYPE_NAME:
        raise XModelError(f"unknown data_type enum {enum} (expected 0..5)")
    if bit_width <= 0:
        raise XModelError(f"invalid tensor bit width {bit_width}")
    return f"{DATA_TYPE_NAME[enum]}{bit_width}"


@dataclass(eq=True)
class XTensor(_HasAttrs):
    """An op's output tensor: ``shape`` (NHWC for feature maps), ``data_type`` like ``"XINT8"``."""

    name: str
    shape: list[int]
    data_type: str
    attrs: dict[str, XAttr] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.shape = [int(d) for d in self.shape]
        if any(d < 0 or d >= 2**32 for d in self.shape):
            raise XModelError(f"tensor {self.name!r}: dimensions must be in [0, 2^32), got {self.shape}")
        parse_data_type(self.data_type)
        self.attrs = to_attrs(self.attrs, f"tensor {self.name!r}: ")

    @property
    def bit_width(self) -> int:
        return parse_data_type(self.data_type)[1]


@dataclass(eq=True)
class XOp(_HasAttrs):
    """One XIR op.  ``inputs`` maps an argument name to its producer op names, in order."""

    name: str
    type: str
    attrs: dict[str, XAttr] = field(default_factory=dict)
    inputs: dict[str, list[str]] = field(default_factory=dict)
    output: XTensor = field(kw_only=True)

    def __post_init__(self) -> None:
        if not self.name or not self.type:
            raise XModelError(f"op {self.name!r}: name and type must be non-empty")
        self.attrs = to_attrs(self.attrs, f"op {self.name!r}: ")
        self.inputs = {k: [v] if isinstance(v, str) else list(v) for k, v in self.inputs.items()}

    def input_ops(self) -> list[str]:
        """All producer op names, in argument order."""
        return [p for ps in self.inputs.values() for p in ps]


@dataclass(eq=True)
class XSubgraph(_HasAttrs):
    """A node of the subgraph tree: a leaf (``op_names``) or an inner node (``children``)."""

    name: str
    op_names: list[str] = field(default_factory=list)
    attrs: dict[str, XAttr] = field(default_factory=dict)
    children: list["XSubgraph"] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.op_names = list(self.op_names)
        self.children = list(self.children)
        self.attrs = to_attrs(self.attrs, f"subgraph {self.name!r}: ")

    @property
    def is_leaf(self) -> bool:
        return not self.children

    @property
    def device(self) -> str | None:
        return self.attr("device")

    def walk(self) -> Iterator["XSubgraph"]:
        """This subgraph and all descendants, pre-order."""
        yield self
        for c in self.children:
            yield from c.walk()

    def find(self, name: str) -> "XSubgraph | None":
        """The descendant (or self) called ``name``."""
        return next((s for s in self.walk() if s.name == name), None)

    def all_op_names(self) -> list[str]:
        """Op names of every leaf below (or of self if a leaf)."""
        return [n for s in self.walk() for n in s.op_names]

    def check(self) -> None:
        """Check the leaf-or-inner invariant on the whole tree."""
        for s in self.walk():
            if s.op_names and s.children:
                raise XModelError(f"subgraph {s.name!r} has both op names and children")
            if not s.op_names and not s.children:
                raise XModelError(f"subgraph {s.name!r} has neither op names nor children")


DATA_OP_TYPES = frozenset({"data", "data-fix"})


@dataclass(eq=True)
class XGraph(_HasAttrs):
    """An XIR graph: ops in topological order, graph attributes and the subgraph tree.

    ``root=None`` means "use :meth:`default_root`" (what the writer does).
    """

    name: str
    ops: list[XOp] = field(default_factory=list)
    attrs: dict[str, XAttr] = field(default_factory=dict)
    root: XSubgraph | None = None

    def __post_init__(self) -> None:
        self.ops = list(self.ops)
        self.attrs = to_attrs(self.attrs, "graph: ")

    # -- lookup ---------------------------------------------------------------
    def op(self, name: str) -> XOp:
        """The op called ``name`` (``KeyError`` if absent)."""
        for o in self.ops:
            if o.name == name:
                return o
        raise KeyError(name)

    def op_map(self) -> dict[str, XOp]:
        return {o.name: o for o in self.ops}

    def consumers(self) -> dict[str, list[str]]:
        """Op name -> names of ops that read its output (in op order, no duplicates)."""
        out: dict[str, list[str]] = {o.name: [] for o in self.ops}
        for o in self.ops:
            for p in dict.fromkeys(o.input_ops()):
                if p in out:
                    out[p].append(o.name)
        return out

    # -- structure ------------------------------------------------------------
    def toposorted(self) -> list[XOp]:
        """The ops in a topological order (stable: keeps the given order when valid)."""
        ops = self.op_map()
        order: list[XOp] = []
        state: dict[str, int] = {}
        for start in self.ops:
            stack = [(start.name, iter(start.input_ops()))]
            if state.get(start.name):
                continue
            state[start.name] = 1
            while stack:
                name, it = stack[-1]
                for p in it:
                    if p not in ops:
                        raise XModelError(f"op {name!r}: input op {p!r} does not exist")
                    if state.get(p) == 1:
                        raise XModelError(f"cycle in graph {self.name!r} through op {p!r}")
                    if not state.get(p):
                        state[p] = 1
                        stack.append((p, iter(ops[p].input_ops())))
                        break
                else:
                    stack.pop()
                    state[name] = 2
                    order.append(ops[name])
        return order

    def check_order(self) -> None:
        """Raise unless op names are unique and every producer precedes its consumers."""
        seen: set[str] = set()
        names = {o.name for o in self.ops}
        for o in self.ops:
            if o.name in seen:
                raise XModelError(f"duplicate op name {o.name!r}")
            for p in o.input_ops():
                if p not in seen:
                    if p in names:
                        raise XModelError(f"ops are not in topological order: {o.name!r} uses "
                                          f"{p!r} which comes later (use XGraph.toposorted())")
                    raise XModelError(f"op {o.name!r}: input op {p!r} does not exist (dangling arg_ops)")
            seen.add(o.name)

    def default_root(self) -> XSubgraph:
        """``root`` with one leaf per op: device USER for data ops, CPU otherwise."""
        return XSubgraph("root", children=[
            XSubgraph(f"subgraph_{o.name}", [o.name],
                      {"device": "USER" if o.type in DATA_OP_TYPES else "CPU"})
            for o in self.ops])

    def root_or_default(self) -> XSubgraph:
        return self.root if self.root is not None else self.default_root()

    def check_root(self, root: XSubgraph | None = None) -> None:
        """Check the subgraph tree: leaf invariant, every op in exactly one leaf."""
        root = root or self.root_or_default()
        root.check()
        names = {o.name for o in self.ops}
        placed: dict[str, str] = {}
        for s in root.walk():
            for n in s.op_names:
                if n not in names:
                    raise XModelError(f"subgraph {s.name!r} names op {n!r} which does not exist")
                if n in placed:
                    raise XModelError(f"op {n!r} is in two subgraphs: {placed[n]!r} and {s.name!r}")
                placed[n] = s.name
        missing = [n for n in names if n not in placed]
        if missing:
            raise XModelError(f"op {sorted(missing)[0]!r} is in no subgraph of the tree")

    def validate(self) -> None:
        """All structural checks the writer performs."""
        if not self.ops:
            raise XModelError(f"graph {self.name!r} is empty (no ops)")
        self.check_order()
        self.check_root()

    # -- subgraph queries -------------------------------------------------------
    def index(self) -> "GraphIndex":
        """Lookup tables for repeated subgraph queries (rebuild after editing the graph)."""
        return GraphIndex(self.op_map(), {o.name: i for i, o in enumerate(self.ops)}, self.consumers())

    def _ops_in(self, sg: XSubgraph, ix: "GraphIndex") -> list[str]:
        return sorted((n for n in sg.all_op_names() if n in ix.ops), key=ix.position.__getitem__)

    def subgraph_inputs(self, sg: XSubgraph, index: "GraphIndex | None" = None) -> list[str]:
        """Ops outside ``sg`` whose outputs ``sg`` reads (in first-use order)."""
        ix = index or self.index()
        names = self._ops_in(sg, ix)
        inside = set(names)
        out: dict[str, None] = {}
        for n in names:
            for p in ix.ops[n].input_ops():
                if p not in inside:
                    out[p] = None
        return list(out)

    def subgraph_outputs(self, sg: XSubgraph, index: "GraphIndex | None" = None) -> list[str]:
        """Ops in ``sg`` read outside it, or read by nobody (graph outputs)."""
        ix = index or self.index()
        names = self._ops_in(sg, ix)
        inside = set(names)
        return [n for n in names
                if not ix.consumers[n] or any(c not in inside for c in ix.consumers[n])]

    def toposort_children(self, sg: XSubgraph | None = None,
                          index: "GraphIndex | None" = None) -> list[XSubgraph]:
        """Children of ``sg`` (default root) in dependency order (stable Kahn's algorithm)."""
        sg = sg or self.root_or_default()
        ix = index or self.index()
        owner = {n: i for i, c in enumerate(sg.children) for n in c.all_op_names()}
        users: list[set[int]] = [set() for _ in sg.children]
        indeg = [0] * len(sg.children)
        for i, c in enumerate(sg.children):
            deps = {owner[p] for n in c.all_op_names() if n in ix.ops
                    for p in ix.ops[n].input_ops() if owner.get(p, i) != i}
            indeg[i] = len(deps)
            for j in deps:
                users[j].add(i)
        ready = [i for i, d in enumerate(indeg) if d == 0]
        heapq.heapify(ready)
        done: list[int] = []
        while ready:
            i = heapq.heappop(ready)
            done.append(i)
            for j in users[i]:
                indeg[j] -= 1
                if indeg[j] == 0:
                    heapq.heappush(ready, j)
        if len(done) != len(sg.children):
            raise XModelError(f"children of subgraph {sg.name!r} depend on each other cyclically")
        return [sg.children[i] for i in done]


@dataclass(frozen=True)
class GraphIndex:
    """Precomputed lookups of an :class:`XGraph` (see :meth:`XGraph.index`)."""

    ops: dict[str, XOp]
    position: dict[str, int]
    consumers: dict[str, list[str]]
