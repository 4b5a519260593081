"""Assembly text ("AC code"): writer, parser, round trips, errors at line:col."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _mnist_ref import mnist_mc_code
from fixflow.backends.mc import AcError, Instruction, decode, encode, format_instruction, parse_ac, write_ac
from fixflow.dialects.dpu import spec, table
from fixflow.ir.diagnostics import ParseError

SPEC_LOAD = ("LOAD 0001 0101 bank_id 16 bank_addr 0 jump_read 2048 jump_write 128 pad_idx 1 channel 2048 "
             "length 1 pad_start 0 pad_end 0 mode_avg 0 broadcast 0 const_value 0 reg_id 0 ddr_addr 2048")


def test_spec_example_line():
    (ins,) = parse_ac(SPEC_LOAD)
    assert (ins.name, ins.dpdon, ins.dpdby) == ("LOAD", 0b0001, 0b0101)
    assert ins.fields["channel"] == 2048 and ins.fields["jump_write"] == 128
    assert format_instruction(ins) == SPEC_LOAD
    assert encode([ins]).hex() == "0000540" "1" "7ffc1f00" "00fc1f00" "00000000" "00080000"


def test_masks_are_msb_first():
    (ins,) = parse_ac("END 1000 0001")
    assert (ins.dpdon, ins.dpdby) == (0b1000, 0b0001)
    assert write_ac([ins]) == "END 1000 0001\n"


def test_fields_in_any_order_and_amd_separators():
    shuffled = "LOAD,0001;0101\tddr_addr 2048 reg_id 0 " + " ".join(SPEC_LOAD.split()[3:-4])
    assert parse_ac(shuffled) == parse_ac(SPEC_LOAD)


def test_comments_and_blank_lines():
    text = f"# a program\n\n{SPEC_LOAD}   # the spec's line\r\nEND 0010 0000\n"
    prog = parse_ac(text)
    assert [i.name for i in prog] == ["LOAD", "END"]
    with pytest.raises(AcError) as e:
        parse_ac("# no comments in ac_code\nEND 0000 0000", comments=False)
    assert (e.value.line, e.value.col) == (1, 1)


@st.composite
def programs(draw):
    out = []
    for _ in range(draw(st.integers(1, 8))):
        s = spec(draw(st.sampled_from([s.name for s in table()])))
        out.append(Instruction(s.name, s.opcode, draw(st.integers(0, 15)), draw(st.integers(0, 15)),
                               {f.name: draw(st.integers(f.lo, f.hi)) for f in s.fields}))
    return out


@settings(max_examples=150)
@given(programs())
def test_roundtrip_ac_instr_ac(prog):
    text = write_ac(prog)
    assert parse_ac(text) == prog
    assert write_ac(parse_ac(text)) == text
    assert parse_ac(write_ac(decode(encode(prog)))) == prog


def test_mnist_mc_to_ac_to_mc():
    mc = mnist_mc_code()
    text = write_ac(decode(mc))
    lines = text.splitlines()
    assert len(lines) == 230
    assert lines[0] == ("LOAD 0001 0001 bank_id 33 bank_addr 0 jump_read 32 jump_write 1 pad_idx 1 channel 32 "
                        "length 1 pad_start 0 pad_end 0 mode_avg 0 broadcast 0 const_value 0 reg_id 0 ddr_addr 0")
    assert lines[-1] == "END 0010 0010"
    prog = parse_ac(text, "mnist.ac")
    assert encode(prog) == mc
    assert write_ac(prog) == text


# ---- errors ---------------------------------------------------------------------------------------
def _err(text: str) -> AcError:
    with pytest.raises(AcError) as e:
        parse_ac(text, "prog.ac")
    assert isinstance(e.value, ParseError)
    return e.value


def test_unknown_instruction():
    e = _err("END 0000 0000\n  MOVE 0000 0000")
    assert (e.line, e.col) == (2, 3) and "unknown instruction 'MOVE'" in e.message
    assert str(e).startswith("prog.ac:2:3: error:")


@pytest.mark.parametrize("text,col,what", [
    ("END 0000", 9, "expected the dpdby mask"),
    ("END 00000 0000", 5, "dpdon must be 4 binary digits"),
    ("END 0000 0020", 10, "dpdby must be 4 binary digits"),
])
def test_bad_masks(text, col, what):
    e = _err(text)
    assert (e.line, e.col) == (1, col) and what in e.message


def test_unknown_field():
    e = _err(SPEC_LOAD.replace("pad_idx", "pad_index"))
    assert e.col == SPEC_LOAD.index("pad_idx") + 1
    assert "LOAD has no field 'pad_index'" in e.message


def test_missing_fields():
    text = SPEC_LOAD.replace(" reg_id 0", "")
    e = _err(text)
    assert (e.line, e.col) == (1, len(text) + 1) and "lacks field reg_id" in e.message


def test_duplicate_field():
    text = SPEC_LOAD + " channel 16"
    e = _err(text)
    assert e.col == len(SPEC_LOAD) + 2 and "'channel' given twice" in e.message


def test_field_without_value():
    e = _err("LOAD 0000 0000 bank_id")
    assert e.col == len("LOAD 0000 0000 bank_id") + 1 and "has no value" in e.message


@pytest.mark.parametrize("field,value,rng", [
    ("channel", "0", "[1, 16384]"), ("channel", "16385", "[1, 16384]"), ("bank_id", "64", "[0, 63]"),
    ("ddr_addr", "536870912", "[0, 536870911]"), ("ddr_addr", "9" * 5000, "[0, 536870911]"),
])
def test_out_of_range(field, value, rng):
    tokens = SPEC_LOAD.split()
    i = tokens.index(field)
    tokens[i + 1] = value
    text = " ".join(tokens)
    e = _err(text)
    assert e.col == len(" ".join(tokens[:i + 1])) + 2
    assert f"{field} " in e.message and rng in e.message


@pytest.mark.parametrize("value", ["-1", "0x10", "1.5", "１"])
def test_value_not_decimal(value):
    e = _err(SPEC_LOAD.replace("bank_addr 0", f"bank_addr {value}"))
    assert "decimal integer" in e.message and e.col == SPEC_LOAD.index("bank_addr 0") + 11
