"""The `dpu` dialect: generated instruction ops, dpu.program, verifier and target checks, text."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fixflow.dialects.builtin import ModuleOp
from fixflow.dialects.dpu import (OP_CLASSES, Instruction, InstructionOp, ProgramOp, from_instruction, make,
                                  spec, table, to_instruction)
from fixflow.ir import IntegerAttr, VerifyError, i32, i64, lookup_op_class, parse_module, print_module, verify

B4096 = "DPUCZDX8G_ISA1_B4096"


def module_of(*programs: ProgramOp) -> ModuleOp:
    m = ModuleOp.empty()
    for p in programs:
        m.body.append(p)
    return m


def conv_program(target: str = B4096, **overrides) -> ProgramOp:
    """A small but complete program: load weights/bias/input, convinit, conv, save, end.

    Bank ids of B4096 (VB0 0-7, VB1 8-15, CONVW 16-31, BIAS 33); for B512 those of B512 (VB0 0-3,
    VB1 4-7, CONVW 8-15, BIAS 17)."""
    small = target.endswith("B512")
    convw, bias, vb1 = (8, 17, 4) if small else (16, 33, 8)
    instrs = [
        make("LOAD", 0b0000, 0b0001, bank_id=convw, channel=16, length=9, jump_read=16, jump_write=1, reg_id=0),
        make("LOAD", 0b0001, 0b0001, bank_id=bias, channel=16, jump_read=16, reg_id=0, ddr_addr=144),
        make("LOAD", 0b0001, 0b0101, bank_id=0, channel=16, length=8, jump_read=16, reg_id=2),
        make("CONVINIT", 0b0001, 0b0000, kernel_h=3, kernel_w=3, stride_h=1, stride_w=1,
             valid_pixel_parallel=overrides.pop("vpp", 4), act_type=overrides.pop("act_type", 1), shift_cut=6),
        make("CONV", 0b0101, 0b0110, bank_id_in=overrides.pop("bank_id_in", 0), bank_id_out=vb1, length=6,
             pad_right=2, pad_bottom=2),
        make("SAVE", 0b0110, 0b0010, bank_id=vb1, channel=16, length=6, reg_id=3),
        make("END", 0b0010, 0b0000),
    ]
    assert not overrides
    return ProgramOp.build_program(instrs, target, "subgraph_conv")


# ---- generated ops ----------------------------------------------------------------------------------
def test_one_op_per_instruction_generated_from_the_table():
    assert {cls.OP_NAME for cls in OP_CLASSES.values()} == {"dpu." + s.name.lower() for s in table()}
    for s in table():
        cls = lookup_op_class(s.op_name)
        assert cls is OP_CLASSES[s.name] and issubclass(cls, InstructionOp)
        assert [a.name for a in cls.ATTRS] == ["dpdon", "dpdby", *s.field_names]
        assert cls.SPEC is s


def test_attribute_descriptors_hold_logical_values():
    op = make("LOAD", 1, 5, channel=2048, jump_write=128, bank_id=16)
    assert (op.channel, op.jump_write, op.bank_id, op.dpdon, op.dpdby) == (2048, 128, 16, 1, 5)
    assert op.attributes["channel"] == IntegerAttr(2048, i32)
    op.channel = 16
    assert op.to_instruction()["channel"] == 16


@settings(max_examples=200)
@given(st.data())
def test_op_instruction_roundtrip(data):
    s = spec(data.draw(st.sampled_from([s.name for s in table()])))
    ins = Instruction(s.name, s.opcode, data.draw(st.integers(0, 15)), data.draw(st.integers(0, 15)),
                      {f.name: data.draw(st.integers(f.lo, f.hi)) for f in s.fields})
    op = from_instruction(ins)
    verify(op)
    assert to_instruction(op) == ins


# ---- verifier: field ranges ----------------------------------------------------------------------------
def _verify_error(op) -> str:
    with pytest.raises(VerifyError) as e:
        verify(op)
    return e.value.message


@pytest.mark.parametrize("name,field,value,rng", [
    ("LOAD", "channel", 0, "[1, 16384]"), ("LOAD", "channel", 16385, "[1, 16384]"),
    ("LOAD", "bank_id", 64, "[0, 63]"), ("CONV", "channel_group", 257, "[1, 256]"),
    ("ELEW", "act_type", 2, "[0, 1]"), ("ALUINIT", "jump_read_weights", 512, "[0, 511]"),
    ("END", "dpdon", 16, "[0, 15]"), ("SAVE", "dpdby", -1, "[0, 15]"),
])
def test_field_out_of_range_names_field_and_range(name, field, value, rng):
    op = make(name)
    op.attributes[field] = IntegerAttr(value, i32)
    msg = _verify_error(op)
    assert f"{field} = {value} is out of range {rng}" in msg and f"'dpu.{name.lower()}'" in msg


def test_missing_extra_and_mistyped_attributes():
    op = make("LOAD")
    del op.attributes["ddr_addr"]
    assert "requires attribute 'ddr_addr'" in _verify_error(op)
    op = make("LOAD")
    op.attributes["ddr_adr"] = IntegerAttr(0, i32)
    assert "has no field 'ddr_adr'" in _verify_error(op)
    op = make("LOAD")
    op.attributes["reg_id"] = IntegerAttr(2, i64)
    assert "'reg_id'" in _verify_error(op) and "i32" in _verify_error(op)


# ---- dpu.program and the target checks ----------------------------------------------------------------
def test_valid_program_verifies_and_lists_instructions():
    p = conv_program()
    verify(module_of(p))
    assert [i.name for i in p.instructions()] == ["LOAD", "LOAD", "LOAD", "CONVINIT", "CONV", "SAVE", "END"]
    assert p.target == B4096 and p.sym_name == "subgraph_conv"


def _program_error(p: ProgramOp) -> VerifyError:
    with pytest.raises(VerifyError) as e:
        verify(p if p.parent is not None else module_of(p))
    return e.value


def test_unknown_target():
    e = _program_error(conv_program("DPUCVDX8G_ISA3_C32B6"))
    assert "'dpu.program' op target:" in e.message and "not supported" in e.message


def test_bank_ids_must_exist_in_the_target():
    p = conv_program("DPUCZDX8G_ISA1_B512")
    verify(module_of(p))
    ops = list(p.instruction_ops())
    ops[1].bank_id = 33  # BIAS on B4096, no such bank on B512 (banks 0-17)
    e = _program_error(p)
    assert "bank_id = 33" in e.message and "no bank 33" in e.message and "0-17" in e.message
    assert e.op is ops[1]


def test_conv_needs_feature_map_banks():
    e = _program_error(conv_program(bank_id_in=20))
    assert "bank_id_in = 20 is a CONVW bank" in e.message and "VB0 0-7, VB1 8-15" in e.message


def test_valid_pixel_parallel_limited_by_pp():
    verify(module_of(conv_program(vpp=8)))
    verify(module_of(conv_program("DPUCZDX8G_ISA1_B512", vpp=4)))
    e = _program_error(conv_program("DPUCZDX8G_ISA1_B512", vpp=8))  # B512: PP 4
    assert "valid_pixel_parallel = 8 is out of range [1, 4]" in e.message


def test_activation_must_be_supported_by_the_engine():
    verify(module_of(conv_program(act_type=3)))  # B4096 conv has leaky_relu
    e = _program_error(conv_program(act_type=2))  # prelu is never fused on ISA1
    assert "act_type = 2 (prelu) is not supported by the conv engine" in e.message
    alu = ProgramOp.build_program([make("ALUINIT", exec_mode=3, act_type=3), make("END")], B4096)
    assert "act_type = 3 (leaky_relu) is not supported by the alu engine" in _program_error(alu).message


def test_alu_mode_and_alu_pp():
    bad_mode = ProgramOp.build_program([make("ALUINIT", exec_mode=9), make("END")], B4096)
    assert "exec_mode = 9 is not an ALU mode" in _program_error(bad_mode).message
    alu = ProgramOp.build_program([make("ALU", valid_pixel_parallel=5, bank_id_in=0, bank_id_out=8)], B4096)
    assert "valid_pixel_parallel = 5 is out of range [1, 4]" in _program_error(alu).message


@pytest.mark.parametrize("name", ["POOLINIT", "POOL", "DWINIT", "DPTWISE"])
def test_isa1_has_no_pool_or_depthwise_engine(name):
    op = make(name)
    verify(op)  # the op itself is fine (the codec needs it) ...
    e = _program_error(ProgramOp.build_program([op], B4096))  # ... but an ISA1 program cannot run it
    assert f"{name} cannot run on {B4096}" in e.message


def test_program_holds_only_dpu_instructions():
    text = ('"builtin.module"() ({\n  "dpu.program"() ({\n    "test.other"() : () -> ()\n'
            f'  }}) {{target = "{B4096}"}} : () -> ()\n}}) : () -> ()\n')
    m = parse_module(text, "p.mlir", allow_unregistered=True)
    with pytest.raises(VerifyError) as e:
        verify(m)
    assert "cannot be in a dpu.program" in e.value.message


def test_nested_superlayer_programs():
    inner = ProgramOp.build_program([make("LOAD"), make("END")], B4096, "superlayer_0")
    outer = ProgramOp.build_program([], B4096, "subgraph")
    outer.body.append(inner)
    verify(module_of(outer))
    assert [i.name for i in outer.instructions()] == ["LOAD", "END"]
    inner.target = "DPUCZDX8G_ISA1_B1024"
    assert "enclosing program targets" in _program_error(outer).message


# ---- text --------------------------------------------------------------------------------------------
def test_text_roundtrip():
    m = module_of(conv_program())
    text = print_module(m)
    assert '"dpu.conv"() {dpdon = 5 : i32, dpdby = 6 : i32, pad_left = 0 : i32' in text
    assert f'target = "{B4096}"' in text
    m2 = parse_module(text, "conv.mlir")
    verify(m2)
    assert print_module(m2) == text
    (p2,) = list(m2.body.ops)
    assert isinstance(p2, ProgramOp) and p2.instructions() == conv_program().instructions()


def test_parse_error_in_text_points_at_the_op():
    text = print_module(module_of(conv_program())).replace("bank_id_out = 8 : i32", "bank_id_out = 99 : i32")
    m = parse_module(text, "bad.mlir")
    with pytest.raises(VerifyError) as e:
        verify(m)
    assert "bank_id_out = 99 is out of range [0, 63]" in e.value.message
    assert e.value.render().startswith("bad.mlir:")


@pytest.mark.mlir
@pytest.mark.skipif(shutil.which("mlir-opt-22") is None, reason="mlir-opt-22 not installed")
def test_mlir_opt_accepts_programs(tmp_path):
    every = ProgramOp.build_program([make(s.name) for s in table()], "DPUCZDX8G_ISA1_B4096", "all_ops")
    text = print_module(module_of(conv_program(), every))
    path = tmp_path / "dpu.mlir"
    path.write_text(text)
    proc = subprocess.run(["mlir-opt-22", "--allow-unregistered-dialect", "--mlir-print-op-generic", str(path)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "LC_ALL": "C"})
    assert proc.returncode == 0, proc.stderr
    m = parse_module(proc.stdout, "from-mlir-opt.mlir")  # mlir-opt sorts attributes; fields stay named
    progs = list(m.body.ops)
    assert progs[0].instructions() == conv_program().instructions()
    assert [i.name for i in progs[1].instructions()] == [s.name for s in table()]
