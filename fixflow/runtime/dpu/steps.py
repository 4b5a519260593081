"""Decode instructions into *steps*: every address an instruction touches, as numpy index arrays.

This is the one place where the DPUCZDX8G addressing rules live (AMD's functional simulator, see
``docs/dpu-interpreter.md`` and spec ``dpu-semantics.md``): which bank lines a LOAD writes, which input
rows a CONV reads from which bank, where padding goes, where each output row lands. Both execution
modes consume the same steps; the reference executes them one by one, the fast mode folds them into a
plan. Bank addresses are indices into the flat on-chip memory (see :mod:`.machine`); two extra cells
follow the banks: ``ZERO`` (always 0) and ``MIN`` (always -128), used for padding.

A `Decoder` walks the program in order, keeps the sticky CONVINIT/ALUINIT state and the ELEWINIT FIFO,
checks what AMD's simulator checks, and raises :class:`DPUExecError` (instruction index, address) for
anything it cannot run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import DPUExecError
from .machine import ACT_LEAKY, ACT_NONE, ACT_RELU, ACT_RELU6, Machine

# ALU exec modes
DWCV, PRELU, AVEPOOL, MAXPOOL, LEAKYRELU, MAXREDUCE, DWCV_NB, HSIGMOID, W16B0 = range(9)
ALU_MODE_NAMES = ("DWCV", "PRELU", "AVEPOOL", "MAXPOOL", "LEAKYRELU", "MAXREDUCE", "DWCV-no-bias",
                  "HSIGMOID", "DWCV-W16B0")
UNITS = {"LOAD": "load", "SAVE": "save", "END": "save", "CONVINIT": "conv", "CONV": "conv"}


def unit_of(name: str) -> str:
    """The execution unit of a mnemonic: load, save, conv or misc."""
    return UNITS.get(name, "misc")


@dataclass
class Step:
    """One executable instruction with all its addresses resolved.

    ``kind``: load, save, conv, alu, elew or nop. Index arrays are int64 into the flat bank memory
    (``x``, ``w``, ``b``, ``out``, ``src``) or into a DDR region (``ddr``).
    """

    index: int
    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    reg: int = -1
    ddr: np.ndarray | None = None      # DDR byte offsets read (load) or written (save)
    src: np.ndarray | None = None      # bank cells read by a save
    x: np.ndarray | None = None        # bank cells read as the feature-map input
    w: np.ndarray | None = None        # weight cells
    b: np.ndarray | None = None        # bias / prelu-slope cells
    out: np.ndarray | None = None      # bank cells written, (pixels, bytes incl. zero fill)
    out_bytes: int = 0                 # bytes of real data per output pixel (the rest is zero fill)
    mask: np.ndarray | None = None     # load: False where the channel-augmentation mask zeroes a byte


class Decoder:
    """Turns instructions into steps in program order (sticky INIT state, ELEWINIT FIFO)."""

    def __init__(self, machine: Machine, region_sizes: dict[int, int]):
        self.m = machine
        self.region_sizes = dict(region_sizes)
        self.zero = machine.memory_bytes          # index of the ZERO cell
        self.min = machine.memory_bytes + 1       # index of the MIN (-128) cell
        self.convinit: dict[str, int] | None = None
        self.aluinit: dict[str, int] | None = None
        self.elew_fifo: deque[tuple[int, dict[str, int]]] = deque()
        self._index = 0
        self._name = ""

    # -- helpers ---------------------------------------------------------------------------
    def err(self, msg: str) -> DPUExecError:
        return DPUExecError(msg, self._index, self._name)

    def _bank(self, bank: int, what: str, image: bool = False) -> int:
        m = self.m
        if not 0 <= bank < m.num_banks:
            raise self.err(f"{what} {bank} is not a bank of {m.name} (banks 0-{m.num_banks - 1})")
        if image and not m.is_image_bank(bank):
            raise self.err(f"{what} {bank} is a {m.bank_group_name(bank)} bank; this engine accesses only "
                           f"feature-map banks 0-{m.convw_base - 1}")
        return bank

    def cells(self, bank: np.ndarray | int, line: np.ndarray | int, n: int) -> np.ndarray:
        """Flat indices of `n` consecutive bytes from `line` of `bank` (wrapping inside the bank);
        broadcast over the shapes of bank and line, with a trailing axis of length n."""
        m = self.m
        bank = np.asarray(bank, dtype=np.int64)
        line = np.asarray(line, dtype=np.int64)
        start = (line % m.depth) * m.width
        return (bank[..., None] * m.bank_bytes
                + (start[..., None] + np.arange(n, dtype=np.int64)) % m.bank_bytes)

    def write_cells(self, bank, line, n: int) -> np.ndarray:
        """Like :meth:`cells` for a write: n bytes plus the zero fill up to the end of the last line."""
        fill = (self.m.width - n % self.m.width) % self.m.width
        return self.cells(bank, line, n + fill)

    def _region(self, reg: int) -> int:
        size = self.region_sizes.get(reg)
        if size is None:
            have = ", ".join(f"REG_{r}" for r in sorted(self.region_sizes)) or "none"
            raise self.err(f"DDR region REG_{reg} is not provided (regions: {have})")
        return size

    def _in_rows(self, rows: int, bank_id_in: int, addrs: Sequence[int], stride_h: int, so_in: int,
                 jump_read_endl: int, what: str) -> tuple[np.ndarray, np.ndarray]:
        """(bank, base line) of input rows 0..rows-1 of a CONV/ALU tile (see dpu-semantics.md A31)."""
        pp = self.m.pp
        if so_in >= stride_h:
            raise self.err(f"stride_offset_in {so_in} must be below stride_h {stride_h}")
        t = so_in + np.arange(rows, dtype=np.int64)
        pos = bank_id_in % pp + t // stride_h
        group = pos // pp
        if rows and int(group[-1]) > 3:
            raise self.err(f"{what} input rows span {int(group[-1]) + 1} wraps of the {pp} banks of a "
                           f"group starting at bank {bank_id_in}; only 4 base addresses exist "
                           f"(bank_addr_in, _in_1, _in_2, _in_3)")
        base = np.asarray(addrs, dtype=np.int64)[group]
        return (bank_id_in - bank_id_in % pp) + pos % pp, base + (t % stride_h) * jump_read_endl

    def _out_rows(self, rows: int, bank_id_out: int, addr_out: int, stride_out: int, so_out: int,
                  jump_write_endl: int) -> tuple[np.ndarray, np.ndarray]:
        """(bank, base line) of output rows 0..rows-1 (dpu-semantics.md section 2, item 4)."""
        pp = self.m.pp
        u = np.arange(rows, dtype=np.int64) + so_out
        o = bank_id_out % pp
        k = o + u // stride_out
        return (bank_id_out - o) + k % pp, addr_out + (k // pp) * stride_out * jump_write_endl \
            + (u % stride_out) * jump_write_endl

    # -- the walk --------------------------------------------------------------------------
    def steps(self, program: Sequence[Any], start: int = 0) -> Iterator[Step]:
        for i in range(start, len(program)):
            yield self.step(i, program[i])

    def step(self, index: int, ins: Any) -> Step:
        self._index, self._name = index, getattr(ins, "name", "?")
        problem = ins.check() if hasattr(ins, "check") else "not an Instruction"
        if problem:
            raise self.err(f"corrupt instruction: {problem}")
        f = ins.fields
        name = ins.name
        if name == "LOAD":
            return self._load(f)
        if name == "SAVE":
            return self._save(f)
        if name == "CONVINIT":
            self.convinit = dict(f)
            return Step(index, name, "nop")
        if name == "CONV":
            return self._conv(f)
        if name == "ALUINIT":
            self.aluinit = dict(f)
            return Step(index, name, "nop")
        if name == "ALU":
            return self._alu(f)
        if name == "ELEWINIT":
            self._bank(f["bank_id_in"], "ELEWINIT bank_id_in")
            self.elew_fifo.append((index, dict(f)))
            return Step(index, name, "nop")
        if name == "ELEW":
            return self._elew(f)
        if name == "END":
            return Step(index, name, "nop")
        raise self.err(f"{name} cannot run on {self.m.name}: ISA1 targets have no pool or depthwise "
                       f"engine (pooling and depthwise convolution are ALU exec modes)")

    # -- LOAD / SAVE ------------------------------------------------------------------------
    def _load(self, f: dict[str, int]) -> Step:
        m = self.m
        bank = self._bank(f["bank_id"], "bank_id")
        length, channel, jr = f["length"], f["channel"], f["jump_read"]
        if f["mode_avg"]:
            raise self.err(f"mode_avg {f['mode_avg']} (mean subtraction) needs a mean-value bank, which "
                           f"{m.name} does not have")
        reg = f["reg_id"]
        size = self._region(reg)
        end = f["ddr_addr"] + (length - 1) * jr + channel
        if end > size:
            raise self.err(f"reads DDR REG_{reg} bytes [{f['ddr_addr']}, {end}), beyond the region's "
                           f"{size} bytes (address {end - 1})")
        ls = np.arange(length, dtype=np.int64)
        ddr = f["ddr_addr"] + ls[:, None] * jr + np.arange(channel, dtype=np.int64)
        mask = None
        if jr <= channel <= 64:
            mask = np.ones((length, channel), dtype=bool)
            pad_end_from = length - f["pad_idx"]
            aligned = -(-channel // m.width) * m.width
            for li in range(length):
                ps = max(0, f["pad_start"] - li * jr)
                if ps >= channel:
                    raise self.err(f"pad_start {f['pad_start']} masks all {channel} channels of pixel {li}")
                mask[li, :ps] = False
                if li >= pad_end_from:
                    pe = f["pad_end"] + jr * (li - pad_end_from)
                    first = aligned - pe
                    if first <= 0:
                        raise self.err(f"pad_end masks all channels of pixel {li}")
                    mask[li, first:] = False
            if mask.all():
                mask = None
        out = self.write_cells(bank, f["bank_addr"] + ls * f["jump_write"], channel)
        const = None
        if f["broadcast"] == 7:
            const = int(np.int8(np.uint8(f["const_value"])))
        return Step(self._index, "LOAD", "load", {"const": const}, reg=reg, ddr=ddr, out=out,
                    out_bytes=channel, mask=mask)

    def _save(self, f: dict[str, int]) -> Step:
        m = self.m
        bank = self._bank(f["bank_id"], "bank_id", image=True)
        length, channel, jw = f["length"], f["channel"], f["jump_write"]
        reg = f["reg_id"]
        size = self._region(reg)
        end = f["ddr_addr"] + (length - 1) * jw + channel
        if end > size:
            raise self.err(f"writes DDR REG_{reg} bytes [{f['ddr_addr']}, {end}), beyond the region's "
                           f"{size} bytes (address {end - 1})")
        ls = np.arange(length, dtype=np.int64)
        argmax = f["argmax"]
        if argmax >> 1 and not m.save_argmax:
            raise self.err(f"argmax {argmax}: {m.name} has no save-argmax")
        if argmax >> 1 and not f["const_en"]:
            mode = "argmax_value" if argmax & 1 else "argmax_index"
            ddr = f["ddr_addr"] + ls * jw
        else:
            mode = "const" if f["const_en"] else "copy"
            ddr = f["ddr_addr"] + ls[:, None] * jw + np.arange(channel, dtype=np.int64)
        src = None
        if mode != "const":
            src = self.cells(bank, f["bank_addr"] + ls * f["jump_read"], channel)
        return Step(self._index, "SAVE", "save",
                    {"mode": mode, "const": int(np.int8(np.uint8(f["const_value"])))},
                    reg=reg, ddr=ddr, src=src)

    # -- CONV ------------------------------------------------------------------------------
    def _conv(self, f: dict[str, int]) -> Step:
        m = self.m
        ci = self.convinit
        if ci is None:
            raise self.err("CONV before any CONVINIT")
        kh, kw, sh, sw = ci["kernel_h"], ci["kernel_w"], ci["stride_h"], ci["stride_w"]
        self._bank(f["bank_id_in"], "bank_id_in", image=True)
        self._bank(f["bank_id_out"], "bank_id_out", image=True)
        if max(kh, kw) > m.conv_kernel_max:
            raise self.err(f"kernel {kw}x{kh} exceeds the conv engine's 1-{m.conv_kernel_max}")
        if max(sh, sw) > m.conv_stride_max:
            raise self.err(f"stride {sw}x{sh} exceeds the conv engine's 1-{m.conv_stride_max}")
        act = ci["act_type"]
        if act not in m.conv_acts:
            raise self.err(f"act_type {act} is not supported by the conv engine of {m.name}")
        if ci["shift_bias"] > 20:
            raise self.err(f"shift_bias {ci['shift_bias']} exceeds 20")
        vpp, length, cg = ci["valid_pixel_parallel"], f["length"], f["channel_group"]
        if vpp > m.pp:
            raise self.err(f"valid_pixel_parallel {vpp} exceeds the pixel parallelism {m.pp}")
        ic = cg * m.icp
        co = f["channel_offset"]
        if co > ic:
            raise self.err(f"channel_offset {co} exceeds the {ic} input channels")
        rows = (vpp - 1) * sh + kh
        cols = (length - 1) * sw + kw
        x = self._tile_input(f, rows, cols, ic, ci["stride_offset_in"], ci["jump_read"],
                             ci["jump_read_endl"], sh, kh, kw, co, self.zero, "CONV")
        x = self._windows(x, vpp, length, kh, kw, sh, sw)             # (vpp*length, kh*kw, ic)
        x = x.reshape(vpp * length, kh * kw * ic)
        # weights: output channel o in CONVW bank o, line baw + (j*kw + k)*cg, ic bytes per (j, k)
        taps = np.arange(kh * kw, dtype=np.int64)
        wl = f["bank_addr_weights"] + taps * cg                       # (kh*kw,)
        banks = m.convw_base + np.arange(m.ocp, dtype=np.int64)
        w = self.cells(banks[:, None], wl[None, :], ic)               # (ocp, kh*kw, ic)
        w = w.reshape(m.ocp, kh * kw * ic).T                          # (K, ocp)
        b = self.cells(m.bias_bank, f["bank_addr_bias"], m.ocp)
        ob, ol = self._out_rows(vpp, f["bank_id_out"], f["bank_addr_out"], ci["stride_out"],
                                ci["stride_offset_out"], ci["jump_write_endl"])
        lines = ol[:, None] + np.arange(length, dtype=np.int64)[None, :] * ci["jump_write"]
        out = self.write_cells(ob[:, None], lines, m.ocp).reshape(vpp * length, -1)
        return Step(self._index, "CONV", "conv",
                    {"shift_cut": ci["shift_cut"], "shift_bias": ci["shift_bias"], "act": act},
                    x=x, w=w, b=b, out=out, out_bytes=m.ocp)

    def _tile_input(self, f, rows, cols, ic, so_in, jump_read, jump_read_endl, sh, kh, kw, co, pad_cell,
                    what, kd: int = 1):
        """Cells of the (rows, cols, kd*ic) input tile with padding and channel offset applied."""
        addrs = (f["bank_addr_in"], f["bank_addr_in_1"], f["bank_addr_in_2"], f["bank_addr_in_3"])
        rb, rl = self._in_rows(rows, f["bank_id_in"], addrs, sh, so_in, jump_read_endl, what)
        lines = rl[:, None] + np.arange(cols, dtype=np.int64)[None, :] * jump_read
        x = self.cells(rb[:, None], lines, kd * ic)                    # (rows, cols, kd*ic)
        if pad_cell is None:
            return x
        pl, pt, pr, pb = f["pad_left"], f["pad_top"], f["pad_right"], f["pad_bottom"]
        x[:, :min(pl, cols)] = pad_cell
        x[:min(pt, rows)] = pad_cell
        x[:, max(cols - kw + pr + 1, 0):] = pad_cell
        x[max(rows - kh + pb + 1, 0):] = pad_cell
        if co:
            x.reshape(rows, cols, kd, ic)[..., ic - co:] = pad_cell
        return x

    @staticmethod
    def _windows(x: np.ndarray, oh: int, ow: int, kh: int, kw: int, sh: int, sw: int) -> np.ndarray:
        """(oh*ow, kh*kw, C) sliding windows of a (rows, cols, C) tile."""
        r = (np.arange(oh)[:, None, None, None] * sh + np.arange(kh)[None, None, :, None])
        c = (np.arange(ow)[None, :, None, None] * sw + np.arange(kw)[None, None, None, :])
        return x[r, c].reshape(oh * ow, kh * kw, x.shape[-1])

    # -- ALU -------------------------------------------------------------------------------
    def _alu(self, f: dict[str, int]) -> Step:
        m = self.m
        ai = self.aluinit
        if ai is None:
            raise self.err("ALU before any ALUINIT")
        mode = ai["exec_mode"]
        if mode > W16B0:
            raise self.err(f"exec_mode {mode} is not an ALU mode (0-8)")
        kh, kw, sh, sw = ai["kernel_h"], ai["kernel_w"], ai["stride_h"], ai["stride_w"]
        kd = f["kernel_d"]
        self._bank(f["bank_id_in"], "bank_id_in", image=True)
        self._bank(f["bank_id_out"], "bank_id_out", image=True)
        if max(kh, kw) > m.alu_kernel_max or max(sh, sw) > m.alu_stride_max:
            raise self.err(f"kernel {kw}x{kh} / stride {sw}x{sh} exceed the ALU's limits")
        act = ai["act_type"]
        if act not in m.alu_acts:
            raise self.err(f"act_type {act} is not supported by the ALU of {m.name}")
        if ai["shift_bias"] > 20:
            raise self.err(f"shift_bias {ai['shift_bias']} exceeds 20")
        if mode in (LEAKYRELU, PRELU, HSIGMOID) and (kh, kw, sh, sw, kd) != (1, 1, 1, 1, 1):
            raise self.err(f"ALU {ALU_MODE_NAMES[mode]} needs kernel 1x1x1 and stride 1")
        if kd != 1 and mode not in (DWCV, DWCV_NB, W16B0):
            raise self.err(f"kernel_d {kd} with ALU {ALU_MODE_NAMES[mode]} is not supported by the fixflow "
                           f"interpreter")
        vpp, length, cg = f["valid_pixel_parallel"], ai["length"], ai["channel_group"]
        if vpp > m.alu_pp:
            raise self.err(f"valid_pixel_parallel {vpp} exceeds the ALU pixel parallelism {m.alu_pp}")
        c = cg * m.icp
        co = ai["channel_offset"]
        if co > c:
            raise self.err(f"channel_offset {co} exceeds the {c} channels")
        rows = (vpp - 1) * sh + kh
        cols = (length - 1) * sw + kw
        pad_cell = None if mode == MAXREDUCE else (self.min if mode == MAXPOOL else self.zero)
        x = self._tile_input(f, rows, cols, c, ai["stride_offset_in"], ai["jump_read"],
                             ai["jump_read_endl"], sh, kh, kw, co, pad_cell, "ALU", kd)
        x = self._windows(x, vpp, length, kh, kw, sh, sw)             # (npix, kh*kw, kd*c)
        x = x.reshape(vpp * length, kh * kw * kd, c)
        w = b = None
        if mode in (DWCV, DWCV_NB, W16B0):
            # W16B0: 2 bytes per channel (little-endian int16), depth step 2*channel_group lines
            size = 2 if mode == W16B0 else 1
            j = np.arange(kh, dtype=np.int64)[:, None, None]
            k = np.arange(kw, dtype=np.int64)[None, :, None]
            d = np.arange(kd, dtype=np.int64)[None, None, :]
            jrw = ai["jump_read_weights"]
            wl = f["bank_addr_weights"] + j * kw * jrw + k * jrw + d * cg * size
            w = self.cells(m.dwconvw_bank, wl, size * c).reshape(kh * kw * kd, size * c)
        if mode == DWCV:
            b = self.cells(m.bias_bank, f["bank_addr_bias"], c)
        if mode == PRELU:
            b = self.cells(m.dwconvw_bank, f["bank_addr_weights"], c)
        ob, ol = self._out_rows(vpp, f["bank_id_out"], f["bank_addr_out"], ai["stride_out"],
                                ai["stride_offset_out"], ai["jump_write_endl"])
        lines = ol[:, None] + np.arange(length, dtype=np.int64)[None, :] * ai["jump_write"]
        out = self.write_cells(ob[:, None], lines, c).reshape(vpp * length, -1)

        def shift_p(v: int) -> int:      # the value v means: divide by 2^shift_p
            return v - 32 if v >= 32 else -v

        params = {"mode": mode, "act": act, "cp": m.icp, "shift_cut": ai["shift_cut"], "shift_bias": ai["shift_bias"],
                  "multi_factor": int(np.int8(np.uint8(ai["multi_factor"]))),
                  "shift_p_p": shift_p(ai["shift_prelu_p"]), "shift_p_n": shift_p(ai["shift_prelu_n"])}
        return Step(self._index, "ALU", "alu", params, x=x, w=w, b=b, out=out, out_bytes=c)

    # -- ELEW ------------------------------------------------------------------------------
    def _elew(self, f: dict[str, int]) -> Step:
        m = self.m
        num, vpp, length, cg = f["num"], f["valid_pixel_parallel"], f["length"], f["channel_group"]
        et, act = f["elew_type"], f["act_type"]
        if et not in (0, 1):
            raise self.err(f"elew_type {et} is neither ADD (0) nor MULT (1)")
        if et == 1 and num != 2:
            raise self.err(f"ELEW MULT needs num 2, got {num}")
        if act not in m.elew_acts:
            raise self.err(f"act_type {act} is not supported by the element-wise engine of {m.name}")
        if vpp > m.alu_pp:
            raise self.err(f"valid_pixel_parallel {vpp} exceeds the element-wise pixel parallelism {m.alu_pp}")
        if len(self.elew_fifo) < num:
            raise self.err(f"ELEW with num {num} but only {len(self.elew_fifo)} pending ELEWINIT")
        entries = [self.elew_fifo.popleft() for _ in range(num)]
        pp = m.pp
        c = cg * m.icp
        xs, shifts = [], []
        for want, (at, e) in enumerate(entries):
            if e["id"] != want:
                raise self.err(f"ELEWINIT at instruction {at} has id {e['id']}, expected {want}")
            if e["jump_bank"] * vpp > pp:
                raise self.err(f"jump_bank {e['jump_bank']} x valid_pixel_parallel {vpp} exceeds the "
                               f"{pp} banks of a group")
            bid = self._bank(e["bank_id_in"], "ELEWINIT bank_id_in", image=True)
            k = np.arange(vpp, dtype=np.int64)
            if e["share_pp"]:
                banks = np.full(vpp, bid, dtype=np.int64)
                base = np.full(vpp, e["bank_addr_in"], dtype=np.int64)
            else:
                raw = bid + k * e["jump_bank"]
                gbase = bid - bid % pp
                banks = gbase + raw % pp
                base = e["bank_addr_in"] + ((raw - gbase) // pp) * e["jump_read_endl"]
            lines = base[:, None] + np.arange(length, dtype=np.int64)[None, :] * e["jump_read"]
            xs.append(self.cells(banks[:, None], lines, c).reshape(vpp * length, c))
            shifts.append(e["shift_read"])
        bo = self._bank(f["bank_id_out"], "bank_id_out", image=True)
        k = np.arange(vpp, dtype=np.int64)
        raw = bo + k
        gbase = bo - bo % pp
        banks = gbase + raw % pp
        base = f["bank_addr_out"] + ((raw - gbase) // pp) * f["jump_write_endl"]
        lines = base[:, None] + np.arange(length, dtype=np.int64)[None, :] * f["jump_write"]
        out = self.write_cells(banks[:, None], lines, c).reshape(vpp * length, -1)
        return Step(self._index, "ELEW", "elew",
                    {"type": et, "act": act, "shift_read": tuple(shifts), "shift_write": f["shift_write"]},
                    x=np.stack(xs), out=out, out_bytes=c)


__all__ = [
    "ACT_LEAKY",
    "ACT_NONE",
    "ACT_RELU",
    "ACT_RELU6",
    "ALU_MODE_NAMES",
    "AVEPOOL",
    "DWCV",
    "DWCV_NB",
    "HSIGMOID",
    "LEAKYRELU",
    "MAXPOOL",
    "MAXREDUCE",
    "PRELU",
    "W16B0",
    "Decoder",
    "Step",
    "unit_of",
]
