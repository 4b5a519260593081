"""Machine code: golden words worked out by hand from the field table, round trips, errors."""

from __future__ import annotations

import struct
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _mnist_ref import mnist_mc_code
from fixflow.backends.mc import Instruction, McError, decode, encode
from fixflow.dialects.dpu import spec, table
from fixflow.ir.diagnostics import FixflowError


def words(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 4}I", data))


def le(*ws: int) -> bytes:
    return struct.pack(f"<{len(ws)}I", *ws)


# ---- golden encodings, computed by hand from isa1_fields.xml ---------------------------------------
def test_spec_example_load_line():
    # LOAD 0001 0101 bank_id 16 bank_addr 0 jump_read 2048 jump_write 128 pad_idx 1 channel 2048
    #      length 1 pad_start 0 pad_end 0 mode_avg 0 broadcast 0 const_value 0 reg_id 0 ddr_addr 2048
    ins = Instruction.make("LOAD", dpdon=0b0001, dpdby=0b0101, bank_id=16, bank_addr=0, jump_read=2048,
                           jump_write=128, pad_idx=1, channel=2048, length=1, ddr_addr=2048)
    w0 = (0x0 << 28) | (0b0001 << 24) | (0b0101 << 20) | (16 << 14) | 0   # bank_id@14, bank_addr@0
    w1 = ((2048 - 1) << 10) | (128 - 1)                                  # jump_read@10, jump_write@0 (minus)
    w2 = ((1 - 1) << 27) | ((2048 - 1) << 10) | (1 - 1)                  # pad_idx@27, channel@10, length@0
    w3 = 0                                                               # pad/mode/broadcast/const/reg_id
    w4 = 2048                                                            # ddr_addr@0
    assert [w0, w1, w2, w3, w4] == [0x01540000, 0x001FFC7F, 0x001FFC00, 0x00000000, 0x00000800]
    assert words(encode([ins])) == [w0, w1, w2, w3, w4]
    assert decode(le(w0, w1, w2, w3, w4)) == [ins]


# Each case: mnemonic, fields set to the top of their range (others at the bottom), the words by hand.
# "max" of a minus field is 2**len (stored as all ones); of a plain field 2**len - 1.
GOLDEN_MAX = {
    "LOAD": [0x0FFFCFFF, 0x03FFFFFF, 0xF8FFFFFF, 0xFFFFFF07, 0x1FFFFFFF],
    "SAVE": [0x4FFFCFFF, 0x7BFFFFFF, 0x003FFFFF, 0x0001FF07, 0x1FFFFFFF],
    "CONVINIT": [0x9FFFFFFF, 0xF000FFFF, 0xFF00FFFF, 0xFF001FFF],
    "CONV": [0x8FFFFFFF, 0xFF0FFFFF, 0xFFC3FFFF, 0x3FFFFFFF, 0x1FFFFFFF],
    "POOLINIT": [0x6FFFFFFF, 0x7FFFFFFF],
    "POOL": [0xCFFFFFFF, 0x3FFFFFFF, 0x0FFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF],
    "ALUINIT": [0x1FFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0x0FFFFFFF, 0x7FFFFFFF, 0xFFFFFFFF],
    "ALU": [0x2FFFFFFF, 0x7FFFFFFF, 0x3FFFFFFF, 0xFFFFFFFF, 0x0FFFFFFF],
    "DWINIT": [0xBFFFFFFF, 0xFFFFFFFF, 0x1FFFFFFF],
    "DPTWISE": [0xAFFFFFFF, 0xFFFF0FFF, 0xFFFFFFFF, 0x3FFFFFFF, 0x1FFFFFFF],
    "ELEWINIT": [0xDFFFE000, 0xFFFFFFFF, 0x0000FFFF],
    "ELEW": [0xEFFFFFFF, 0xFFFFFFFF, 0x01FFFFFF],
    "END": [0x7FF00000],
}


def _extreme(name: str, top: bool, dpd: int) -> Instruction:
    s = spec(name)
    return Instruction(name, s.opcode, dpd, dpd, {f.name: (f.hi if top else f.lo) for f in s.fields})


def test_golden_table_covers_every_instruction():
    assert set(GOLDEN_MAX) == {s.name for s in table()}


@pytest.mark.parametrize("name", sorted(GOLDEN_MAX))
def test_golden_all_fields_max(name):
    ins = _extreme(name, True, 0xF)
    assert [hex(w) for w in words(encode([ins]))] == [hex(w) for w in GOLDEN_MAX[name]]
    assert decode(le(*GOLDEN_MAX[name])) == [ins]


@pytest.mark.parametrize("name", sorted(GOLDEN_MAX))
def test_golden_all_fields_min(name):
    # every field at its smallest logical value (minus fields 1, stored as 0): only the header is set
    s = spec(name)
    ins = _extreme(name, False, 0)
    assert words(encode([ins])) == [s.opcode << 28] + [0] * (s.words - 1)


def test_golden_single_fields_by_hand():
    # CONV kernel-ish fields: channel_group (minus, word1 @24 len 8), bank_id_out (word3 @12 len 6)
    ins = Instruction.make("CONV", dpdon=0b0101, dpdby=0b0110, channel_group=3, bank_id_out=8, length=14,
                           pad_right=2, pad_bottom=2, bank_addr_in_3=5)
    assert words(encode([ins])) == [
        0x8 << 28 | 0b0101 << 24 | 0b0110 << 20,
        (3 - 1) << 24 | 2 << 16 | 2 << 12,
        (14 - 1) << 22,
        8 << 12,
        5 << 12,
    ]
    # ELEWINIT share_pp @13 of word 0; jump_bank (minus) @29 of word 1; jump_read (not minus) word 2
    ins = Instruction.make("ELEWINIT", share_pp=1, jump_bank=8, id=2, jump_read=7)
    assert words(encode([ins])) == [0xD << 28 | 1 << 13, 7 << 29 | 2 << 27 | 0, 7]


def test_golden_save_aluinit_elew_by_hand():
    # SAVE: jump_write (minus) @w1:10, jump_read (minus) @w1:0 -- swapped relative to LOAD
    save = Instruction.make("SAVE", 0b0110, 0b0010, bank_id=8, bank_addr=100, hp_id=2, argmax=1, jump_write=16,
                            jump_read=10, channel=10, length=1, const_en=1, const_value=255, reg_id=3,
                            ddr_addr=4096)
    assert words(encode([save])) == [0x46220064, 0x48003C09, 0x00002400, 0x0001FF03, 0x00001000]
    # ALUINIT (six words); its word 0 equals the MNIST program's max-pool ALUINIT (0x18830101)
    aluinit = Instruction.make("ALUINIT", 0b1000, 0b1000, exec_mode=3, kernel_h=2, kernel_w=2, stride_h=2,
                               stride_w=2, stride_offset_in=1, stride_out=1, channel_group=2, channel_offset=3,
                               length=13, act_type=1, shift_bias=5, shift_cut=7, multi_factor=26, jump_read=2,
                               jump_read_endl=52, jump_read_weights=9, jump_write=2, jump_write_endl=1)
    assert words(encode([aluinit])) == [0x18830101, 0x01010100, 0x0001180C, 0x000451C0, 0x0D002033, 0x04802000]
    elew = Instruction.make("ELEW", bank_id_out=8, elew_type=1, act_type=1, length=100, valid_pixel_parallel=4,
                            num=2, jump_write_endl=300, bank_addr_out=7, channel_group=4, shift_write=17,
                            jump_write=4)
    assert words(encode([elew])) == [0xE0021863, 0x684AC007, 0x00071003]
    assert decode(encode([save, aluinit, elew])) == [save, aluinit, elew]


# ---- round trips ---------------------------------------------------------------------------------
@st.composite
def instructions(draw, names=tuple(s.name for s in table())):
    s = spec(draw(st.sampled_from(names)))
    fields = {f.name: draw(st.integers(f.lo, f.hi)) for f in s.fields}
    return Instruction(s.name, s.opcode, draw(st.integers(0, 15)), draw(st.integers(0, 15)), fields)


@settings(max_examples=150)
@given(st.lists(instructions(), min_size=1, max_size=12))
def test_roundtrip_instr_mc_instr(prog):
    data = encode(prog)
    assert decode(data) == prog
    assert encode(decode(data)) == data


@pytest.mark.parametrize("name", sorted(GOLDEN_MAX))
@settings(max_examples=40)
@given(data=st.data())
def test_roundtrip_every_instruction(name, data):
    ins = data.draw(instructions(names=(name,)))
    mc = encode([ins])
    assert len(mc) == 4 * spec(name).words
    assert decode(mc) == [ins]


def test_decoded_fields_in_table_order():
    ins = decode(le(*GOLDEN_MAX["LOAD"]))[0]
    assert list(ins.fields) == ["bank_id", "bank_addr", "jump_read", "jump_write", "pad_idx", "channel",
                                "length", "pad_start", "pad_end", "mode_avg", "broadcast", "const_value",
                                "reg_id", "ddr_addr"]


# ---- the AMD-compiled MNIST program ---------------------------------------------------------------
def test_mnist_decodes_to_230_instructions():
    mc = mnist_mc_code()
    assert len(mc) == 4572
    assert words(mc)[:5] == [0x01184000, 0x00007C00, 0x00007C00, 0, 0]
    assert words(mc)[-1] == 0x72200000
    prog = decode(mc)
    assert len(prog) == 230
    assert Counter(i.name for i in prog) == {"LOAD": 202, "CONV": 17, "CONVINIT": 4, "ALU": 4, "ALUINIT": 1,
                                             "SAVE": 1, "END": 1}
    first = prog[0]
    assert (first.name, first["bank_id"], first["channel"], first["reg_id"], first["ddr_addr"]) == \
        ("LOAD", 33, 32, 0, 0)
    assert (prog[-1].name, prog[-1].dpdon) == ("END", 0b0010)
    assert encode(prog) == mc


# ---- errors --------------------------------------------------------------------------------------
def _err(data: bytes) -> McError:
    with pytest.raises(McError) as e:
        decode(data)
    return e.value


def test_unknown_opcode_names_offset_and_index():
    end = le(0x70000000)
    e = _err(end + end + le(0x30000000))
    assert (e.offset, e.index) == (8, 2)
    assert "byte 8" in str(e) and "instruction 2" in str(e) and "opcode 0x3" in str(e)


def test_truncated_instruction():
    load = encode([Instruction.make("LOAD")])
    e = _err(le(0x70000000) + load[:12])
    assert (e.offset, e.index) == (4, 1)
    assert "truncated LOAD" in str(e) and "20 bytes" in str(e)


def test_trailing_bytes():
    e = _err(le(0x70000000) + b"\x00\x00")
    assert (e.offset, e.index) == (4, 1)
    assert "trailing" in str(e)


def test_reserved_bits_rejected():
    e = _err(le(0x70000001))
    assert (e.offset, e.index) == (0, 0) and "reserved" in str(e)
    load = bytearray(encode([Instruction.make("LOAD")]))
    load[4 * 3] |= 0x08  # LOAD word 3 bit 3 is reserved
    e = _err(le(0x70000000) + bytes(load))
    assert (e.offset, e.index) == (16, 1)


def test_errors_are_fixflow_errors():
    assert issubclass(McError, FixflowError)
    assert decode(b"") == []


def test_encode_rejects_out_of_range_value():
    ins = Instruction.make("LOAD", bank_id=63)
    ins.fields["jump_write"] = 1025
    with pytest.raises(McError) as e:
        encode([Instruction.make("END"), ins])
    assert e.value.index == 1 and "jump_write" in str(e.value) and "[1, 1024]" in str(e.value)
    with pytest.raises(McError):
        encode([Instruction("LOAD", 0, 16, 0, Instruction.make("LOAD").fields)])


def test_mnist_program_through_the_dialect():
    from fixflow.dialects.builtin import ModuleOp
    from fixflow.dialects.dpu import ProgramOp
    from fixflow.ir import VerifyError, parse_module, print_module, verify

    mc = mnist_mc_code()
    prog = ProgramOp.build_program(decode(mc), "DPUCZDX8G_ISA1_B4096", "subgraph_quant_conv2d")
    m = ModuleOp.empty()
    m.body.append(prog)
    verify(m)  # AMD's own program passes every target check for its target
    text = print_module(m)
    (back,) = list(parse_module(text, "mnist.mlir").body.ops)
    assert encode(back.instructions()) == mc
    assert encode(back.instruction_ops()) == mc  # ops encode directly too
    prog.target = "DPUCZDX8G_ISA1_B512"  # fewer banks: the bias LOAD into bank 33 cannot run there
    with pytest.raises(VerifyError) as e:
        verify(m)
    assert "bank_id = 33" in e.value.message
