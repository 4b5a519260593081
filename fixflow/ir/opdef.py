"""Declarative op definitions, traits and the dialect registry.

An op reads like a declaration::

    arith = Dialect("arith")

    @arith.op
    class AddI(Op):
        OP_NAME = "arith.addi"
        TRAITS = frozenset({Pure, Commutative, SameOperandsAndResultType})
        lhs = operand()
        rhs = operand()
        out = result()

        def fold(self): ...

Fields are collected in declaration order. Operand/result/attribute fields are descriptors:
`op.lhs` is the operand value, `op.stride` the Python value of the attribute (its default when absent),
and assigning `op.stride = (2, 2)` stores the converted attribute.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Sequence

from .. import _registry

import numpy as np

from .attributes import (ArrayAttr, Attribute, BoolAttr, DenseArrayAttr, DenseElementsAttr,
                         DenseResourceElementsAttr, DictionaryAttr, FloatAttr, IntegerAttr, StringAttr,
                         SymbolRefAttr, TypeAttr, from_attribute, to_attribute)
from .core import IRError, Operation, Region, Value
from .location import UNKNOWN_LOC, Location
from .types import DialectType, FloatType, Type, f64, i32, i64, register_dialect_type


# ---- traits -------------------------------------------------------------------------------
class Trait:
    """Marker base class for op traits (used as `TRAITS = frozenset({Pure, ...})`)."""


class Pure(Trait):
    """No side effects: unused results make the op dead, identical ops may be merged."""


class Terminator(Trait):
    """Must be the last op of its block."""


class SameOperandsAndResultType(Trait):
    """All operands and results have the same type."""


class IsolatedFromAbove(Trait):
    """Regions do not use values defined outside the op (value numbering restarts inside)."""


class Commutative(Trait):
    """Operand order does not matter (canonicalize sorts constants last)."""


class ConstantLike(Trait):
    """Materializes a constant from its `value` attribute; has no operands."""


class SymbolTable(Trait):
    """Its region holds symbols (ops with a `sym_name`) that can be looked up by name."""


class NoTerminator(Trait):
    """Its single-block regions need no terminator."""


# ---- attribute kinds ----------------------------------------------------------------------
class AttrKind:
    """How an attribute field converts between Python values and attributes, and what it accepts."""

    def __init__(self, name: str, to_attr: Callable[[Any], Attribute], from_attr: Callable[[Attribute], Any],
                 accepts: tuple[type, ...], check: Callable[[Attribute], str | None] | None = None):
        self.name = name
        self._to = to_attr
        self._from = from_attr
        self.accepts = accepts
        self._check = check

    def to_attr(self, value: Any) -> Attribute:
        if isinstance(value, Attribute):
            return value
        return self._to(value)

    def from_attr(self, attr: Attribute) -> Any:
        return self._from(attr)

    def check(self, attr: Attribute) -> str | None:
        if not isinstance(attr, self.accepts):
            return f"expected {self.name}, got {attr.text()}"
        return self._check(attr) if self._check else None

    def __repr__(self) -> str:
        return f"AttrKind({self.name})"


def _check_i64_array(attr: Attribute) -> str | None:
    return None if attr.element_type == i64 else f"expected array<i64: ...>, got {attr.text()}"


def _check_f64_array(attr: Attribute) -> str | None:
    return None if isinstance(attr.element_type, FloatType) else f"expected array<f64: ...>, got {attr.text()}"


def _int_from(attr: Attribute) -> int:
    return attr.value


INT = AttrKind("integer", lambda v: IntegerAttr(int(v), i64), _int_from, (IntegerAttr,))
I32 = AttrKind("i32 integer", lambda v: IntegerAttr(int(v), i32), _int_from, (IntegerAttr,))
FLOAT = AttrKind("float", lambda v: FloatAttr(float(v), f64), lambda a: a.value, (FloatAttr, IntegerAttr))
BOOL = AttrKind("bool", lambda v: BoolAttr(bool(v)), lambda a: a.value, (BoolAttr,))
STR = AttrKind("string", lambda v: StringAttr(str(v)), lambda a: a.value, (StringAttr,))
I64_ARRAY = AttrKind("array<i64>", lambda v: DenseArrayAttr(i64, v), lambda a: a.value, (DenseArrayAttr,),
                     _check_i64_array)
F64_ARRAY = AttrKind("array<f64>", lambda v: DenseArrayAttr(f64, v), lambda a: a.value, (DenseArrayAttr,),
                     _check_f64_array)
TYPE = AttrKind("type", lambda v: TypeAttr(v), lambda a: a.value, (TypeAttr,))
ELEMENTS = AttrKind("dense elements", lambda v: DenseElementsAttr.from_array(np.asarray(v)),
                    lambda a: a.array, (DenseElementsAttr, DenseResourceElementsAttr))
SYMBOL = AttrKind("symbol reference", lambda v: SymbolRefAttr(v), lambda a: a.root, (SymbolRefAttr,))
DICT = AttrKind("dictionary", lambda v: to_attribute(dict(v)), from_attribute, (DictionaryAttr,))
ARRAY = AttrKind("array", lambda v: ArrayAttr(to_attribute(x) for x in v), lambda a: a.value, (ArrayAttr,))
ANY = AttrKind("attribute", to_attribute, lambda a: a, (Attribute,))


def Enum(*values: str) -> AttrKind:
    """A string attribute restricted to `values`."""
    allowed = tuple(values)

    def check(attr: Attribute) -> str | None:
        if attr.value not in allowed:
            return f"expected one of {', '.join(allowed)}, got {attr.text()}"
        return None

    return AttrKind(f"one of {'/'.join(allowed)}", lambda v: StringAttr(str(v)), lambda a: a.value,
                    (StringAttr,), check)


# ---- field definitions --------------------------------------------------------------------
REQUIRED = object()
SINGLE, OPTIONAL, VARIADIC = "single", "optional", "variadic"


class _Field:
    name: str = ""
    order_counter = 0

    def __init__(self):
        _Field.order_counter += 1
        self.order = _Field.order_counter

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name


class _ValueDef(_Field):
    """An operand or result group: single, optional or variadic, with an optional type constraint."""

    WHICH = ""

    def __init__(self, kind: str = SINGLE, constraint: type | tuple | None = None, doc: str = ""):
        super().__init__()
        self.kind = kind
        self.constraint = constraint
        self.doc = doc
        self.index = 0

    def _values(self, op: Operation) -> list:
        return op._operands if self.WHICH == "operand" else op.results

    def __get__(self, op: Operation | None, owner: type) -> Any:
        if op is None:
            return self
        start, size = op._segment(self.WHICH, self.index)
        values = self._values(op)
        if self.kind == SINGLE:
            return values[start]
        if self.kind == OPTIONAL:
            return values[start] if size else None
        return values[start:start + size]


class OperandDef(_ValueDef):
    WHICH = "operand"


class ResultDef(_ValueDef):
    WHICH = "result"


class AttrDef(_Field):
    def __init__(self, kind: AttrKind = ANY, default: Any = REQUIRED, doc: str = ""):
        super().__init__()
        self.kind = kind
        self.default = default
        self.doc = doc

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def __get__(self, op: Operation | None, owner: type) -> Any:
        if op is None:
            return self
        attr = op.attributes.get(self.name)
        if attr is None:
            if self.default is REQUIRED:
                raise IRError(f"'{op.name}' has no attribute '{self.name}'")
            return self.default
        return self.kind.from_attr(attr)

    def __set__(self, op: Operation, value: Any) -> None:
        if value is None and not self.required:
            op.attributes.pop(self.name, None)
        else:
            op.attributes[self.name] = self.kind.to_attr(value)


class RegionDef(_Field):
    def __init__(self, single_block: bool = True, doc: str = ""):
        super().__init__()
        self.single_block = single_block
        self.doc = doc
        self.index = 0

    def __get__(self, op: Operation | None, owner: type) -> Any:
        if op is None:
            return self
        return op.regions[self.index]


def operand(constraint: type | tuple | None = None, doc: str = "") -> Any:
    """A single operand; `constraint` is a Type class (or tuple) its type must be an instance of."""
    return OperandDef(SINGLE, constraint, doc)


def optional_operand(constraint: type | tuple | None = None, doc: str = "") -> Any:
    return OperandDef(OPTIONAL, constraint, doc)


def variadic_operand(constraint: type | tuple | None = None, doc: str = "") -> Any:
    return OperandDef(VARIADIC, constraint, doc)


def result(constraint: type | tuple | None = None, doc: str = "") -> Any:
    return ResultDef(SINGLE, constraint, doc)


def variadic_result(constraint: type | tuple | None = None, doc: str = "") -> Any:
    return ResultDef(VARIADIC, constraint, doc)


def attr(kind: AttrKind = ANY, default: Any = REQUIRED, doc: str = "") -> Any:
    """An attribute field; without `default` it is required."""
    return AttrDef(kind, default, doc)


def region(single_block: bool = True, doc: str = "") -> Any:
    return RegionDef(single_block, doc)


# ---- the Op base class ----------------------------------------------------------------------
class Op(Operation):
    """Base class of registered (declared) operations."""

    __slots__ = ()
    OP_NAME: str | None = None
    TRAITS: frozenset = frozenset()
    OPERANDS: tuple[OperandDef, ...] = ()
    RESULTS: tuple[ResultDef, ...] = ()
    ATTRS: tuple[AttrDef, ...] = ()
    REGIONS: tuple[RegionDef, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields: list[_Field] = []
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                if isinstance(value, _Field) and value not in fields:
                    fields.append(value)
        fields.sort(key=lambda f: f.order)
        reserved = set(Operation.__slots__) | {n for n in dir(Operation) if not n.startswith("__")}
        for f in fields:
            if f.name in reserved:
                raise TypeError(f"{cls.__name__}: field '{f.name}' would hide Operation.{f.name}; rename it")
        cls.OPERANDS = tuple(f for f in fields if isinstance(f, OperandDef))
        cls.RESULTS = tuple(f for f in fields if isinstance(f, ResultDef))
        cls.ATTRS = tuple(f for f in fields if isinstance(f, AttrDef))
        cls.REGIONS = tuple(f for f in fields if isinstance(f, RegionDef))
        for group in (cls.OPERANDS, cls.RESULTS, cls.REGIONS):
            for i, f in enumerate(group):
                f.index = i
        cls.TRAITS = frozenset(cls.TRAITS)

    # -- segments of variadic operands/results
    def _segment(self, which: str, index: int) -> tuple[int, int]:
        defs = self.OPERANDS if which == "operand" else self.RESULTS
        values = self._operands if which == "operand" else self.results
        n_var = sum(1 for d in defs if d.kind != SINGLE)
        if n_var == 0:
            return index, 1
        if n_var == 1:
            fixed = len(defs) - 1
            var_size = len(values) - fixed
            start = 0
            for d in defs[:index]:
                start += var_size if d.kind != SINGLE else 1
            return start, (var_size if defs[index].kind != SINGLE else 1)
        key = "operandSegmentSizes" if which == "operand" else "resultSegmentSizes"
        sizes = self.attributes.get(key)
        if sizes is None:
            raise IRError(f"'{self.name}' needs a {key} attribute")
        sizes = sizes.value
        return sum(sizes[:index]), sizes[index]

    @classmethod
    def build(cls, *operands: Any, result_types: Sequence[Type] | None = None,
              location: Location | None = None, regions: Sequence[Region] = (),
              attributes: dict[str, Attribute] | None = None, **attrs: Any) -> "Op":
        """Create the op (not inserted anywhere).

        Positional arguments are the operands in declaration order (a list for a variadic operand,
        None for an absent optional one); keyword arguments set attributes by field name (defaults fill
        the rest). Result types are inferred by `infer_types()` when not given.
        """
        flat: list[Value] = []
        sizes: list[int] = []
        if len(operands) > len(cls.OPERANDS):
            raise IRError(f"'{cls.OP_NAME}' takes {len(cls.OPERANDS)} operand groups, got {len(operands)}")
        for i, d in enumerate(cls.OPERANDS):
            v = operands[i] if i < len(operands) else ([] if d.kind == VARIADIC else None)
            if d.kind == SINGLE:
                if not isinstance(v, Value):
                    raise IRError(f"'{cls.OP_NAME}': operand '{d.name}' must be a Value, got {type(v).__name__}")
                flat.append(v)
                sizes.append(1)
            elif d.kind == OPTIONAL:
                if v is not None:
                    flat.append(v)
                sizes.append(0 if v is None else 1)
            else:
                vs = list(v)
                flat.extend(vs)
                sizes.append(len(vs))
        attributes = dict(attributes or {})
        by_name = {a.name: a for a in cls.ATTRS}
        for key, value in attrs.items():
            d = by_name.get(key)
            if d is None:
                raise IRError(f"'{cls.OP_NAME}' has no attribute field '{key}'")
            if value is not None:
                attributes[key] = d.kind.to_attr(value)
        for d in cls.ATTRS:
            if d.name not in attributes and not d.required and d.default is not None:
                attributes[d.name] = d.kind.to_attr(d.default)
        if sum(1 for d in cls.OPERANDS if d.kind != SINGLE) > 1:
            attributes["operandSegmentSizes"] = DenseArrayAttr(i32, sizes)
        op = object.__new__(cls)
        Operation.__init__(op, cls.OP_NAME, flat, (), attributes, regions, (),
                           location if location is not None else UNKNOWN_LOC)
        if result_types is None:
            result_types = op.infer_types()
        op._set_result_types(result_types)
        return op

    def _set_result_types(self, types: Sequence[Type]) -> None:
        from .core import OpResult
        self.results = [OpResult(t, self, i) for i, t in enumerate(types)]

    # -- hooks for subclasses
    def infer_types(self) -> list[Type]:
        """Result types from operand types and attributes (override for shape inference)."""
        if SameOperandsAndResultType in self.TRAITS and self._operands:
            return [self._operands[0].type] * len(self.RESULTS)
        raise IRError(f"'{self.name}' cannot infer its result types; pass result_types=")

    def verify_(self) -> None:
        """Op-specific verification; raise `self.error(...)` on failure."""

    def fold(self) -> list[Attribute | Value] | None:
        """Fold to constant attributes or existing values, or None."""
        return None

    @classmethod
    def canonicalization_patterns(cls) -> list:
        return []

    def error(self, message: str) -> "Exception":
        from .diagnostics import VerifyError
        return VerifyError(message, self)


# ---- dialects and the registry ----------------------------------------------------------------
_OPS: dict[str, type[Op]] = {}
_DIALECTS: dict[str, "Dialect"] = {}
# Which module defines a not-yet-loaded prefix is looked up in `fixflow._registry`, whose tables
# `fixflow.dialects` fills (every package under fixflow/dialects/); the core names no dialect module.


class Dialect:
    """A namespace of ops, types and attributes: `@dialect.op`, `@dialect.type`, `@dialect.attribute`
    register a class (types and attributes then parse and print as `!name.mnemonic<...>` and
    `#name.mnemonic<...>`)."""

    def __init__(self, name: str, description: str = ""):
        self.name = name
        self.description = description
        self.ops: dict[str, type[Op]] = {}
        #: `f(value_attr, type, location) -> Operation` that materializes folded constants
        self.constant_builder: Callable[[Attribute, Type, Location], Operation] | None = None
        _DIALECTS[name] = self

    def op(self, cls: type[Op]) -> type[Op]:
        if not cls.OP_NAME or not cls.OP_NAME.startswith(self.name + "."):
            raise IRError(f"op class {cls.__name__} must have OP_NAME '{self.name}.<name>'")
        self.ops[cls.OP_NAME] = cls
        _OPS[cls.OP_NAME] = cls
        return cls

    def type(self, cls: type) -> type:
        """Register a `DialectType` subclass (its DIALECT must be this dialect's name)."""
        if not (isinstance(cls, type) and issubclass(cls, DialectType)) or cls.DIALECT != self.name:
            raise IRError(f"type class {getattr(cls, '__name__', cls)} must subclass DialectType with "
                          f"DIALECT = '{self.name}'")
        register_dialect_type(cls)
        return cls

    def attribute(self, cls: type) -> type:
        """Register a `DialectAttribute` subclass (its DIALECT must be this dialect's name)."""
        from .attributes import DialectAttribute, register_dialect_attribute
        if not (isinstance(cls, type) and issubclass(cls, DialectAttribute)) or cls.DIALECT != self.name:
            raise IRError(f"attribute class {getattr(cls, '__name__', cls)} must subclass DialectAttribute "
                          f"with DIALECT = '{self.name}'")
        register_dialect_attribute(cls)
        return cls


def register_lazy_dialect(prefix: str, module: str) -> None:
    """Make `prefix.*` ops, types and attributes load `module` on first use."""
    _registry.add_dialect(prefix, module)


def load_dialect(prefix: str) -> "Dialect | None":
    """Import the module that defines dialect `prefix` (if known) and return the dialect."""
    if prefix not in _DIALECTS:
        module = _registry.dialect_module(prefix)
        if module is not None:
            importlib.import_module(module)
    return _DIALECTS.get(prefix)


def lookup_op_class(name: str) -> type[Op] | None:
    cls = _OPS.get(name)
    if cls is None:
        prefix = name.split(".", 1)[0]
        if prefix not in _DIALECTS and load_dialect(prefix) is not None:
            cls = _OPS.get(name)
    return cls


def lookup_type_class(dialect: str, name: str) -> type | None:
    """The registered `DialectType` class of `!dialect.name` (loading the dialect), or None."""
    from .types import lookup_dialect_type
    cls = lookup_dialect_type(dialect, name)
    if cls is None and dialect not in _DIALECTS and load_dialect(dialect) is not None:
        cls = lookup_dialect_type(dialect, name)
    return cls


def lookup_attribute_class(dialect: str, name: str) -> type | None:
    """The registered `DialectAttribute` class of `#dialect.name` (loading the dialect), or None."""
    from .attributes import lookup_dialect_attribute
    cls = lookup_dialect_attribute(dialect, name)
    if cls is None and dialect not in _DIALECTS and load_dialect(dialect) is not None:
        cls = lookup_dialect_attribute(dialect, name)
    return cls


def is_known_dialect(prefix: str) -> bool:
    return prefix in _DIALECTS or _registry.dialect_module(prefix) is not None


def registered_dialects() -> dict[str, Dialect]:
    """Every dialect, loading the ones not loaded yet (a package that cannot be imported is skipped)."""
    for prefix in _registry.dialect_prefixes():
        try:
            load_dialect(prefix)
        except ImportError:
            pass
    return dict(_DIALECTS)


__all__ = ["Trait", "Pure", "Terminator", "SameOperandsAndResultType", "IsolatedFromAbove", "Commutative",
           "ConstantLike", "SymbolTable", "NoTerminator", "AttrKind", "INT", "I32", "FLOAT", "BOOL", "STR",
           "I64_ARRAY", "F64_ARRAY", "TYPE", "ELEMENTS", "SYMBOL", "DICT", "ARRAY", "ANY", "Enum", "REQUIRED",
           "operand", "optional_operand", "variadic_operand", "result", "variadic_result", "attr", "region",
           "Op", "Dialect", "register_lazy_dialect", "load_dialect", "lookup_op_class", "lookup_type_class",
           "lookup_attribute_class", "registered_dialects"]
