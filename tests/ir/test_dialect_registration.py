"""Dialects register their own types and attributes; the registries are lazy and filled from outside
the core (fixflow/dialects/ is scanned, fixflow/passes lists its pass modules)."""

from __future__ import annotations

import numpy as np
import pytest

from fixflow import _registry
from fixflow.dialects.fix.types import FixedPointType
from fixflow.ir import (DialectAttribute, DialectType, IRError, ParseError, TensorType, parse_attribute,
                        parse_module, parse_type, print_module)
from fixflow.ir.attributes import DenseElementsAttr, OpaqueAttr
from fixflow.ir.opdef import Dialect, registered_dialects
from fixflow.ir.passes import registered_passes
from fixflow.ir.types import OpaqueType, numpy_dtype

toy = Dialect("toyreg", "a dialect of this test")


@toy.type
class BankType(DialectType):
    """`!toyreg.bank<3>`: an on-chip bank id."""

    __slots__ = ("index",)
    DIALECT = "toyreg"
    MNEMONICS = ("bank",)

    def __new__(cls, index: int):
        return super().__new__(cls, int(index))

    def _init(self, index: int) -> None:
        self.index = index

    def _args(self) -> tuple:
        return (self.index,)

    def _text(self) -> str:
        return f"!toyreg.bank<{self.index}>"

    def storage_dtype(self) -> np.dtype:
        return np.dtype(np.uint16)

    @classmethod
    def parse(cls, mnemonic: str, parameters: str | None) -> "BankType":
        if parameters is None or not parameters.strip().isdigit():
            raise ValueError(f"!toyreg.bank needs <index>, got {parameters!r}")
        return cls(int(parameters))


@toy.attribute
class RegionAttr(DialectAttribute):
    """`#toyreg.ddr<"weights", 4096>`: a named DDR region and its size."""

    __slots__ = ("name", "size")
    DIALECT = "toyreg"
    MNEMONICS = ("ddr",)

    def __init__(self, name: str, size: int):
        self.name, self.size = name, size

    def text(self) -> str:
        return f'#toyreg.ddr<"{self.name}", {self.size}>'

    def _key(self) -> tuple:
        return (self.name, self.size)

    @classmethod
    def parse(cls, mnemonic: str, parameters: str | None) -> "RegionAttr":
        name, size = (parameters or "").rsplit(",", 1)
        return cls(name.strip().strip('"'), int(size))


def test_a_registered_type_parses_and_prints():
    t = parse_type("tensor<4x!toyreg.bank<3>>")
    assert t is TensorType([4], BankType(3))
    assert str(t) == "tensor<4x!toyreg.bank<3>>"
    assert numpy_dtype(t.element_type) == np.uint16


def test_a_registered_attribute_parses_and_prints():
    a = parse_attribute('#toyreg.ddr<"weights", 4096>')
    assert a == RegionAttr("weights", 4096) and a.text() == '#toyreg.ddr<"weights", 4096>'


def test_bad_parameters_are_a_located_parse_error():
    with pytest.raises(ParseError, match=r"<type>:1:8: error: !toyreg.bank needs <index>"):
        parse_type("tensor<!toyreg.bank<x>>")


def test_unregistered_mnemonics_stay_opaque():
    assert isinstance(parse_type("!toyreg.other<1>"), OpaqueType)
    assert isinstance(parse_attribute("#toyreg.other<1>"), OpaqueAttr)


def test_registration_checks_the_dialect_name():
    class Wrong(DialectType):
        DIALECT = "elsewhere"
        MNEMONICS = ("w",)

    with pytest.raises(IRError, match="DIALECT = 'toyreg'"):
        toy.type(Wrong)


def test_module_round_trip_with_dialect_types_and_dense_constants():
    text = ('"builtin.module"() ({\n'
            '  %0 = "test.op"() {r = #toyreg.ddr<"a", 16>, '
            'v = dense<"0x0102"> : tensor<2x!fix.xint<8, 2>>} : () -> tensor<2x!toyreg.bank<1>>\n'
            '}) : () -> ()')
    m = parse_module(text, allow_unregistered=True)
    op = next(iter(m.regions[0].blocks[0].ops))
    assert isinstance(op.attributes["v"], DenseElementsAttr)
    assert op.attributes["v"].type.element_type is FixedPointType(8, 2)
    assert print_module(m) == text + "\n"


def test_the_fix_type_is_owned_by_its_dialect():
    assert "fix" in registered_dialects()
    assert parse_type("!fix.xuint<4, -1>") is FixedPointType(4, -1, False)
    with pytest.raises(ParseError, match=r"bad fixed-point type !fix.xint<40, 3>"):
        parse_type("!fix.xint<40, 3>")


def test_dialect_packages_are_found_by_directory():
    table = {p: _registry.dialect_module(p) for p in _registry.dialect_prefixes()}
    assert table["graph"] == "fixflow.dialects.graph" and table["fix"] == "fixflow.dialects.fix"
    assert table["func"] == "fixflow.dialects.builtin"
    assert {"builtin", "arith", "graph", "fix"} <= set(registered_dialects())


def test_passes_come_from_the_listed_modules():
    from fixflow.passes import PASS_MODULES
    passes = registered_passes()
    assert {"canonicalize", "cse", "fold-bn", "calibrate", "quantize", "legalize-fix"} <= set(passes)
    assert all(cls.__module__.startswith("fixflow.passes") for name, cls in passes.items()
               if name in ("canonicalize", "fold-bn", "quantize"))
    assert "fixflow.passes.generic" in PASS_MODULES
