"""Attributes: immutable values attached to operations, printed in MLIR syntax.

Dense tensors are numpy-backed (`DenseElementsAttr`, `DenseResourceElementsAttr`); weights are
never turned into per-element Python objects.
"""

from __future__ import annotations

import math
import re
import struct
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .diagnostics import FixflowError
from .types import DialectType, FloatType, TensorType, Type, element_type_for, f64, i1, i64, numpy_dtype


class Attribute:
    """Base class of attributes. Attributes are immutable and compare by value."""

    __slots__ = ()

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return f"<attr {self.text()}>"

    def text(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def _key(self) -> tuple:  # pragma: no cover - overridden
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash((type(self), self._key()))


_STR_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t"}


def quote_string(s: str) -> str:
    """Quote a string the way MLIR prints string literals (non-printables as `\\XX`)."""
    if s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'
    out = []
    for ch in s:
        if ch in _STR_ESCAPES:
            out.append(_STR_ESCAPES[ch])
        elif ch.isprintable() and ord(ch) < 128:
            out.append(ch)
        elif "\udc80" <= ch <= "\udcff":  # a byte that is not UTF-8, kept by the parser (surrogateescape)
            out.append(f"\\{ord(ch) - 0xDC00:02X}")
        else:
            out.extend(f"\\{b:02X}" for b in ch.encode("utf-8"))
    return '"' + "".join(out) + '"'


class UnitAttr(Attribute):
    __slots__ = ()

    def text(self) -> str:
        return "unit"

    def _key(self) -> tuple:
        return ()


UNIT = UnitAttr()


class BoolAttr(Attribute):
    __slots__ = ("value",)

    def __init__(self, value: bool):
        self.value = bool(value)

    def text(self) -> str:
        return "true" if self.value else "false"

    def _key(self) -> tuple:
        return (self.value,)


def int_text(value: int) -> str:
    """Decimal text of an int of any size (Python's str() refuses more than 4,300 digits)."""
    if value.bit_length() < 13_000:
        return str(value)
    digits, rest, chunk = [], abs(value), 10 ** 3000
    while rest:
        rest, low = divmod(rest, chunk)
        digits.append(str(low).zfill(3000) if rest else str(low))
    return ("-" if value < 0 else "") + "".join(reversed(digits))


class IntegerAttr(Attribute):
    """`5 : i64`."""

    __slots__ = ("value", "type")

    def __init__(self, value: int, type: Type = i64):
        self.value = int(value)
        self.type = type

    def text(self) -> str:
        return f"{int_text(self.value)} : {self.type}"

    def _key(self) -> tuple:
        return (self.value, self.type)


def format_float(value: float, type: Type = f64) -> str:
    """A float literal MLIR accepts that reads back to the same value (hex bits for inf/nan)."""
    if math.isfinite(value):
        r = repr(float(value))
        if "e" in r:
            mant, exp = r.split("e")
            if "." not in mant:
                mant += ".0"
            return f"{mant}e{exp}"
        return r
    if isinstance(type, FloatType) and type.kind == "f32":
        return "0x%08X" % struct.unpack("<I", struct.pack("<f", value))[0]
    if isinstance(type, FloatType) and type.kind == "f16":
        return "0x%04X" % int(np.array(value, np.float16).view(np.uint16))
    if isinstance(type, FloatType) and type.kind == "bf16":
        return "0x%04X" % (struct.unpack("<I", struct.pack("<f", value))[0] >> 16)
    return "0x%016X" % struct.unpack("<Q", struct.pack("<d", value))[0]


class FloatAttr(Attribute):
    """`1.5 : f32`; the value is stored rounded to the type's precision."""

    __slots__ = ("value", "type")

    def __init__(self, value: float, type: Type = f64):
        if isinstance(type, FloatType) and type.kind == "f32":
            value = float(np.float32(value))
        self.value = float(value)
        self.type = type

    def text(self) -> str:
        return f"{format_float(self.value, self.type)} : {self.type}"

    def _key(self) -> tuple:
        return (self.value if not math.isnan(self.value) else "nan", self.type)


class _ValueAttr(Attribute):
    """An attribute that wraps one immutable Python value."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def _key(self) -> tuple:
        return (self.value,)


class StringAttr(_ValueAttr):
    __slots__ = ()

    def text(self) -> str:
        return quote_string(self.value)


class TypedStringAttr(StringAttr):
    """`"s" : i32`: a string with a type (MLIR allows one; fixflow keeps it so the text round-trips)."""

    __slots__ = ("type",)

    def __init__(self, value: str, type: Type):
        super().__init__(value)
        self.type = type

    def text(self) -> str:
        return f"{quote_string(self.value)} : {self.type}"

    def _key(self) -> tuple:
        return (self.value, self.type)


class TypeAttr(_ValueAttr):
    __slots__ = ()

    def text(self) -> str:
        return str(self.value)


_BARE_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_$.]*\Z")


def symbol_text(name: str) -> str:
    return "@" + (name if _BARE_ID.match(name) else quote_string(name))


class SymbolRefAttr(Attribute):
    """`@root` or `@root::@nested`."""

    __slots__ = ("root", "nested")

    def __init__(self, root: str, nested: Sequence[str] = ()):
        self.root = root
        self.nested = tuple(nested)

    def text(self) -> str:
        return "::".join(symbol_text(n) for n in (self.root, *self.nested))

    def _key(self) -> tuple:
        return (self.root, self.nested)


class ArrayAttr(Attribute):
    __slots__ = ("value",)

    def __init__(self, value: Iterable[Attribute]):
        self.value = tuple(value)

    def text(self) -> str:
        return "[" + ", ".join(a.text() for a in self.value) + "]"

    def _key(self) -> tuple:
        return self.value

    def __len__(self) -> int:
        return len(self.value)

    def __getitem__(self, i):
        return self.value[i]

    def __iter__(self):
        return iter(self.value)


class DenseArrayAttr(Attribute):
    """`array<i64: 1, 2>`: a 1-D array of integers or floats stored as a tuple."""

    __slots__ = ("element_type", "value")

    def __init__(self, element_type: Type, value: Iterable):
        self.element_type = element_type
        if isinstance(element_type, FloatType):
            if element_type.kind == "f32":
                self.value = tuple(float(np.float32(v)) for v in value)
            else:
                self.value = tuple(float(v) for v in value)
        elif element_type == i1:
            self.value = tuple(bool(v) for v in value)
        else:
            self.value = tuple(int(v) for v in value)

    def text(self) -> str:
        if not self.value:
            return f"array<{self.element_type}>"
        if isinstance(self.element_type, FloatType):
            body = ", ".join(format_float(v, self.element_type) for v in self.value)
        elif self.element_type == i1:
            body = ", ".join("true" if v else "false" for v in self.value)
        else:
            body = ", ".join(map(str, self.value))
        return f"array<{self.element_type}: {body}>"

    def _key(self) -> tuple:
        if isinstance(self.element_type, FloatType):
            return (self.element_type, tuple("nan" if math.isnan(v) else v for v in self.value))
        return (self.element_type, self.value)

    def __len__(self) -> int:
        return len(self.value)

    def __getitem__(self, i):
        return self.value[i]

    def __iter__(self):
        return iter(self.value)


class DictionaryAttr(Attribute):
    __slots__ = ("value",)

    def __init__(self, value: Mapping[str, Attribute]):
        self.value = dict(value)

    def text(self) -> str:
        return "{" + ", ".join(_named_attr_text(k, v) for k, v in self.value.items()) + "}"

    def _key(self) -> tuple:
        return tuple(sorted(self.value.items(), key=lambda kv: kv[0]))


def attr_name_text(name: str) -> str:
    return name if _BARE_ID.match(name) else quote_string(name)


def _named_attr_text(name: str, attr: Attribute) -> str:
    key = attr_name_text(name)
    return key if isinstance(attr, UnitAttr) else f"{key} = {attr.text()}"


def attr_dict_text(attrs: Mapping[str, Attribute]) -> str:
    """`{a = 1 : i64, b}` (an empty dict gives an empty string)."""
    if not attrs:
        return ""
    return "{" + ", ".join(_named_attr_text(k, v) for k, v in attrs.items()) + "}"


def _elements_key(type: Type, array: np.ndarray) -> tuple:
    return (type, array.dtype.str, array.shape, array.tobytes())


def _format_elements(array: np.ndarray, element_type: Type) -> str:
    if array.ndim == 0:
        return _format_scalar(array.item(), element_type)
    return "[" + ", ".join(_format_elements(sub, element_type) for sub in array) + "]"


def _format_scalar(value: Any, element_type: Type) -> str:
    if isinstance(element_type, FloatType):
        return format_float(float(value), element_type)
    if element_type == i1:
        return "true" if value else "false"
    return str(int(value))


class DenseElementsAttr(Attribute):
    """`dense<...> : tensor<...>` backed by a numpy array (splat when all elements are equal)."""

    __slots__ = ("type", "_array", "_hash")
    HEX_THRESHOLD = 64

    def __init__(self, type: TensorType, array: np.ndarray | float | int):
        self.type = type
        arr = np.asarray(array, dtype=numpy_dtype(type.element_type))
        if arr.shape != type.shape:
            if arr.size == 1:
                arr = np.broadcast_to(arr.reshape(()), type.shape)
            else:
                raise ValueError(f"dense elements of shape {arr.shape} do not match type {type}")
        arr = np.array(arr, copy=True)
        arr.flags.writeable = False
        self._array = arr
        self._hash = None

    @classmethod
    def from_array(cls, array: np.ndarray) -> "DenseElementsAttr":
        array = np.asarray(array)
        return cls(TensorType(array.shape, element_type_for(array.dtype)), array)

    @property
    def array(self) -> np.ndarray:
        """The elements (read-only numpy array)."""
        return self._array

    def is_splat(self) -> bool:
        a = self._array
        return a.size > 0 and bool((a == a.flat[0]).all())

    def text(self) -> str:
        a = self._array
        if isinstance(self.type.element_type, DialectType):
            # MLIR only takes element lists for builtin element types; a hex string is valid for any type
            data = a.flat[:1] if self.is_splat() else a
            body = '"0x' + np.ascontiguousarray(data).astype(a.dtype.newbyteorder("<")).tobytes().hex().upper() + '"'
        elif a.size == 0:
            body = ""  # MLIR's form for any empty shape (`[]` only fits rank 1)
        elif self.is_splat() and a.size > 1:
            body = _format_scalar(a.flat[0], self.type.element_type)
        elif a.size > self.HEX_THRESHOLD and self.type.element_type != i1:
            body = '"0x' + np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes().hex().upper() + '"'
        else:
            body = _format_elements(a, self.type.element_type)
        return f"dense<{body}> : {self.type}"

    def _key(self) -> tuple:
        return _elements_key(self.type, self._array)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash((DenseElementsAttr, self.type, self._array.tobytes()))
        return self._hash


class ResourceBlob:
    """Raw bytes of a `dense_resource`; decoded to numpy lazily, without per-element objects."""

    __slots__ = ("_data", "_hex", "alignment")

    def __init__(self, data: bytes | np.ndarray | None = None, *, hex_text: str | None = None,
                 alignment: int = 4):
        if isinstance(data, np.ndarray):
            data = np.ascontiguousarray(data).tobytes()
        self._data = data
        self._hex = hex_text
        self.alignment = alignment

    @classmethod
    def from_hex(cls, hex_text: str) -> "ResourceBlob":
        """From MLIR's `"0x<alignment:4 bytes LE><data>"` text."""
        return cls(hex_text=hex_text)

    @property
    def data(self) -> bytes:
        if self._data is None:
            raw = bytes.fromhex(self._hex[2:])
            if len(raw) < 4:
                raise ValueError("resource blob is shorter than its 4-byte alignment prefix")
            self.alignment = int.from_bytes(raw[:4], "little")
            self._data = raw[4:]
            self._hex = None
        return self._data

    def hex(self) -> str:
        if self._hex is not None:
            return self._hex
        return "0x" + self.alignment.to_bytes(4, "little").hex().upper() + self._data.hex().upper()

    def hex_length(self) -> int:
        """len(self.hex()), without building the text."""
        if self._hex is not None:
            return len(self._hex)
        return 10 + 2 * len(self._data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ResourceBlob) and self.data == other.data

    def __hash__(self) -> int:
        return hash(self.data)


class MissingResourceError(FixflowError, ValueError):
    """A `dense_resource` whose data is absent: the text left it out (MLIR allows that), typically IR
    printed with elided data (`dense_resource<__elided__>`, `--mlir-elide-*-if-larger`)."""

    def __init__(self, attr: "DenseResourceElementsAttr"):
        if attr.key == "__elided__":
            why = ("its elements were elided when the IR was printed (--mlir-elide-elementsattrs-if-larger, "
                   "or IR printed during a pass pipeline); print the IR again without eliding to compute with it")
        else:
            why = ("it is missing from the dialect_resources section (IR printed with "
                   "--mlir-elide-resource-strings-if-larger, or during a pass pipeline, leaves blobs out); "
                   "print the IR again without eliding to compute with it")
        super().__init__(f"dense_resource<{attr.key}> : {attr.type} has no data: {why}")


class DenseResourceElementsAttr(Attribute):
    """`dense_resource<key> : tensor<...>`: a tensor whose bytes live in the module's
    `{-# dialect_resources: { builtin: { key: "0x..." } } #-}` section."""

    __slots__ = ("key", "type", "blob", "_array")

    def __init__(self, key: str, type: TensorType, blob: ResourceBlob | np.ndarray | bytes | None = None):
        self.key = key
        self.type = type
        if blob is not None and not isinstance(blob, ResourceBlob):
            if isinstance(blob, np.ndarray):
                blob = np.ascontiguousarray(blob, dtype=numpy_dtype(type.element_type))
                if blob.size != type.num_elements:
                    raise ValueError(f"resource {key}: {blob.size} elements do not match type {type}")
            blob = ResourceBlob(blob)
        self.blob = blob
        self._array = None

    @classmethod
    def from_array(cls, key: str, array: np.ndarray, element_type: Type | None = None) -> "DenseResourceElementsAttr":
        array = np.asarray(array)
        et = element_type or element_type_for(array.dtype)
        return cls(key, TensorType(array.shape, et), np.ascontiguousarray(array, dtype=numpy_dtype(et)))

    @property
    def array(self) -> np.ndarray:
        """The elements as a read-only numpy array of the tensor's shape."""
        if self._array is None:
            if self.blob is None:
                raise MissingResourceError(self)
            dtype = numpy_dtype(self.type.element_type).newbyteorder("<")
            data = self.blob.data
            expected = self.type.num_elements * dtype.itemsize
            if len(data) != expected:
                raise ValueError(f"dense_resource<{self.key}>: blob has {len(data)} bytes, "
                                 f"type {self.type} needs {expected}")
            arr = np.frombuffer(data, dtype=dtype).reshape(self.type.shape)
            self._array = arr.astype(arr.dtype.newbyteorder("="), copy=False)
        return self._array

    def text(self) -> str:
        return f"dense_resource<{resource_key_text(self.key)}> : {self.type}"

    def _key(self) -> tuple:
        return (self.key, self.type, self.blob)

    def __hash__(self) -> int:
        return hash((self.key, self.type))


def resource_key_text(key: str) -> str:
    return key if _BARE_ID.match(key) else quote_string(key)


class DialectAttribute(Attribute):
    """Base of the attributes a dialect defines, written `#dialect.mnemonic<parameters>`.

    A subclass sets DIALECT and MNEMONICS, keeps its (immutable) parameters, prints itself in
    `text()`, compares by `_key()` and parses in `parse(mnemonic, parameters)`;
    `@dialect.attribute` registers it with the parser.
    """

    __slots__ = ()
    DIALECT: str = ""
    MNEMONICS: tuple[str, ...] = ()

    @classmethod
    def parse(cls, mnemonic: str, parameters: str | None) -> "DialectAttribute":
        """The attribute of `#DIALECT.mnemonic<parameters>` (parameters None without `<...>`); raise
        ValueError with a message for bad parameters."""
        raise NotImplementedError


_DIALECT_ATTRIBUTES: dict[tuple[str, str], type[DialectAttribute]] = {}


def register_dialect_attribute(cls: type[DialectAttribute]) -> None:
    """Make the parser build `cls` for `#cls.DIALECT.m<...>`, m in cls.MNEMONICS (see `Dialect.attribute`)."""
    for m in cls.MNEMONICS:
        _DIALECT_ATTRIBUTES[(cls.DIALECT, m)] = cls


def lookup_dialect_attribute(dialect: str, mnemonic: str) -> type[DialectAttribute] | None:
    return _DIALECT_ATTRIBUTES.get((dialect, mnemonic))


class OpaqueAttr(Attribute):
    """An attribute of an unregistered dialect (`#dialect.body`), kept as text."""

    __slots__ = ("dialect", "body")

    def __init__(self, dialect: str, body: str):
        self.dialect = dialect
        self.body = body

    def text(self) -> str:
        if not self.body:
            return f"#{self.dialect}<>"  # a bare `#name` would be an attribute alias
        if self.dialect == "builtin":  # affine_map<...>, affine_set<...>, strided<...> print bare
            return self.body
        return f"#{self.dialect}{'' if self.body.startswith('<') else '.'}{self.body}"

    def _key(self) -> tuple:
        return (self.dialect, self.body)


class LocationAttr(_ValueAttr):
    """Wraps a Location (used for `loc(...)` in attribute position)."""

    __slots__ = ()

    def text(self) -> str:
        return self.value.print()


def to_attribute(value: Any) -> Attribute:
    """Convert a plain Python value to the obvious attribute (ints -> i64, floats -> f64,
    lists of ints -> `array<i64>`, numpy arrays -> dense elements)."""
    if isinstance(value, Attribute):
        return value
    if isinstance(value, Type):
        return TypeAttr(value)
    if isinstance(value, bool):
        return BoolAttr(value)
    if isinstance(value, (int, np.integer)):
        return IntegerAttr(int(value), i64)
    if isinstance(value, (float, np.floating)):
        return FloatAttr(float(value), f64)
    if isinstance(value, str):
        return StringAttr(value)
    if isinstance(value, np.ndarray):
        return DenseElementsAttr.from_array(value)
    if isinstance(value, Mapping):
        return DictionaryAttr({k: to_attribute(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
            return DenseArrayAttr(i64, value)
        if value and all(isinstance(v, (float, np.floating)) for v in value):
            return DenseArrayAttr(f64, value)
        return ArrayAttr(to_attribute(v) for v in value)
    if value is None:
        return UNIT
    raise TypeError(f"cannot convert {type(value).__name__} to an attribute")


def from_attribute(attr: Attribute) -> Any:
    """The natural Python value of an attribute (inverse of `to_attribute` where possible)."""
    if isinstance(attr, (BoolAttr, IntegerAttr, FloatAttr, StringAttr, TypeAttr)):
        return attr.value
    if isinstance(attr, DenseArrayAttr):
        return attr.value
    if isinstance(attr, ArrayAttr):
        return [from_attribute(a) for a in attr.value]
    if isinstance(attr, DictionaryAttr):
        return {k: from_attribute(v) for k, v in attr.value.items()}
    if isinstance(attr, (DenseElementsAttr, DenseResourceElementsAttr)):
        return attr.array
    if isinstance(attr, SymbolRefAttr):
        return attr.root if not attr.nested else attr.text()
    if isinstance(attr, UnitAttr):
        return True
    return attr


__all__ = [name for name in dir() if name.endswith("Attr") or name in (
    "Attribute", "DialectAttribute", "ResourceBlob", "UNIT", "to_attribute", "from_attribute", "quote_string",
    "format_float",
    "attr_dict_text", "symbol_text")]
