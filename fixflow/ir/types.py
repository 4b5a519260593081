"""Types. All types are interned: constructing the same type twice returns the same object,
so types compare by identity and hash cheaply. Each type caches its text form."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


class Type:
    """Base class of all types. Subclasses define `_key` fields and `_text()`."""

    __slots__ = ("_str", "__weakref__")
    _cache: dict = {}

    def __new__(cls, *args):
        key = (cls, *args)
        inst = Type._cache.get(key)
        if inst is None:
            inst = object.__new__(cls)
            inst._str = None
            inst._init(*args)
            Type._cache[key] = inst
        return inst

    def _init(self, *args) -> None:
        pass

    def __str__(self) -> str:
        s = self._str
        if s is None:
            s = self._str = self._text()
        return s

    def __repr__(self) -> str:
        return f"<type {self}>"

    def _text(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def __reduce__(self):
        return (self.__class__, self._args())

    def _args(self) -> tuple:
        return ()


class IntegerType(Type):
    """`iN` (signless), `siN`, `uiN`."""

    __slots__ = ("width", "signedness")

    def __new__(cls, width: int, signedness: str = "signless"):
        return super().__new__(cls, width, signedness)

    def _init(self, width: int, signedness: str) -> None:
        if signedness not in ("signless", "signed", "unsigned"):
            raise ValueError(f"bad signedness {signedness!r}")
        self.width = width
        self.signedness = signedness

    def _text(self) -> str:
        prefix = {"signless": "i", "signed": "si", "unsigned": "ui"}[self.signedness]
        return f"{prefix}{self.width}"

    def _args(self) -> tuple:
        return (self.width, self.signedness)


class FloatType(Type):
    """`f16`, `bf16`, `f32`, `f64`."""

    __slots__ = ("kind",)
    KINDS = ("f16", "bf16", "f32", "f64")

    def __new__(cls, kind: str):
        return super().__new__(cls, kind)

    def _init(self, kind: str) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"bad float kind {kind!r}")
        self.kind = kind

    @property
    def width(self) -> int:
        return {"f16": 16, "bf16": 16, "f32": 32, "f64": 64}[self.kind]

    def _text(self) -> str:
        return self.kind

    def _args(self) -> tuple:
        return (self.kind,)


class IndexType(Type):
    __slots__ = ()

    def __new__(cls):
        return super().__new__(cls)

    def _text(self) -> str:
        return "index"


class NoneType(Type):
    __slots__ = ()

    def __new__(cls):
        return super().__new__(cls)

    def _text(self) -> str:
        return "none"


class DialectType(Type):
    """Base of the types a dialect defines, written `!dialect.mnemonic<parameters>`.

    A subclass sets DIALECT and MNEMONICS (the names it parses), keeps its parameters as interned
    type arguments (`__new__`/`_init`/`_args`, as every type), prints itself in `_text()` and parses
    in `parse(mnemonic, parameters)`; `@dialect.type` registers it with the parser. A type that can
    be a tensor element type says how numpy stores it (`storage_dtype`); dense constants of it print
    in MLIR's hex form.
    """

    __slots__ = ()
    DIALECT: str = ""
    MNEMONICS: tuple[str, ...] = ()

    @classmethod
    def parse(cls, mnemonic: str, parameters: str | None) -> "DialectType":
        """The type of `!DIALECT.mnemonic<parameters>` (parameters None without `<...>`); raise
        ValueError with a message for bad parameters."""
        raise NotImplementedError

    def storage_dtype(self) -> np.dtype:
        """The numpy dtype holding elements of this type."""
        raise ValueError(f"no numpy dtype for element type {self}")


_DIALECT_TYPES: dict[tuple[str, str], type[DialectType]] = {}


def register_dialect_type(cls: type[DialectType]) -> None:
    """Make the parser build `cls` for `!cls.DIALECT.m<...>`, m in cls.MNEMONICS (see `Dialect.type`)."""
    for m in cls.MNEMONICS:
        _DIALECT_TYPES[(cls.DIALECT, m)] = cls


def lookup_dialect_type(dialect: str, mnemonic: str) -> type[DialectType] | None:
    return _DIALECT_TYPES.get((dialect, mnemonic))


class OpaqueType(Type):
    """A type of an unregistered dialect, kept as text: `!dialect.body`."""

    __slots__ = ("dialect", "body")

    def __new__(cls, dialect: str, body: str):
        return super().__new__(cls, dialect, body)

    def _init(self, dialect: str, body: str) -> None:
        self.dialect = dialect
        self.body = body

    def _text(self) -> str:
        if not self.body:
            return f"!{self.dialect}<>"  # a bare `!name` would be a type alias
        return f"!{self.dialect}{'' if self.body.startswith('<') else '.'}{self.body}"

    def _args(self) -> tuple:
        return (self.dialect, self.body)


DYNAMIC = -1


class TensorType(Type):
    """Ranked tensor `tensor<1x3x?xf32>`; a dynamic dimension is -1 (printed `?`)."""

    __slots__ = ("shape", "element_type")

    def __new__(cls, shape: Iterable[int], element_type: Type):
        return super().__new__(cls, tuple(int(d) for d in shape), element_type)

    def _init(self, shape: tuple, element_type: Type) -> None:
        self.shape = shape
        self.element_type = element_type

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def num_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def has_static_shape(self) -> bool:
        return all(d >= 0 for d in self.shape)

    def with_shape(self, shape: Sequence[int]) -> "TensorType":
        return TensorType(shape, self.element_type)

    def with_element_type(self, element_type: Type) -> "TensorType":
        return TensorType(self.shape, element_type)

    def _text(self) -> str:
        dims = "".join(("?" if d < 0 else str(d)) + "x" for d in self.shape)
        return f"tensor<{dims}{self.element_type}>"

    def _args(self) -> tuple:
        return (self.shape, self.element_type)


class UnrankedTensorType(Type):
    __slots__ = ("element_type",)

    def __new__(cls, element_type: Type):
        return super().__new__(cls, element_type)

    def _init(self, element_type: Type) -> None:
        self.element_type = element_type

    def _text(self) -> str:
        return f"tensor<*x{self.element_type}>"

    def _args(self) -> tuple:
        return (self.element_type,)


class FunctionType(Type):
    """`(inputs) -> results`."""

    __slots__ = ("inputs", "results")

    def __new__(cls, inputs: Iterable[Type], results: Iterable[Type]):
        return super().__new__(cls, tuple(inputs), tuple(results))

    def _init(self, inputs: tuple, results: tuple) -> None:
        self.inputs = inputs
        self.results = results

    def _text(self) -> str:
        return function_type_text(self.inputs, self.results)

    def _args(self) -> tuple:
        return (self.inputs, self.results)


def function_type_text(inputs: Sequence[Type], results: Sequence[Type]) -> str:
    ins = ", ".join(map(str, inputs))
    if len(results) == 1 and not isinstance(results[0], FunctionType):
        return f"({ins}) -> {results[0]}"
    return f"({ins}) -> ({', '.join(map(str, results))})"


i1 = IntegerType(1)
i8 = IntegerType(8)
i16 = IntegerType(16)
i32 = IntegerType(32)
i64 = IntegerType(64)
f16 = FloatType("f16")
bf16 = FloatType("bf16")
f32 = FloatType("f32")
f64 = FloatType("f64")
index = IndexType()

_NP_DTYPES = {
    "f16": np.float16, "f32": np.float32, "f64": np.float64,
    "i1": np.bool_, "i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64,
    "si8": np.int8, "si16": np.int16, "si32": np.int32, "si64": np.int64,
    "ui8": np.uint8, "ui16": np.uint16, "ui32": np.uint32, "ui64": np.uint64,
}


def numpy_dtype(element_type: Type) -> np.dtype:
    """The numpy dtype that stores elements of `element_type` (a dialect type: its `storage_dtype()`)."""
    if isinstance(element_type, DialectType):
        return element_type.storage_dtype()
    try:
        return np.dtype(_NP_DTYPES[str(element_type)])
    except KeyError:
        raise ValueError(f"no numpy dtype for element type {element_type}") from None


def element_type_for(dtype: np.dtype) -> Type:
    """The builtin element type for a numpy dtype."""
    dtype = np.dtype(dtype)
    table = {np.dtype(np.float16): f16, np.dtype(np.float32): f32, np.dtype(np.float64): f64,
             np.dtype(np.bool_): i1, np.dtype(np.int8): i8, np.dtype(np.int16): i16,
             np.dtype(np.int32): i32, np.dtype(np.int64): i64,
             np.dtype(np.uint8): IntegerType(8, "unsigned"), np.dtype(np.uint16): IntegerType(16, "unsigned"),
             np.dtype(np.uint32): IntegerType(32, "unsigned"), np.dtype(np.uint64): IntegerType(64, "unsigned")}
    try:
        return table[dtype]
    except KeyError:
        raise ValueError(f"no element type for numpy dtype {dtype}") from None
