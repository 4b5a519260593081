"""The ISA1 field table shipped with the dpu dialect."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from fixflow.dialects.dpu import by_opcode, spec, table

SHARED_XML = Path(__file__).resolve().parents[3].parent / "shared" / "reference" / "dpuczdx8g_isa1_fields.xml"


def test_packaged_xml_is_the_reference_table():
    if not SHARED_XML.exists():
        pytest.skip(f"reference data not found: {SHARED_XML}")
    packaged = resources.files("fixflow.dialects.dpu").joinpath("isa1_fields.xml").read_bytes()
    assert packaged == SHARED_XML.read_bytes()


def test_opcodes_words_units():
    got = {s.name: (s.opcode, s.words, s.category) for s in table()}
    assert got == {
        "LOAD": (0x0, 5, "load"), "SAVE": (0x4, 5, "save"), "CONVINIT": (0x9, 4, "conv"),
        "CONV": (0x8, 5, "conv"), "POOLINIT": (0x6, 2, "misc"), "POOL": (0xC, 5, "misc"),
        "ALUINIT": (0x1, 6, "misc"), "ALU": (0x2, 5, "misc"), "DWINIT": (0xB, 3, "misc"),
        "DPTWISE": (0xA, 5, "misc"), "ELEWINIT": (0xD, 3, "misc"), "ELEW": (0xE, 3, "misc"),
        "END": (0x7, 1, "save"),
    }
    assert set(by_opcode()) == {0x0, 0x4, 0x9, 0x8, 0x6, 0xC, 0x1, 0x2, 0xB, 0xA, 0xD, 0xE, 0x7}


def test_field_order_is_the_simulators():
    # the order AMD's simulator names fields in AC text (spec dpu-isa.md, "Assembly text")
    assert spec("LOAD").field_names == (
        "bank_id", "bank_addr", "jump_read", "jump_write", "pad_idx", "channel", "length", "pad_start",
        "pad_end", "mode_avg", "broadcast", "const_value", "reg_id", "ddr_addr")
    assert spec("SAVE").field_names == (
        "bank_id", "bank_addr", "hp_id", "argmax", "jump_write", "jump_read", "channel", "length",
        "const_en", "const_value", "reg_id", "ddr_addr")
    assert spec("CONV").field_names[:4] == ("pad_left", "pad_top", "bank_addr_in", "channel_group")
    assert spec("END").field_names == ()


def test_field_ranges_and_minus():
    load = spec("LOAD").by_name
    assert (load["channel"].minus, load["channel"].lo, load["channel"].hi) == (True, 1, 1 << 14)
    assert (load["ddr_addr"].minus, load["ddr_addr"].lo, load["ddr_addr"].hi) == (False, 0, (1 << 29) - 1)
    # fields a compiler may wrongly assume stored minus one (dpu-semantics.md B1)
    assert not spec("ELEWINIT").by_name["jump_read"].minus
    assert not spec("ALUINIT").by_name["jump_read_weights"].minus
    assert not spec("CONV").by_name["channel_offset"].minus
    # every word fully described: fields and reserved bits never overlap and cover 32 bits
    for s in table():
        for w in range(s.words):
            covered = 0xFFF00000 if w == 0 else 0
            for f in s.fields:
                if f.word == w:
                    bits = f.mask << f.pos
                    assert not covered & bits, (s.name, f.name)
                    covered |= bits
            reserved = dict(s.reserved).get(w, 0)
            assert covered & reserved == 0 and covered | reserved == 0xFFFFFFFF, (s.name, w)
