"""Corrupt streams and accesses outside a region stop with one DPUExecError (a FixflowError) naming the
instruction index and the address, in both modes; never a numpy IndexError or a silent wrap."""

import struct

import numpy as np
import pytest

from _dpu_interp_lib import TARGET, I
from fixflow.backends.mc import encode
from fixflow.ir.diagnostics import FixflowError
from fixflow.runtime.dpu import DPUExecError, DPUInterpreter

MODES = ["reference", "fast"]


def regs():
    return {0: np.zeros(4096, np.int8), 1: np.zeros(256, np.int8), 2: np.zeros(1000, np.int8),
            3: np.zeros(64, np.int8)}


def fails(program, mode, match, regions=None):
    with pytest.raises(DPUExecError, match=match) as e:
        DPUInterpreter(TARGET, program, regions or regs(), mode=mode).run()
    assert isinstance(e.value, FixflowError)
    assert "\n" not in str(e.value)
    return e.value


OK_LOAD = I("LOAD", bank_id=8, bank_addr=0, reg_id=2, ddr_addr=0, channel=16, length=2, jump_read=16)


@pytest.mark.parametrize("mode", MODES)
def test_load_beyond_its_region(mode):
    bad = I("LOAD", bank_id=8, bank_addr=0, reg_id=2, ddr_addr=980, channel=16, length=3, jump_read=10)
    e = fails([OK_LOAD, bad], mode, r"instruction 1 \(LOAD\): reads DDR REG_2 bytes \[980, 1016\), beyond the "
                                    r"region's 1000 bytes \(address 1015\)")
    assert e.index == 1


@pytest.mark.parametrize("mode", MODES)
def test_huge_ddr_address_is_not_an_index_error(mode):
    bad = I("LOAD", bank_id=8, bank_addr=0, reg_id=0, ddr_addr=(1 << 29) - 1, channel=1)
    fails([bad], mode, r"instruction 0 \(LOAD\).*REG_0.*address 536870911")


@pytest.mark.parametrize("mode", MODES)
def test_save_beyond_its_region(mode):
    bad = I("SAVE", bank_id=8, bank_addr=0, reg_id=3, ddr_addr=60, channel=16, length=1)
    fails([OK_LOAD, bad], mode, r"instruction 1 \(SAVE\): writes DDR REG_3 bytes \[60, 76\).*address 75")


@pytest.mark.parametrize("mode", MODES)
def test_missing_region(mode):
    bad = I("LOAD", bank_id=8, bank_addr=0, reg_id=5, ddr_addr=0, channel=16)
    fails([bad], mode, r"instruction 0 \(LOAD\): DDR region REG_5 is not provided")


@pytest.mark.parametrize("mode", MODES)
def test_banks_outside_the_target(mode):
    fails([I("LOAD", bank_id=40, bank_addr=0, reg_id=2, ddr_addr=0, channel=16)], mode,
          r"instruction 0 \(LOAD\): bank_id 40 is not a bank of DPUCZDX8G_ISA1_B4096 \(banks 0-33\)")
    fails([I("SAVE", bank_id=16, bank_addr=0, reg_id=3, ddr_addr=0, channel=16)], mode,
          r"instruction 0 \(SAVE\): bank_id 16 is a CONVW bank")
    fails([I("CONVINIT"), I("CONV", bank_id_in=33, bank_id_out=0)], mode,
          r"instruction 1 \(CONV\): bank_id_in 33 is a BIAS bank")


@pytest.mark.parametrize("mode", MODES)
def test_engine_state_errors(mode):
    fails([OK_LOAD, I("CONV")], mode, r"instruction 1 \(CONV\): CONV before any CONVINIT")
    fails([I("ALU")], mode, r"instruction 0 \(ALU\): ALU before any ALUINIT")
    fails([I("ELEWINIT", id=0), I("ELEW", num=2)], mode, r"instruction 1 \(ELEW\): .*only 1 pending ELEWINIT")
    fails([I("ELEWINIT", id=1), I("ELEW", num=1)], mode, r"instruction 1 \(ELEW\): ELEWINIT at instruction 0 has id 1")
    fails([I("ALUINIT", kernel_h=40, exec_mode=3), I("ALU", bank_id_in=0)], mode,
          r"instruction 1 \(ALU\): ALU input rows span 5 wraps")
    fails([I("ALUINIT", exec_mode=3), I("ALU", kernel_d=2)], mode,
          r"instruction 1 \(ALU\): kernel_d 2 with ALU MAXPOOL is not supported")
    fails([I("ALUINIT", exec_mode=9), I("ALU")], mode, r"instruction 1 \(ALU\): exec_mode 9 is not an ALU mode")
    fails([I("POOLINIT")], mode, r"instruction 0 \(POOLINIT\): POOLINIT cannot run on DPUCZDX8G_ISA1_B4096")
    fails([I("CONVINIT", act_type=5), I("CONV")], mode, r"act_type 5 is not supported by the conv engine")


@pytest.mark.parametrize("mode", MODES)
def test_corrupt_machine_code(mode):
    good = encode([OK_LOAD, I("END")])
    fails(good + struct.pack("<I", 0x3 << 28), mode, r"instruction 2: corrupt machine code at byte 24: .*opcode 0x3")
    fails(good[:-6], mode, r"corrupt machine code at byte \d+")
    assert DPUInterpreter(TARGET, good, regs(), mode=mode).run()[2].size == 1000


@pytest.mark.parametrize("mode", MODES)
def test_out_of_range_field_is_corrupt(mode):
    bad = I("LOAD", bank_id=8, channel=16, reg_id=2)
    bad.fields["length"] = 5000
    fails([bad], mode, r"instruction 0 \(LOAD\): corrupt instruction: LOAD field 'length' = 5000 is out of range")


def test_bad_regions_and_modes():
    with pytest.raises(DPUExecError, match="int8 or uint8"):
        DPUInterpreter(TARGET, [OK_LOAD], {2: np.zeros(10, np.float32)})
    with pytest.raises(DPUExecError, match="unknown mode"):
        DPUInterpreter(TARGET, [OK_LOAD], regs(), mode="turbo")
    it = DPUInterpreter(TARGET, [OK_LOAD], regs())
    with pytest.raises(DPUExecError, match="bank 34 does not exist"):
        it.bank(34)
