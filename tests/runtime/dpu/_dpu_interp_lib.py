"""Build small DPU programs (as Instruction records) for single layers, and their expected outputs
computed independently with numpy in float64, literally as spec numerics.md writes the formulas.

Layout used by every builder (B4096: PP 8, ICP = OCP = 16, ALU PP 4):
- DDR REG_0 constants (weights, bias), REG_2 input feature map (H, W, C) NHWC, REG_3 output;
- input tile row t (= input row + pad_top) in feature-map group VB1 (banks 8-15): bank 8 + (t // sh) % 8,
  line base_g + (t % sh) * jre + (pixel + pad_left) * cg, where g = (t // sh) // 8 picks bank_addr_in_g;
- outputs in VB0 (banks 0-7), row h at bank h % 8, line out_base + (h // 8) * jwe + w * cg_out.
"""

from __future__ import annotations

import numpy as np

from fixflow.dialects.dpu.isa import Instruction
from fixflow.runtime.dpu.machine import Machine

I = Instruction.make
PP, CP = 8, 16
IN_BASE = (0, 400, 800, 1200)       # bank_addr_in, _in_1, _in_2, _in_3
OUT_BASE = 1600
TARGET = "DPUCZDX8G_ISA1_B4096"


def round_sat(y: np.ndarray) -> np.ndarray:
    """half_up then saturate, in float64 (numerics.md)."""
    return np.clip(np.floor(y + 0.5), -128, 127).astype(np.int8)


def act_f(y: np.ndarray, act: int) -> np.ndarray:
    if act == 1:
        return np.maximum(y, 0.0)
    if act == 3:
        return np.where(y < 0, y * 26.0 / 256.0, y)
    if act == 4:
        return np.minimum(np.maximum(y, 0.0), 96.0)
    return y


class Prog:
    """An instruction list plus the DDR regions it runs on."""

    def __init__(self, const_size: int = 1 << 19, in_size: int = 1 << 14, out_size: int = 1 << 14):
        self.ins: list[Instruction] = []
        self.const = np.zeros(const_size, dtype=np.int8)
        self.inp = np.zeros(in_size, dtype=np.int8)
        self.out_size = out_size
        self.cpos = 0

    def regions(self) -> dict[int, np.ndarray]:
        return {0: self.const.copy(), 2: self.inp.copy(), 3: np.zeros(self.out_size, dtype=np.int8)}

    def put_const(self, data: np.ndarray) -> int:
        data = np.asarray(data, dtype=np.int8).ravel()
        at = self.cpos
        self.const[at:at + data.size] = data
        self.cpos = -(-(at + data.size) // 64) * 64
        return at

    def load(self, bank: int, line: int, reg: int, ddr: int, channel: int, length: int = 1,
             jump_read: int | None = None, jump_write: int = 1) -> None:
        self.ins.append(I("LOAD", bank_id=bank, bank_addr=line, reg_id=reg, ddr_addr=ddr, channel=channel,
                          length=length, jump_read=jump_read or channel, jump_write=jump_write))

    def load_fmap(self, x: np.ndarray, sh: int, pt: int, pl: int, jre: int, base_bank: int = 8,
                  ddr: int = 0) -> None:
        """Input (H, W, C) to REG_2 at `ddr` and into the VB1 tile layout."""
        h, w, c = x.shape
        cg = c // CP
        self.inp[ddr:ddr + x.size] = x.ravel()
        for r in range(h):
            t = r + pt
            k = t // sh
            bank, g = base_bank + k % PP, k // PP
            line = IN_BASE[g] + (t % sh) * jre + pl * cg
            self.load(bank, line, 2, ddr + r * w * c, c, length=w, jump_read=c, jump_write=cg)

    def save_rows(self, rows: int, length: int, c: int, jwe: int, ddr: int = 0, base_bank: int = 0) -> None:
        cg = c // CP
        for h in range(rows):
            self.ins.append(I("SAVE", bank_id=base_bank + h % PP, bank_addr=OUT_BASE + (h // PP) * jwe,
                              jump_read=cg, jump_write=c, channel=c, length=length, reg_id=3,
                              ddr_addr=ddr + h * length * c))
        self.ins.append(I("END"))


def out_fmap(regions: dict[int, np.ndarray], rows: int, cols: int, c: int) -> np.ndarray:
    return regions[3][:rows * cols * c].reshape(rows, cols, c)


def tile_geometry(h: int, w: int, kh: int, kw: int, sh: int, sw: int, pads):
    """(oh, ow, src_h, src_w, pad_right field, pad_bottom field) for a one-tile layer."""
    pt, pb, pl, pr = pads
    oh = (h + pt + pb - kh) // sh + 1
    ow = (w + pl + pr - kw) // sw + 1
    src_h = (oh - 1) * sh + kh
    src_w = (ow - 1) * sw + kw
    prf = kw - 1 - max(0, src_w - (pl + w))
    pbf = kh - 1 - max(0, src_h - (pt + h))
    return oh, ow, src_h, src_w, prf, pbf


def conv_program(x, wt, bias, stride=(1, 1), pads=(0, 0, 0, 0), shift_cut=7, shift_bias=3, act=0):
    """One CONV tile (16 output channels). x (H, W, C) int8, wt (16, kh, kw, C), bias (16,)."""
    h, w, c = x.shape
    oc, kh, kw, _ = wt.shape
    assert oc == 16 and c % CP == 0
    cg = c // CP
    sh, sw = stride
    pt, pb, pl, pr = pads
    oh, ow, src_h, src_w, prf, pbf = tile_geometry(h, w, kh, kw, sh, sw, pads)
    assert oh <= PP
    jre = (w + pl + pr + 1) * cg
    p = Prog()
    wat = p.put_const(wt)
    bat = p.put_const(bias)
    for o in range(16):
        p.load(16 + o, 100, 0, wat + o * kh * kw * c, kh * kw * c)
    p.load(33, 7, 0, bat, 16)
    p.load_fmap(x, sh, pt, pl, jre)
    p.ins.append(I("CONVINIT", kernel_h=kh, kernel_w=kw, stride_h=sh, stride_w=sw, shift_cut=shift_cut,
                   shift_bias=shift_bias, act_type=act, jump_read=cg, jump_read_endl=jre, jump_write=1,
                   jump_write_endl=ow, stride_out=1, valid_pixel_parallel=oh))
    p.ins.append(I("CONV", bank_id_in=8, bank_addr_in=IN_BASE[0], bank_addr_in_1=IN_BASE[1],
                   bank_addr_in_2=IN_BASE[2], bank_addr_in_3=IN_BASE[3], channel_group=cg, length=ow,
                   pad_left=pl, pad_top=pt, pad_right=prf, pad_bottom=pbf, bank_id_out=0,
                   bank_addr_out=OUT_BASE, bank_addr_weights=100, bank_addr_bias=7))
    p.save_rows(oh, ow, 16, ow)
    return p, (oh, ow, 16)


def conv_expected(x, wt, bias, stride=(1, 1), pads=(0, 0, 0, 0), shift_cut=7, shift_bias=3, act=0):
    pt, pb, pl, pr = pads
    xp = np.pad(x.astype(np.int64), ((pt, pb), (pl, pr), (0, 0)))
    oc, kh, kw, c = wt.shape
    sh, sw = stride
    oh = (xp.shape[0] - kh) // sh + 1
    ow = (xp.shape[1] - kw) // sw + 1
    acc = np.zeros((oh, ow, oc), dtype=np.int64)
    for j in range(kh):
        for k in range(kw):
            patch = xp[j:j + (oh - 1) * sh + 1:sh, k:k + (ow - 1) * sw + 1:sw]
            acc += np.einsum("hwc,oc->hwo", patch, wt[:, j, k].astype(np.int64))
    y = (2.0 * acc + bias.astype(np.float64) * 2.0 ** shift_bias) / 2.0 ** (shift_cut + 1)
    return round_sat(act_f(y, act))


def alu_program(x, mode, kernel=(2, 2), stride=(2, 2), pads=(0, 0, 0, 0), shift_cut=0, multi_factor=0,
                wt=None, bias=None, shift_bias=0, act=0, prelu_shifts=(0, 0)):
    """One ALU tile over x (H, W, C); wt (kh, kw, C) for depthwise, bias (C,), slopes via `bias` for PRELU."""
    h, w, c = x.shape
    cg = c // CP
    kh, kw = kernel
    sh, sw = stride
    pt, pb, pl, pr = pads
    oh, ow, src_h, src_w, prf, pbf = tile_geometry(h, w, kh, kw, sh, sw, pads)
    assert oh <= 4
    jre = (w + pl + pr + 1) * cg
    p = Prog()
    if wt is not None:
        p.load(32, 50, 0, p.put_const(wt), wt.size)
    if bias is not None:
        p.load(33 if mode != 1 else 32, 9, 0, p.put_const(bias), c)
    p.load_fmap(x, sh, pt, pl, jre)
    p.ins.append(I("ALUINIT", exec_mode=mode, kernel_h=kh, kernel_w=kw, stride_h=sh, stride_w=sw,
                   length=ow, channel_group=cg, jump_read=cg, jump_read_endl=jre, jump_write=cg,
                   jump_write_endl=ow * cg, stride_out=1, shift_cut=shift_cut, shift_bias=shift_bias,
                   multi_factor=multi_factor & 0xFF, act_type=act, jump_read_weights=cg * (2 if mode == 8 else 1),
                   shift_prelu_p=prelu_shifts[0], shift_prelu_n=prelu_shifts[1]))
    p.ins.append(I("ALU", bank_id_in=8, bank_addr_in=IN_BASE[0], bank_addr_in_1=IN_BASE[1],
                   bank_addr_in_2=IN_BASE[2], bank_addr_in_3=IN_BASE[3], valid_pixel_parallel=oh,
                   pad_left=pl, pad_top=pt, pad_right=prf, pad_bottom=pbf, bank_id_out=0,
                   bank_addr_out=OUT_BASE, bank_addr_weights=50 if mode != 1 else 9, bank_addr_bias=9,
                   kernel_d=1))
    p.save_rows(oh, ow, c, ow * cg)
    return p, (oh, ow, c)


def pool_windows(x, kernel, stride, pads, pad_value):
    pt, pb, pl, pr = pads
    xp = np.pad(x.astype(np.int64), ((pt, pb), (pl, pr), (0, 0)), constant_values=pad_value)
    kh, kw = kernel
    sh, sw = stride
    oh = (xp.shape[0] - kh) // sh + 1
    ow = (xp.shape[1] - kw) // sw + 1
    win = np.stack([xp[j:j + (oh - 1) * sh + 1:sh, k:k + (ow - 1) * sw + 1:sw]
                    for j in range(kh) for k in range(kw)])
    return win                                  # (kh*kw, oh, ow, C)


def alu_scale(shift_cut: int) -> float:
    return 2.0 ** -(shift_cut - 8) if shift_cut >= 8 else 2.0 ** shift_cut


def elew_program(xs, shift_read, shift_write, elew_type=0, act=0):
    """One ELEW tile: inputs xs[k] (rows <= 4, W, C) in VB1 row r at bank 8 + r (input k at line 300*k)."""
    rows, w, c = xs[0].shape
    cg = c // CP
    p = Prog()
    for k, x in enumerate(xs):
        ddr = k * x.size
        p.inp[ddr:ddr + x.size] = x.ravel()
        for r in range(rows):
            p.load(8 + r, 300 * k, 2, ddr + r * w * c, c, length=w, jump_read=c, jump_write=cg)
        p.ins.append(I("ELEWINIT", id=k, bank_id_in=8, bank_addr_in=300 * k, jump_read=cg, jump_bank=1,
                       jump_read_endl=1, shift_read=shift_read[k]))
    p.ins.append(I("ELEW", num=len(xs), bank_id_out=0, bank_addr_out=OUT_BASE, length=w, channel_group=cg,
                   valid_pixel_parallel=rows, jump_write=cg, jump_write_endl=1, shift_write=shift_write,
                   elew_type=elew_type, act_type=act))
    p.save_rows(rows, w, c, 1)
    return p, (rows, w, c)


def elew_expected(xs, shift_read, shift_write, elew_type=0, act=0):
    ts = [np.floor(x.astype(np.float64) * 4.0 / 2.0 ** s) for x, s in zip(xs, shift_read)]
    v = sum(ts) if elew_type == 0 else ts[0] * ts[1]
    v = v * (2.0 ** shift_write if shift_write < 16 else 1.0 / 2.0 ** (shift_write - 16))
    v = v / (4.0 if elew_type == 0 else 16.0)
    if act == 1:
        v = np.maximum(v, 0.0)
    return round_sat(v)


# ---- random instruction streams (fast-mode and simulator comparisons) --------------------------------
SIZES = {0: 8192, 1: 4096, 2: 4096, 3: 4096}


def random_program(rng, n=60, bad=False, sizes=SIZES, target=TARGET, lines=2048):
    """A random but (unless `bad`) executable stream over all four units of `target`; bank line
    addresses below `lines` (fewer lines: denser reuse of the same data)."""
    SIZES = sizes  # noqa: N806
    mach = Machine.from_target(target)
    pp, alu_pp = mach.pp, mach.alu_pp
    ins = []
    r = rng.integers

    def line():
        return int(r(0, lines))

    def img_bank():
        return int(r(0, 2 * pp))

    for _ in range(n):
        kind = rng.choice(["load", "load", "load", "conv", "alu", "elew", "save"])
        if kind == "load":
            ch = int(r(1, 70))
            length = int(r(1, 6))
            jr = int(r(1, 80))
            reg = int(r(0, 4))
            top = SIZES[reg] - ((length - 1) * jr + ch)
            ins.append(I("LOAD", bank_id=int(r(0, mach.num_banks)), bank_addr=line(), reg_id=reg,
                         ddr_addr=int(r(0, top + (50 if bad else 1))), channel=ch, length=length, jump_read=jr,
                         jump_write=int(r(1, 4)), broadcast=int(rng.choice([0, 7])), const_value=int(r(0, 256)),
                         pad_start=int(r(0, 3)), pad_end=int(r(0, 3)), pad_idx=int(r(1, 3))))
        elif kind == "conv":
            kh, kw, sh, sw = (int(v) for v in r(1, 4, size=4))
            vpp = int(r(1, pp + 1))
            ins.append(I("CONVINIT", kernel_h=kh, kernel_w=kw, stride_h=sh, stride_w=sw,
                         shift_cut=int(r(0, 14)), shift_bias=int(r(0, 12)), act_type=int(rng.choice([0, 1, 3, 4])),
                         jump_read=int(r(1, 4)), jump_read_endl=int(r(1, 40)), jump_write=int(r(1, 3)),
                         jump_write_endl=int(r(1, 40)), stride_out=int(r(1, 3)), valid_pixel_parallel=vpp,
                         stride_offset_in=int(r(0, sh)), stride_offset_out=int(r(0, 2))))
            for _ in range(int(r(1, 4))):
                ins.append(I("CONV", bank_id_in=int(r(0, 2)) * pp + int(r(0, 2)), bank_addr_in=line(),
                             bank_addr_in_1=line(), bank_addr_in_2=line(), bank_addr_in_3=line(),
                             channel_group=int(r(1, 3)), length=int(r(1, 9)), pad_left=int(r(0, 3)),
                             pad_top=int(r(0, 3)), pad_right=int(r(0, 4)), pad_bottom=int(r(0, 4)),
                             channel_offset=int(r(0, 5)), bank_id_out=img_bank(), bank_addr_out=line(),
                             bank_addr_weights=line(), bank_addr_bias=line()))
        elif kind == "alu":
            mode = int(rng.choice([0, 2, 3, 5, 6, 4, 1, 7, 8]))
            one = mode in (1, 4, 7)
            kh, kw, sh, sw = (1, 1, 1, 1) if one else (int(v) for v in r(1, 4, size=4))
            ins.append(I("ALUINIT", exec_mode=mode, kernel_h=kh, kernel_w=kw, stride_h=sh, stride_w=sw,
                         length=int(r(1, 7)), channel_group=int(r(1, 3)), jump_read=int(r(1, 3)),
                         jump_read_endl=int(r(1, 30)), jump_write=int(r(1, 3)), jump_write_endl=int(r(1, 30)),
                         stride_out=int(r(1, 3)), shift_cut=int(r(0, 14)), shift_bias=int(r(0, 8)),
                         multi_factor=int(r(0, 256)), act_type=int(rng.choice([0, 1, 4])),
                         jump_read_weights=int(r(0, 4)), channel_offset=int(r(0, 4)),
                         shift_prelu_p=int(r(0, 40)), shift_prelu_n=int(r(0, 40)),
                         stride_offset_in=int(r(0, sh)), stride_offset_out=int(r(0, 2))))
            for _ in range(int(r(1, 4))):          # several tiles per ALUINIT: mergeable in fast mode
                ins.append(I("ALU", bank_id_in=int(r(0, 2)) * pp + int(r(0, 3)), bank_addr_in=line(),
                             bank_addr_in_1=line(), bank_addr_in_2=line(), bank_addr_in_3=line(),
                             valid_pixel_parallel=int(r(1, alu_pp + 1)), pad_left=int(r(0, 3)), pad_top=int(r(0, 3)),
                             pad_right=int(r(0, 4)), pad_bottom=int(r(0, 4)), bank_id_out=img_bank(),
                             bank_addr_out=line(), bank_addr_weights=line(), bank_addr_bias=line(),
                             kernel_d=int(r(1, 3)) if mode in (0, 6, 8) else 1))
        elif kind == "elew":
            num = int(r(1, 4))
            et = int(r(0, 2)) if num == 2 else 0
            shifts = [int(r(0, 5)) for _ in range(num)]
            common = dict(num=num, elew_type=et, act_type=int(r(0, 2)), channel_group=int(r(1, 3)),
                          shift_write=int(r(0, 22)))
            for _ in range(int(r(1, 4))):          # repeated with the same parameters: mergeable
                vpp = int(r(1, alu_pp + 1))
                for k in range(num):
                    ins.append(I("ELEWINIT", id=k, bank_id_in=img_bank(), bank_addr_in=line(),
                                 jump_read=int(r(0, 3)), jump_bank=int(r(1, 3)), jump_read_endl=int(r(1, 20)),
                                 shift_read=shifts[k], share_pp=int(r(0, 2))))
                ins.append(I("ELEW", valid_pixel_parallel=vpp, bank_id_out=img_bank(), bank_addr_out=line(),
                             length=int(r(1, 7)), jump_write=int(r(1, 3)), jump_write_endl=int(r(1, 20)),
                             **common))
        else:
            ch = int(r(1, 70))
            length = int(r(1, 6))
            jw = int(r(1, 80))
            reg = int(r(0, 4))
            top = SIZES[reg] - ((length - 1) * jw + ch)
            ins.append(I("SAVE", bank_id=img_bank(), bank_addr=line(), reg_id=reg,
                         ddr_addr=int(r(0, top + (50 if bad else 1))), channel=ch, length=length, jump_write=jw,
                         jump_read=int(r(1, 4)), argmax=int(rng.choice([0, 0, 2, 3])),
                         const_en=int(rng.random() < 0.1), const_value=int(r(0, 256))))
    if bad:
        for k in (0, 1):
            if ins[k].name in ("CONV", "ALU"):
                ins.pop(k)          # keep the stream free of CONV-before-CONVINIT noise
    ins.append(I("END"))
    return ins
