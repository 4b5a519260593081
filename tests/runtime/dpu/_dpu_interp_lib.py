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
