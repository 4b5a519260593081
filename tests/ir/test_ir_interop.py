"""Interop with the real tools: fixflow's text is accepted by `mlir-opt-22` and `xdsl-opt`, and fixflow
parses what `mlir-opt-22 --mlir-print-op-generic` prints (properties `<{...}>`, `#loc` aliases)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from fixflow.dialects.arith import AddIOp, ConstantOp
from fixflow.dialects.builtin import FuncOp, ModuleOp, ReturnOp
from fixflow.ir import (UNKNOWN_LOC, Block, Builder, CallSiteLoc, FileLineColLoc, FusedLoc, NameLoc, Operation,
                        Region, parse_module, print_module)
from fixflow.ir.attributes import (UNIT, ArrayAttr, DenseArrayAttr, DenseElementsAttr, DenseResourceElementsAttr,
                                   DictionaryAttr, FloatAttr, IntegerAttr, StringAttr, SymbolRefAttr, TypeAttr)
from fixflow.dialects.fix.types import FixedPointType
from fixflow.ir.types import TensorType, f16, f32, i8, i32, i64

MLIR_OPT = shutil.which("mlir-opt-22")
XDSL_OPT = shutil.which("xdsl-opt")
pytestmark = pytest.mark.mlir
needs_mlir = pytest.mark.skipif(MLIR_OPT is None, reason="mlir-opt-22 (Debian mlir-22-tools) is not installed")
needs_xdsl = pytest.mark.skipif(XDSL_OPT is None, reason="xdsl-opt is not installed")


def _run(tool: str, text: str, *flags: str) -> str:
    proc = subprocess.run([tool, "--allow-unregistered-dialect", *flags], input=text, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, f"{tool} rejected the text:\n{proc.stderr}\n--- text ---\n{text}"
    return proc.stdout


def network_module(fixed_point_dense: bool = True) -> ModuleOp:
    """A small network-like module: fixed-point types, weights as dense_resource, nested regions with
    block arguments, multiple results, registered func/arith ops and every kind of location."""
    m = ModuleOp.empty(FileLineColLoc("net.py", 1, 1))
    t = TensorType([1, 4], FixedPointType(8, 3))
    f = FuncOp.create_function("main", [t, i32], [i32], location=NameLoc("main", FileLineColLoc("net.py", 2, 1)))
    m.body.append(f)
    b = Builder.at_end(f.body)
    w = DenseResourceElementsAttr.from_array("conv.weight", np.arange(8, dtype=np.float32).reshape(2, 4) / 4)
    q = DenseResourceElementsAttr.from_array("conv.qweight", np.array([[-128, 1, 2, 127]]), FixedPointType(8, 3))
    attrs = {"weight": w, "qweight": q, "stride": DenseArrayAttr(i64, [1, 1]), "alpha": FloatAttr(0.1, f32),
             "half": FloatAttr(float("inf"), f16), "name": StringAttr('conv "1"\n'), "flag": UNIT,
             "callee": SymbolRefAttr("main"), "ty": TypeAttr(FixedPointType(4, -2, False)),
             "meta": DictionaryAttr({"list": ArrayAttr([IntegerAttr(-3, i8), StringAttr("x")])}),
             "small": DenseElementsAttr.from_array(np.array([[1.5, -2.0]], np.float32)),
             "big": DenseElementsAttr.from_array(np.arange(80, dtype=np.int8))}
    if fixed_point_dense:
        attrs["fix"] = DenseElementsAttr(t, np.array([[1, -2, 3, 4]]))
        attrs["fix_splat"] = DenseElementsAttr(t, np.full((1, 4), 5))
    c = b.insert(Operation("test.conv", [f.args[0]], [t, t], attrs,
                           location=NameLoc("features.0", FileLineColLoc("net.py", 3, 5))))
    k = b.create(ConstantOp, value=IntegerAttr(7, i32), location=FusedLoc([FileLineColLoc("a.py", 1, 1),
                                                                          NameLoc("k")]))
    s = b.create(AddIOp, f.args[1], k.result, location=CallSiteLoc(NameLoc("add"), FileLineColLoc("b.py", 9, 2)))
    r = b.insert(Operation("test.region", [c.results[1]], [i32, i32], regions=[Region([Block([t])]), Region()]))
    r.results[0].name_hint = "pair"
    body = Builder.at_end(r.regions[0].blocks[0])
    body.insert(Operation("test.yield", [r.regions[0].blocks[0].args[0], s.result], []))
    b.create(ReturnOp, [r.results[1]])
    m.verify()
    return m


CFG_MODULE = '''"builtin.module"() ({
  "test.cfg"() ({
    %0 = "test.entry"() : () -> i32
    "test.br"()[^bb2] : () -> ()
  ^bb1:
    %1 = "test.use"(%0, %late) : (i32, i32) -> i32
    "test.ret"(%1) : (i32) -> ()
  ^bb2:
    %late = "test.late"() : () -> i32
    "test.cond_br"()[^bb1, ^bb2] : () -> ()
  }) : () -> ()
}) : () -> ()
'''


def _structure(m) -> list:
    """Names, result/operand types, attributes (as values, order-free) and resource data of every op."""
    out = []
    for op in m.walk():
        attrs = {}
        for k, v in op.attributes.items():
            if isinstance(v, DenseResourceElementsAttr):
                attrs[k] = (str(v.type), v.array.tobytes())
            else:
                attrs[k] = v
        out.append((op.name, [str(t) for t in op.operand_types], [str(r.type) for r in op.results], attrs,
                    len(op.regions), [len(r.blocks) for r in op.regions]))
    return out


# ---- fixflow -> mlir-opt / xdsl-opt ------------------------------------------------------------------------
@needs_mlir
@pytest.mark.parametrize("locations", [False, True])
def test_mlir_opt_accepts_fixflow_output(locations):
    for text in (print_module(network_module(), print_locations=locations),
                 print_module(parse_module(CFG_MODULE, allow_unregistered=True), print_locations=locations)):
        _run(MLIR_OPT, text)


@needs_xdsl
@pytest.mark.parametrize("locations", [False, True])
def test_xdsl_opt_accepts_fixflow_output(locations):
    # xDSL only takes dense<...> of builtin element types: fixed-point constants go through dense_resource
    for text in (print_module(network_module(fixed_point_dense=False), print_locations=locations),
                 print_module(parse_module(CFG_MODULE, allow_unregistered=True), print_locations=locations)):
        _run(XDSL_OPT, text)


# ---- mlir-opt -> fixflow ----------------------------------------------------------------------------------
@needs_mlir
@pytest.mark.parametrize("debuginfo", [False, True])
def test_fixflow_parses_mlir_generic_output(debuginfo):
    m = network_module()
    flags = ["--mlir-print-op-generic"] + (["--mlir-print-debuginfo"] if debuginfo else [])
    out = _run(MLIR_OPT, print_module(m, print_locations=True), *flags)
    assert "<{" in out  # MLIR prints inherent attributes as properties
    if debuginfo:
        assert "#loc" in out and out.index("#loc1 =") > out.index('"builtin.module"')  # aliases after the ops
    again = parse_module(out, "from-mlir.mlir", allow_unregistered=True)
    again.verify()
    got, want = _structure(again), _structure(m)
    for g, w in zip(got, want):
        g[3].pop("overflowFlags", None)  # arith.addi gains its default property
        assert g == w
    assert len(got) == len(want)
    if debuginfo:
        assert [op.location for op in again.walk()] == [op.location for op in m.walk()]
    # and fixflow's own text of it goes back through mlir-opt
    _run(MLIR_OPT, print_module(again, print_locations=True))


@needs_mlir
def test_fixflow_parses_mlir_output_of_custom_syntax():
    src = '''
module {
  func.func @f(%a: i32, %b: i32) -> (i32, i32) attributes {note = "x"} {
    %c = arith.constant dense<[1, 2]> : tensor<2xi32>
    %s = arith.addi %a, %b : i32
    %m = arith.muli %s, %s : i32
    cf.br ^bb1(%m : i32)
  ^bb1(%x: i32):
    return %x, %s : i32, i32
  }
}
'''
    out = _run(MLIR_OPT, src, "--mlir-print-op-generic", "--mlir-print-debuginfo")
    m = parse_module(out, "custom.mlir", allow_unregistered=True)
    names = [op.name for op in m.walk()]
    assert names == ["builtin.module", "func.func", "arith.constant", "arith.addi", "arith.muli", "cf.br",
                     "func.return"]
    f = m.body.first_op
    assert f.attributes["sym_name"] == StringAttr("f") and f.attributes["note"] == StringAttr("x")
    entry, bb1 = f.regions[0].blocks
    br = entry.last_op
    assert br.successors == [bb1] and br.operands == [entry.ops.__next__().next_op.next_op.result]
    assert all(op.location.file_line_col().filename == "-" or op.location.file_line_col() is not None
               for op in m.walk() if op.name != "builtin.module")
    assert f.location.file_line_col().line == 3
    assert print_module(parse_module(print_module(m), allow_unregistered=True)) == print_module(m)


@needs_mlir
def test_cfg_round_trips_through_mlir_opt():
    m = parse_module(CFG_MODULE, allow_unregistered=True)
    out = _run(MLIR_OPT, print_module(m), "--mlir-print-op-generic")
    again = parse_module(out, allow_unregistered=True)
    assert print_module(again, name_hints=False) == print_module(m, name_hints=False)  # MLIR drops names


# ---- random modules through mlir-opt -------------------------------------------------------------------------
def mlir_canonical_location(loc):
    """The location as MLIR stores it: `fused` flattened, without unknowns and duplicates, and a fused
    location of zero or one location replaced by unknown or that location (MLIR's FusedLoc::get)."""
    if isinstance(loc, NameLoc):
        return NameLoc(loc.name, mlir_canonical_location(loc.child) if loc.child is not None else None)
    if isinstance(loc, CallSiteLoc):
        return CallSiteLoc(mlir_canonical_location(loc.callee), mlir_canonical_location(loc.caller))
    if isinstance(loc, FusedLoc):
        flat = []
        for sub in map(mlir_canonical_location, loc.locations):
            for item in (sub.locations if isinstance(sub, FusedLoc) else (sub,)):
                if item != UNKNOWN_LOC and item not in flat:
                    flat.append(item)
        return UNKNOWN_LOC if not flat else flat[0] if len(flat) == 1 else FusedLoc(flat)
    return loc


@needs_mlir
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(module=__import__("test_ir_properties").modules())
def test_mlir_opt_accepts_random_modules(module):
    text = print_module(module, print_locations=True)
    out = _run(MLIR_OPT, text, "--mlir-print-op-generic", "--mlir-print-debuginfo")
    again = parse_module(out, "random-from-mlir.mlir", allow_unregistered=True)
    assert [op.name for op in again.walk()] == [op.name for op in module.walk()]
    assert [op.location for op in again.walk()] == [mlir_canonical_location(op.location) for op in module.walk()]
