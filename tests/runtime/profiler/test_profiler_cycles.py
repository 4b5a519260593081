"""The cycle model on small programs whose cycles are worked out by hand (kv260: B4096 PP 8 x ICP 16
x OCP 16, ALU_PP 4, 300 MHz, DDR4-2400 x 64 bit = 64 bytes per cycle, latency 150 ns = 45 cycles)."""

from __future__ import annotations

import pytest

from _profiler_testlib import CONV, LOAD, SAVE, check_tokens, ins
from fixflow.runtime.profiler import Machine, ModelConstants, ProfileError, costs, profile_program, throughput, timeline
from fixflow.runtime.profiler.cycles import ddr_latency_cycles
from fixflow.target import get_board, get_target

B4096 = get_target("DPUCZDX8G_ISA1_B4096")
KV260 = Machine.of(B4096, get_board("kv260"))


def test_machine_of_kv260():
    assert (KV260.pp, KV260.icp, KV260.ocp, KV260.alu_pp) == (8, 16, 16, 4)
    assert KV260.ddr_bytes_per_cycle == 64.0           # 2400e6 * 8 B / 300e6
    assert ddr_latency_cycles(KV260, ModelConstants()) == 45
    assert KV260.peak_ops_per_cycle == 4096


def test_instruction_cycles_by_hand():
    prog = [
        ins("LOAD", length=4, channel=64, bank_id=0, reg_id=2),                  # 256 B: 4 DDR cycles, 16 lines
        ins("CONVINIT", kernel_h=3, kernel_w=3),
        ins("CONV", length=10, channel_group=2),                                  # 10*3*3*2
        ins("ALUINIT", exec_mode=3, kernel_h=2, kernel_w=2, length=13, channel_group=2),
        ins("ALU", valid_pixel_parallel=4),                                       # 13*2*2*2
        ins("ELEW", length=8, channel_group=3, num=2),                            # 8*3*2
        ins("SAVE", length=2, channel=32, bank_id=0),                             # 64 B: 1 cycle, 4 lines
        ins("LOAD", length=2, channel=32, broadcast=7, bank_id=1),                # constant fill: no DDR
        ins("SAVE", length=10, channel=64, argmax=2, bank_id=0),                  # argmax: 1 byte per pixel
        ins("ALUINIT", exec_mode=0, kernel_h=3, kernel_w=3, length=7, channel_group=1),
        ins("ALU"),                                                               # depthwise: 2 ops per tap
        ins("END"),
    ]
    c = costs(prog, KV260)
    assert [x.cycles for x in c] == [16, 1, 180, 1, 104, 48, 4, 4, 40, 1, 63, 1]
    assert [x.latency for x in c] == [45, 0, 0, 0, 0, 0, 45, 0, 45, 0, 0, 0]
    assert [x.unit for x in c] == [0, 2, 2, 3, 3, 3, 1, 0, 1, 3, 3, 1]
    assert c[2].ops_on_arch == 2 * 2048 * 180 + 8 * 16 * 10 == 738_560
    assert c[4].ops_on_arch == 4 * 16 * 104 == 6_656
    assert c[5].ops_on_arch == 4 * 16 * 48
    assert c[10].ops_on_arch == 2 * 4 * 16 * 63
    assert (c[0].ddr_read, c[6].ddr_write, c[7].ddr_read, c[8].ddr_write) == (256, 64, 0, 10)


def test_ddr_bound_load():
    # 2048 bytes in 4 rows of 512: DDR 32 cycles, bank port 4 * 32 = 128 lines -> 128
    (c,) = costs([ins("LOAD", length=4, channel=512)], KV260)
    assert (c.cycles, c.latency) == (128, 45)
    # 1 row of 4096 B into a 16 B-wide bank: 256 lines; DDR 64 cycles; a slower DDR (1 B/cycle) wins
    slow = Machine("x", 8, 16, 16, 4, 300e6, 300e6)
    (c,) = costs([ins("LOAD", length=1, channel=4096)], slow)
    assert c.cycles == 4096


def test_timeline_serial_by_hand():
    prog = [
        ins("LOAD", 0, CONV, length=4, channel=64),       # [0, 16), done 61
        ins("CONVINIT", kernel_h=3, kernel_w=3),            # [0, 1)
        ins("CONV", LOAD, SAVE, length=10, channel_group=2),  # waits for the LOAD: [61, 241)
        ins("SAVE", CONV, 0, length=2, channel=32),         # [241, 245), done 290
        ins("END"),                                         # [245, 246), completes in order: 290
    ]
    c = costs(prog, KV260)
    slots, notes = timeline(prog, c)
    assert [(s.start, s.busy_end, s.end) for s in slots] == [(0, 16, 61), (0, 1, 1), (61, 241, 241),
                                                              (241, 245, 290), (245, 246, 290)]
    assert slots[2].waited == 60 and notes == []
    check_tokens(prog, c, slots)


def test_timeline_overlap_by_hand():
    prog = [
        ins("LOAD", 0, CONV, length=4, channel=64),         # [0, 16) done 61
        ins("CONVINIT", kernel_h=1, kernel_w=1),
        ins("LOAD", 0, CONV, length=8, channel=64),         # prefetch: [16, 48) done 93
        ins("CONV", LOAD, 0, length=100, channel_group=1),  # [61, 161)
        ins("CONV", LOAD, SAVE, length=50, channel_group=1),  # its data is there at 93: [161, 211)
        ins("SAVE", CONV, 0, length=1, channel=16),         # [211, 212) done 257
        ins("END"),
    ]
    c = costs(prog, KV260)
    slots, _ = timeline(prog, c)
    assert [s.start for s in slots] == [0, 0, 16, 61, 161, 211, 212]
    assert max(s.end for s in slots) == 257
    check_tokens(prog, c, slots)
    p = profile_program(prog, B4096, "kv260")
    assert p["cycles"] == 257 and p["serial_cycles"] == sum(x.cycles for x in c)
    assert p["ms"] == pytest.approx(257 / 300e3)
    assert p["unit_busy_cycles"] == {"LOAD": 48, "SAVE": 2, "CONV": 151, "MISC": 0}


def test_own_unit_bits_add_nothing():
    """AMD's compiler sets a unit's own bit on almost every instruction (LOAD 0001 0001)."""
    plain = [ins("LOAD", 0, CONV, length=4, channel=64), ins("CONVINIT"), ins("CONV", LOAD, SAVE, length=3),
             ins("SAVE", CONV, 0, length=1, channel=16), ins("END")]
    amd = [ins("LOAD", LOAD, LOAD | CONV, length=4, channel=64), ins("CONVINIT", CONV, CONV),
           ins("CONV", LOAD | CONV, SAVE | CONV, length=3), ins("SAVE", SAVE | CONV, SAVE, length=1, channel=16),
           ins("END", SAVE, SAVE)]
    a, _ = timeline(plain, costs(plain, KV260))
    b, _ = timeline(amd, costs(amd, KV260))
    assert a == b


def test_deadlock_is_one_error():
    prog = [ins("CONVINIT"), ins("CONV", LOAD, 0, length=1), ins("END")]
    with pytest.raises(ProfileError, match=r"deadlock under dpdon/dpdby: CONV at instruction 1 \(CONV\)"):
        timeline(prog, costs(prog, KV260))


def test_unconsumed_token_is_a_note():
    prog = [ins("LOAD", 0, CONV, length=1, channel=16), ins("END")]
    _, notes = timeline(prog, costs(prog, KV260))
    assert notes == ["1 token(s) from LOAD to CONV are never consumed"]


def test_conv_before_convinit_is_an_error():
    with pytest.raises(ProfileError, match="instruction 0: CONV before any CONVINIT"):
        profile_program([ins("CONV")], B4096)


def test_layers_share_the_time_they_overlap():
    prog = [
        ins("LOAD", 0, CONV, length=4, channel=64),           # layer a: [0, 61)
        ins("CONVINIT", kernel_h=1, kernel_w=1),               # a
        ins("CONV", LOAD, 0, length=100, channel_group=1),     # a: [61, 161)
        ins("LOAD", 0, CONV, length=8, channel=64),            # b: [16, 93) overlaps a
        ins("CONV", LOAD, SAVE, length=50, channel_group=1),   # b: [161, 211)
        ins("SAVE", CONV, 0, length=1, channel=16),            # b: [211, 257)
        ins("END"),                                            # b
    ]
    p = profile_program(prog, B4096, "kv260", groups=["a", "b"], group_of=[0, 0, 0, 1, 1, 1, 1])
    a, b = p["layers"]
    # a alone on [0, 16); a and b share [16, 93); a alone [93, 161); b alone [161, 257)
    assert a["cycles"] == pytest.approx(16 + 77 / 2 + 68)
    assert b["cycles"] == pytest.approx(77 / 2 + 96)
    assert a["cycles"] + b["cycles"] == pytest.approx(p["cycles"])
    assert a["ddr_read_bytes"] == 256 and b["ddr_read_bytes"] == 512 and b["ddr_write_bytes"] == 16
    assert a["ops_on_arch"] == 2 * 2048 * 100 + 128 * 100
    # utilization and GOP/s over the time the layer runs: a [0, 161), b [16, 93) + [161, 257)
    assert (a["active_cycles"], b["active_cycles"]) == (161, 77 + 96)
    assert a["utilization"] == pytest.approx(a["ops_on_arch"] / (4096 * 161))
    assert a["gops_per_s"] == pytest.approx(a["ops_on_arch"] / (161 / 300e6) / 1e9)


def test_throughput_multi_core():
    m = {"cores": 2, "ddr_gb_per_s": 19.2}
    t = throughput(2.0, 10**6, m, cpu_ms=0.5)
    assert t["fps_single_thread"] == pytest.approx(400.0)       # 1 / 2.5 ms
    assert t["fps_multi_thread"] == pytest.approx(1000.0)       # 2 cores / 2 ms, DDR allows 19200
    assert t["multi_thread_limit"] == "DPU cores"
    t = throughput(2.0, 10**8, m)
    assert t["fps_multi_thread"] == pytest.approx(192.0) and t["multi_thread_limit"] == "DDR bandwidth"


def test_constants_change_the_result():
    prog = [ins("LOAD", 0, CONV, length=4, channel=64), ins("CONVINIT"), ins("CONV", LOAD, 0, length=1), ins("END")]
    fast = profile_program(prog, B4096, "kv260", constants=ModelConstants(ddr_latency_ns=0))
    slow = profile_program(prog, B4096, "kv260")
    assert slow["cycles"] - fast["cycles"] == 45
