"""Instruction selection and bank allocation: layers -> a DPUCZDX8G instruction stream.

A layer reads its input feature map from DDR and writes its output feature map to DDR, except where a
map stays on chip (below). Banks:
- feature maps: band t of the program (counting across layers) uses feature-map bank group
  VB(t % 2): its input window in lines [0, depth/2), its output in lines [depth/2, depth). The LOAD of
  band t+1 therefore never touches the banks band t computes on (ping-pong);
- conv weights: CONVW lines [b, b + n * KH*KW*cg) for a chunk of n output-channel groups (OCP channels
  each; output channel i of the chunk in CONVW bank i % OCP); a chunk takes half the bank when one group
  fits half, b alternating between 0 and depth/2 from chunk to chunk (double buffering: the next
  chunk's or layer's weights LOAD while this one computes); a layer whose groups do not all fit is
  computed chunk by chunk, reloading its input for each chunk;
- bias: BIAS lines [b, b + n) (OCP values a line); depthwise weights: DWCONVW lines [b, b + KH*KW*cg);
  both alternate halves likewise.
On chip (`fusions`, `chains`):
- a conv and the ELEW right after it that alone reads its output run fused band by band: the ELEW reads
  the conv's output band in the banks, its other inputs are LOADed into free band-sized regions beside
  it (`tiling.extra_regions`), its result is SAVEd;
- a conv/ALU layer whose output only the next conv/ALU layer reads, when that one computes the whole map
  in one band, writes straight into that layer's input window in the other group (`Dest`: the
  consumer's row-to-bank map through stride_out / stride_offset_out); no SAVE, no LOAD.
Conv + its activation is one CONV (the act_type field); dense is a CONV whose kernel covers the map;
pooling and depthwise conv are ALU exec modes (ISA1 has no POOL or DWCONV engine).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ...dialects.dpu.isa import Instruction
from .augment import channels as augment_channels, fold_columns, fold_layout, overflow
from .ddr import REG_CONST, REG_WORK, DdrPlan
from .layers import ACT_TYPES, ALU_MODES, Alias, AluLayer, Concat, ConvLayer, EltwiseLayer, FillLayer, FMap, Layer
from .tiling import (ALU_ENDL_MAX, CONV_ENDL_MAX, Band, Geometry, Plan, TilingError, extra_regions, in_cols,
                     in_lines, plan as make_plan, plan_channels, row_lines)


#: LOAD `channel` (14 bits, minus) and `jump_read` (16 bits, minus) fields
LOAD_CHANNEL_MAX = 16384
LOAD_JUMP_READ_MAX = 65536


@dataclass(frozen=True)
class Arch:
    """What code generation needs from a `fixflow.target.Target`."""

    pp: int
    icp: int
    ocp: int
    alu_pp: int
    depth: int
    vb: tuple[int, int]        # first bank id of VB0, VB1
    convw: int
    dwconvw: int
    bias: int
    augment: int = 0           # channel augmentation width (2 * ICP), 0 when the target has none

    @classmethod
    def of(cls, target) -> "Arch":
        vb = target.feature_map_groups
        return cls(target.pp, target.icp, target.ocp, target.alu_pp, vb[0].depth,
                   (vb[0].first_id, vb[1].first_id), target.bank_group_named("CONVW").first_id,
                   target.bank_group_named("DWCONVW").first_id, target.bank_group_named("BIAS").first_id,
                   getattr(target, "channel_augmentation", None) or 0)

    @property
    def half(self) -> int:
        return self.depth // 2


@dataclass
class Tagged:
    """An instruction and the layer (index) it belongs to."""

    ins: Instruction
    layer: int


@dataclass(frozen=True)
class Dest:
    """Where a chained layer writes its output: straight into its consumer's input window (the consumer's
    one band over the whole map), from line 0 of VB(vb): input row r is virtual row v = r + pt, stored in
    bank (v // sh) % PP at line (v // sh // PP) * sh * rl + (v % sh) * rl + (column + pl) * cg."""

    vb: int
    rl: int
    cg: int
    pt: int
    pl: int
    sh: int

    def out_fields(self, a: "Arch", oh: int, ow0: int, line: int) -> tuple[dict[str, int], dict[str, int]]:
        """(init fields, instruction fields) of a strip whose first output row is `oh` and first column
        `ow0`, writing line `line` of each pixel (the output channel group)."""
        v0 = oh + self.pt
        b0 = v0 // self.sh
        init = {"stride_out": self.sh, "stride_offset_out": v0 % self.sh, "jump_write": self.cg,
                "jump_write_endl": self.rl}
        ins = {"bank_id_out": a.vb[self.vb] + b0 % a.pp,
               "bank_addr_out": (b0 // a.pp) * self.sh * self.rl + (ow0 + self.pl) * self.cg + line}
        return init, ins


def conv_window(L: ConvLayer, a: Arch) -> tuple[int, int, int, int, int, int]:
    """(kernel_h, kernel_w, stride_h, stride_w, pad_left, lines a pixel) the CONV engine sees: with channel
    augmentation (`augment.py`) one augmented pixel of ceil(kw*IC / ICP) lines per output column, kernel and
    stride 1 across, no column padding."""
    kh, kw = L.win.kernel
    sh, sw = L.win.stride
    if L.augment:
        return kh, 1, sh, 1, 0, math.ceil(L.augment / a.icp)
    if L.fold:
        return kh, -(-kw // sw), sh, 1, fold_layout(L)[0], math.ceil(sw * L.inp.c / a.icp)
    return kh, kw, sh, sw, L.win.pad[2], math.ceil(L.inp.c / a.icp)


def geometry(L: ConvLayer | AluLayer | EltwiseLayer, a: Arch, chunk_groups: int = 1) -> Geometry:
    if isinstance(L, EltwiseLayer):
        cg = math.ceil(L.out.c / a.icp)
        return Geometry(L.out.h, L.out.w, cg, L.out.h, L.out.w, 1, 1, 1, 1, 0, 0, cg, a.alu_pp, True, len(L.ins))
    kh, kw = L.win.kernel
    sh, sw = L.win.stride
    pt, _, pl, _ = L.win.pad
    cg = math.ceil(L.inp.c / a.icp)
    if isinstance(L, ConvLayer):
        kh, kw, sh, sw, pl, cg = conv_window(L, a)
        w = L.out.w if L.augment else fold_layout(L)[1] if L.fold else L.inp.w
        return Geometry(L.inp.h, w, cg, L.out.h, L.out.w, kh, kw, sh, sw, pt, pl, chunk_groups, a.pp, False)
    return Geometry(L.inp.h, L.inp.w, cg, L.out.h, L.out.w, kh, kw, sh, sw, pt, pl, cg, a.alu_pp, True)


def conv_chunk_groups(L: ConvLayer, a: Arch) -> int:
    """Output-channel groups whose weights fit CONVW together: half the bank when one group fits half
    (the other half takes the next chunk's weights while this one computes), else the whole bank."""
    kh, kw, _, _, _, cg = conv_window(L, a)
    per_group = kh * kw * cg
    if per_group > a.depth:
        raise ValueError(f"{kh}x{kw} kernel over {L.inp.c} channels needs {per_group} weight lines a bank "
                         f"(the bank has {a.depth})")
    budget = a.half if per_group <= a.half else a.depth
    return max(1, min(math.ceil(L.out.c / a.ocp), budget // per_group))


@dataclass
class Emitter:
    """Builds the instruction stream; keeps the sticky INIT state and the ping-pong counter."""

    arch: Arch
    ddr: DdrPlan
    tiling: dict[int, tuple[int | None, int | None]] = field(default_factory=dict)
    out: list[Tagged] = field(default_factory=list)
    band_count: int = 0
    fused: dict[int, int] = field(default_factory=dict)
    chain: dict[int, Geometry] = field(default_factory=dict)   # producer -> its consumer's input geometry
    tee: dict[int, Geometry] = field(default_factory=dict)     # the same, for a map other layers read from DDR
    dest: dict[int, Dest] = field(default_factory=dict)
    vb_fixed: dict[int, int] = field(default_factory=dict)
    onchip_in: set[int] = field(default_factory=set)
    weight_slots: dict[str, int] = field(default_factory=dict)
    _convinit: tuple | None = None
    _aluinit: tuple | None = None
    plans: dict[int, Plan] = field(default_factory=dict)
    notes: dict[int, str] = field(default_factory=dict)   # why a forced band cost a fusion / chain

    def emit(self, layer: int, name: str, **fields: int) -> Instruction:
        ins = Instruction.make(name, **fields)
        problem = ins.check()
        if problem is not None:
            raise ValueError(f"layer {layer}: {problem}")
        self.out.append(Tagged(ins, layer))
        return ins

    def band_vb(self, i: int) -> int:
        """The feature-map bank group of layer i's next band: fixed for a layer of an on-chip chain (its
        input is in that group, or its output goes to the other), else alternating (ping-pong)."""
        if i in self.vb_fixed:
            return self.vb_fixed[i]
        vb = self.band_count % 2
        self.band_count += 1
        return vb

    def slot(self, kind: str, lines: int) -> int:
        """First line of the next `lines`-line block of a weight/bias bank (`kind`): the two halves of
        the bank alternate (double buffering) when the block fits half, else line 0."""
        if lines > self.arch.half:
            return 0
        k = self.weight_slots.get(kind, 0)
        self.weight_slots[kind] = k + 1
        return (k % 2) * self.arch.half

    # ---- data movement
    def _load_input(self, i: int, L, g: Geometry, band: Band, vb: int, fmap=None, line_base: int = 0,
                    c_first: int = 0, n_ch: int | None = None) -> None:
        a = self.arch
        fm = L.inp if fmap is None else fmap
        n_ch = fm.c if n_ch is None else n_ch
        reg, base = fm.addr()
        r_lo = band.oh0 * g.sh - g.pt
        c_lo = band.ow0 * g.sw - g.pl
        ncols = in_cols(g, band.ow1 - band.ow0)
        rl = row_lines(g, band.ow1 - band.ow0)
        c0, c1 = max(c_lo, 0), min(c_lo + ncols, fm.w)
        nrows = (band.oh1 - band.oh0 - 1) * g.sh + g.kh
        for r in range(max(r_lo, 0), min(r_lo + nrows, fm.h)):
            v = r - r_lo
            b = v // g.sh
            line = line_base + (b // a.pp) * g.sh * rl + (v % g.sh) * rl + (c0 - c_lo) * g.cg
            self.emit(i, "LOAD", bank_id=a.vb[vb] + b % a.pp, bank_addr=line, jump_read=fm.pstride,
                      jump_write=g.cg, pad_idx=1, channel=n_ch, length=c1 - c0, reg_id=reg,
                      ddr_addr=base + r * fm.rstride + c0 * fm.pstride + c_first)

    def _load_packed_rows(self, i: int, L: ConvLayer, g: Geometry, band: Band, vb: int, line_base: int, rl: int, kind: str,
                          x0: int, step: int, *, pad_idx: int, pad_end: int, channel: int, length: int) -> None:
        """One LOAD per input row of the band for an augmented or folded first conv: `length` pixels of
        `step` bytes from column `x0` (the bytes before the map masked by pad_start, after it by pad_end)."""
        a = self.arch
        fm = L.inp
        reg, base = fm.addr()
        ic = fm.c
        r_lo = band.oh0 * g.sh - g.pt
        nrows = (band.oh1 - band.oh0 - 1) * g.sh + g.kh
        for r in range(max(r_lo, 0), min(r_lo + nrows, fm.h)):
            v = r - r_lo
            b = v // g.sh
            addr = base + r * fm.rstride + x0 * ic
            if addr < 0:
                raise ValueError(f"layer {i}: the {kind} LOAD of row {r} starts {-addr} bytes before its region "
                                 f"(no input margin)")
            self.emit(i, "LOAD", bank_id=a.vb[vb] + b % a.pp, bank_addr=line_base + (b // a.pp) * g.sh * rl
                      + (v % g.sh) * rl, jump_read=step, jump_write=g.cg, pad_idx=pad_idx,
                      pad_start=max(0, -x0) * ic, pad_end=pad_end, channel=channel, length=length, reg_id=reg,
                      ddr_addr=addr)

    def _load_augmented(self, i: int, L: ConvLayer, g: Geometry, band: Band, vb: int, line_base: int) -> None:
        """LOAD a band's input rows of an augmented conv (`augment.py`): per input row one LOAD of kw*IC bytes
        for every output column of the band (DDR step sw*IC), the columns outside the map masked."""
        a = self.arch
        fm = L.inp
        ic, sw, pl = fm.c, L.win.stride[1], L.win.pad[2]
        n = band.ow1 - band.ow0
        x0 = band.ow0 * sw - pl
        right = [overflow(L, x)[1] for x in range(band.ow0, band.ow1)]
        k = sum(r > 0 for r in right)
        pad_end = right[n - k] * ic + (-(-L.augment // a.icp) * a.icp - L.augment) if k else 0
        self._load_packed_rows(i, L, g, band, vb, line_base, row_lines(g, n), "augmented", x0, sw * ic,
                               pad_idx=max(k, 1), pad_end=pad_end, channel=L.augment, length=n)

    def _save_output(self, i: int, L, g: Geometry, band: Band, vb: int, c_first: int, n_ch: int,
                     out_base: int | None = None) -> None:
        a = self.arch
        out_base = a.half if out_base is None else out_base
        reg, base = L.out.addr()
        ps = L.out.pstride
        cols = band.ow1 - band.ow0
        orl = cols * g.opl
        for q in range(band.oh1 - band.oh0):
            oh = band.oh0 + q
            self.emit(i, "SAVE", bank_id=a.vb[vb] + q % a.pp, bank_addr=out_base + (q // a.pp) * orl,
                      jump_read=g.opl, jump_write=ps, length=cols, channel=n_ch, reg_id=reg,
                      ddr_addr=base + oh * L.out.rstride + band.ow0 * ps + c_first)

    def _strip_in(self, g: Geometry, band: Band, q0: int, base: int = 0) -> dict[str, int]:
        """bank_id_in offset and bank_addr_in[_1.._3] of a strip whose first output row is q0 (band rows),
        the band's input window starting at line `base`."""
        a = self.arch
        rl = row_lines(g, band.ow1 - band.ow0)
        vs = q0 * g.sh
        b = vs // g.sh
        addr = base + (b // a.pp) * g.sh * rl
        step = g.sh * rl
        return {"bank": b % a.pp, "bank_addr_in": addr % a.depth, "bank_addr_in_1": (addr + step) % a.depth,
                "bank_addr_in_2": (addr + 2 * step) % a.depth, "bank_addr_in_3": (addr + 3 * step) % a.depth}

    @staticmethod
    def _pads(L, g: Geometry, band: Band, oh: int, vpp: int) -> dict[str, int]:
        r0 = oh * g.sh - g.pt
        c0 = band.ow0 * g.sw - g.pl
        real_h = (vpp - 1) * g.sh + g.kh
        src_w = in_cols(g, band.ow1 - band.ow0)
        bottom = max(0, r0 + real_h - g.h)
        right = max(0, c0 + src_w - g.w)
        return {"pad_top": max(0, -r0), "pad_left": max(0, -c0),
                "pad_bottom": g.kh - 1 - bottom, "pad_right": g.kw - 1 - right}

    # ---- layers
    def conv(self, i: int, L: ConvLayer, fused: tuple[int, EltwiseLayer] | None = None) -> None:
        """A conv layer; `fused` = (index, layer) of the ELEW that consumes its output band by band from the
        banks (`fusable_eltwise`): the conv's output is never SAVEd, the ELEW's other inputs are LOADed
        beside it and the ELEW's result is SAVEd."""
        a = self.arch
        kh, kw, sh, sw, _, cg = conv_window(L, a)
        n_og = math.ceil(L.out.c / a.ocp)
        chunk = conv_chunk_groups(L, a)
        per_group = kh * kw * cg
        wreg_off = self.ddr.const[(i, "weights")]
        breg_off = self.ddr.const[(i, "bias")]
        for og0 in range(0, n_og, chunk):
            groups = min(chunk, n_og - og0)
            c_first = og0 * a.ocp
            n_ch = min(L.out.c, (og0 + groups) * a.ocp) - c_first
            g = geometry(L, a, groups)
            if fused is not None:
                g = replace(g, extra_regions=len(fused[1].ins))
            band = forced_band(self.tiling, i, fused[0]) if fused is not None else self.tiling.get(i, (None, None))
            p = make_plan(g, a.pp, a.half, *band)
            self.plans[i] = p
            if fused is not None:
                self.plans[fused[0]] = p
            wb = self.slot("convw", groups * per_group)
            bb = self.slot("bias", groups)
            self.emit(i, "LOAD", bank_id=a.bias, bank_addr=bb, jump_read=n_ch, jump_write=1, pad_idx=1,
                      channel=n_ch, length=1, reg_id=REG_CONST, ddr_addr=breg_off + c_first)
            ic = L.augment or L.inp.c         # bytes of one kernel tap (an augmented tap: a kernel row)
            block = kh * kw * ic               # one output channel's weights in REG_0
            if L.fold:
                self._load_folded_weights(i, L, wb, per_group, c_first, n_ch, wreg_off)
            elif (ic % a.icp == 0 or kh * kw == 1) and block <= LOAD_CHANNEL_MAX \
                    and a.ocp * block <= LOAD_JUMP_READ_MAX:
                # each channel's weights fill whole lines: one LOAD per CONVW bank moves all its channels
                for b in range(min(a.ocp, n_ch)):
                    self.emit(i, "LOAD", bank_id=a.convw + b, bank_addr=wb, jump_read=a.ocp * block,
                              jump_write=per_group, pad_idx=1, channel=block,
                              length=len(range(b, n_ch, a.ocp)), reg_id=REG_CONST,
                              ddr_addr=wreg_off + (c_first + b) * block)
            else:
                for k in range(n_ch):
                    o = c_first + k
                    self.emit(i, "LOAD", bank_id=a.convw + k % a.ocp, bank_addr=wb + (k // a.ocp) * per_group,
                              jump_read=ic, jump_write=cg, pad_idx=1, channel=ic, length=kh * kw,
                              reg_id=REG_CONST, ddr_addr=wreg_off + o * block)
            d = self.dest.get(i)
            for t, band in enumerate(p.bands()):
                vb = self.band_vb(i)
                # a chained layer's output is not in its own group: its input windows alternate halves
                base = (t % 2) * a.half if d is not None and i not in self.onchip_in else 0
                if L.augment:
                    self._load_augmented(i, L, g, band, vb, base)
                elif L.fold:
                    self._load_folded(i, L, g, band, vb, base)
                elif i not in self.onchip_in:
                    self._load_input(i, L, g, band, vb, line_base=base)
                cols_b = band.ow1 - band.ow0
                orl = cols_b * groups
                for oh, vpp in p.strips(band):
                    q0 = oh - band.oh0
                    init = dict(jump_read=cg, shift_cut=L.shift_cut, act_type=ACT_TYPES[L.act],
                                jump_read_endl=row_lines(g, cols_b), shift_bias=L.shift_bias, stride_out=1,
                                jump_write=groups, stride_offset_in=0, valid_pixel_parallel=vpp,
                                kernel_h=kh, stride_h=sh, jump_write_endl=orl, stride_offset_out=0,
                                kernel_w=kw, stride_w=sw)
                    out = {"bank_id_out": a.vb[vb] + q0 % a.pp, "bank_addr_out": a.half + (q0 // a.pp) * orl}
                    if d is not None:
                        dinit, out = d.out_fields(a, oh, band.ow0, og0)
                        init.update(dinit)
                    key = tuple(sorted(init.items()))
                    if key != self._convinit:
                        self.emit(i, "CONVINIT", **init)
                        self._convinit = key
                    s = self._strip_in(g, band, q0, base)
                    pads = self._pads(L, g, band, oh, vpp)
                    for k in range(groups):
                        self.emit(i, "CONV", bank_id_in=a.vb[vb] + s["bank"], bank_addr_in=s["bank_addr_in"],
                                  bank_addr_in_1=s["bank_addr_in_1"], bank_addr_in_2=s["bank_addr_in_2"],
                                  bank_addr_in_3=s["bank_addr_in_3"], channel_group=cg,
                                  channel_offset=cg * a.icp - (L.augment or L.fold * L.inp.c)
                                  if L.augment or L.fold else 0,
                                  bank_addr_weights=wb + k * per_group, bank_addr_bias=bb + k, length=cols_b,
                                  bank_id_out=out["bank_id_out"], bank_addr_out=out["bank_addr_out"] + k, **pads)
                if d is not None:              # the output is the next layer's input window
                    if i in self.tee:
                        self._save_window(i, L, band, d, c_first, n_ch, og0)
                    continue
                if fused is None:
                    self._save_output(i, L, g, band, vb, c_first, n_ch)
                else:
                    self._fused_elew(fused[0], fused[1], L.out, p, band, vb)

    def _load_folded(self, i: int, L: ConvLayer, g: Geometry, band: Band, vb: int, line_base: int) -> None:
        """LOAD a band's input rows of a column-folded conv (`augment.fold_columns`): per input row one LOAD of
        the band's pixels that touch the map (sw*IC bytes each, DDR step sw*IC), columns outside masked;
        pixels wholly outside are the CONV's padding."""
        a = self.arch
        fm = L.inp
        ic, sw, pl = fm.c, L.fold, L.win.pad[2]
        c_lo = band.ow0 * g.sw - g.pl
        ncols = in_cols(g, band.ow1 - band.ow0)
        q0, q1 = max(c_lo, 0), min(c_lo + ncols, g.w)
        p0, p1 = q0 + g.pl, q1 + g.pl                 # global pixels
        x0 = p0 * sw - pl
        over = max(0, (p1 - 1) * sw - pl + sw - fm.w)
        pad_end = over * ic + (-(-sw * ic // a.icp) * a.icp - sw * ic) if over else 0
        self._load_packed_rows(i, L, g, band, vb, line_base + (q0 - c_lo) * g.cg,
                               row_lines(g, band.ow1 - band.ow0), "folded", x0, sw * ic,
                               pad_idx=1, pad_end=pad_end, channel=sw * ic, length=p1 - p0)

    def _load_folded_weights(self, i: int, L: ConvLayer, wb: int, per_group: int, c_first: int, n_ch: int,
                             woff: int) -> None:
        """Weights of a column-folded conv: tap (kh, t) of output channel o holds the kernel's columns
        [t*sw, t*sw + sw) (fewer in the last tap; the rest of the line zero), one LOAD per channel and tap."""
        a = self.arch
        kh, kw = L.win.kernel
        ic, sw = L.inp.c, L.fold
        kw2 = -(-kw // sw)
        cg = math.ceil(sw * ic / a.icp)
        for k in range(n_ch):
            o = c_first + k
            for t in range(kw2):
                self.emit(i, "LOAD", bank_id=a.convw + k % a.ocp, bank_addr=wb + (k // a.ocp) * per_group + t * cg,
                          jump_read=kw * ic, jump_write=kw2 * cg, pad_idx=1, channel=min(sw, kw - t * sw) * ic,
                          length=kh, reg_id=REG_CONST, ddr_addr=woff + o * kh * kw * ic + t * sw * ic)

    def _save_window(self, i: int, L, band: Band, d: Dest, c_first: int, n_ch: int, line: int) -> None:
        """SAVE a band of layer i's output from where `d` put it (its consumer's input window) to DDR, for the
        map's other readers: row oh is the window's virtual row oh + pt (the row map of `Dest`)."""
        a = self.arch
        reg, base = L.out.addr()
        ps = L.out.pstride
        for oh in range(band.oh0, band.oh1):
            v = oh + d.pt
            b = v // d.sh
            self.emit(i, "SAVE", bank_id=a.vb[d.vb] + b % a.pp,
                      bank_addr=(b // a.pp) * d.sh * d.rl + (v % d.sh) * d.rl + (band.ow0 + d.pl) * d.cg + line,
                      jump_read=d.cg, jump_write=ps, length=band.ow1 - band.ow0, channel=n_ch, reg_id=reg,
                      ddr_addr=base + oh * L.out.rstride + band.ow0 * ps + c_first)

    def _fused_elew(self, j: int, E: EltwiseLayer, onchip: FMap, p: Plan, band: Band, vb: int) -> None:
        """The ELEW `E` over one band of a conv whose output (`onchip`) is in the upper half of VB(vb) at
        line `half`: E's other inputs are LOADed into the output-sized regions `extra_regions` finds beside
        the conv's input window and output (sized for the plan's largest band), its result goes into the
        last one and is SAVEd."""
        a = self.arch
        cg = p.geom.opl
        gE = Geometry(E.out.h, E.out.w, cg, E.out.h, E.out.w, 1, 1, 1, 1, 0, 0, cg, a.alu_pp, True, len(E.ins))
        free = extra_regions(p.geom, p.rows, p.cols, a.pp, a.half)
        base: list[int] = []
        for f in E.ins:
            if f is onchip:
                base.append(a.half)
            else:
                base.append(free.pop(0))
                self._load_input(j, E, gE, band, vb, f, base[-1], 0, f.c)
        out_base = free.pop(0)
        cols_b = band.ow1 - band.ow0
        orl = cols_b * cg
        for q in range(0, band.oh1 - band.oh0, a.alu_pp):
            vpp = min(a.alu_pp, band.oh1 - band.oh0 - q)
            for k in range(len(E.ins)):
                self.emit(j, "ELEWINIT", share_pp=0, bank_id_in=a.vb[vb] + q % a.pp,
                          bank_addr_in=base[k] + (q // a.pp) * orl, jump_read_endl=orl, id=k, jump_bank=1,
                          jump_read=cg, shift_read=E.shift_reads[k])
            self.emit(j, "ELEW", length=cols_b, act_type=ACT_TYPES[E.act], elew_type=E.elew_type,
                      bank_id_out=a.vb[vb] + q % a.pp, bank_addr_out=out_base + (q // a.pp) * orl,
                      jump_write_endl=orl, num=len(E.ins), valid_pixel_parallel=vpp, jump_write=cg,
                      shift_write=E.shift_write, channel_group=cg)
        self._save_output(j, E, gE, band, vb, 0, E.out.c, out_base)

    def _channel_tiles(self, g: Geometry, c: int):
        """(first channel, channels, lines a pixel) of each channel tile of a channel-independent layer."""
        step = g.cg * self.arch.icp
        return [(c0, min(step, c - c0), math.ceil(min(step, c - c0) / self.arch.icp)) for c0 in range(0, c, step)]

    def alu(self, i: int, L: AluLayer) -> None:
        a = self.arch
        kh, kw = L.win.kernel
        sh, sw = L.win.stride
        rows, cols = self.tiling.get(i, (None, None))
        p = plan_channels(geometry(L, a), a.pp, a.half, rows, cols)
        g = p.geom
        self.plans[i] = p
        for c0, n_ch, cg in self._channel_tiles(g, L.out.c):
            wb = bb = 0
            if L.weights is not None:
                wb = self.slot("dwconvw", kh * kw * g.cg)
                self.emit(i, "LOAD", bank_id=a.dwconvw, bank_addr=wb, jump_read=L.inp.c, jump_write=g.cg, pad_idx=1,
                          channel=n_ch, length=kh * kw, reg_id=REG_CONST,
                          ddr_addr=self.ddr.const[(i, "weights")] + c0)
            if L.bias is not None:
                bb = self.slot("bias", g.cg)
                self.emit(i, "LOAD", bank_id=a.bias, bank_addr=bb, jump_read=n_ch, jump_write=1, pad_idx=1,
                          channel=n_ch, length=1, reg_id=REG_CONST, ddr_addr=self.ddr.const[(i, "bias")] + c0)
            d = self.dest.get(i)
            for t, band in enumerate(p.bands()):
                vb = self.band_vb(i)
                base = (t % 2) * a.half if d is not None and i not in self.onchip_in else 0
                if i not in self.onchip_in:
                    self._load_input(i, L, g, band, vb, line_base=base, c_first=c0, n_ch=n_ch)
                cols_b = band.ow1 - band.ow0
                orl = cols_b * g.cg
                init = dict(kernel_w=kw, kernel_h=kh, exec_mode=ALU_MODES[L.mode], stride_offset_out=0,
                            stride_offset_in=0, stride_w=sw, stride_h=sh, length=cols_b, channel_offset=0,
                            channel_group=cg, stride_out=1, shift_prelu_n=0, shift_cut=L.shift_cut,
                            shift_bias=L.shift_bias, act_type=ACT_TYPES[L.act], shift_prelu_p=0,
                            jump_read_endl=row_lines(g, cols_b), jump_read=g.cg,
                            multi_factor=L.multi_factor & 0xFF, jump_write_endl=orl, jump_write=g.cg,
                            jump_read_weights=g.cg)
                for oh, vpp in p.strips(band):
                    q0 = oh - band.oh0
                    out = {"bank_id_out": a.vb[vb] + q0 % a.pp, "bank_addr_out": a.half + (q0 // a.pp) * orl}
                    if d is not None:
                        dinit, out = d.out_fields(a, oh, band.ow0, c0 // a.icp)
                        init.update(dinit)
                    key = tuple(sorted(init.items()))
                    if key != self._aluinit:
                        self.emit(i, "ALUINIT", **init)
                        self._aluinit = key
                    s = self._strip_in(g, band, q0, base)
                    pads = self._pads(L, g, band, oh, vpp)
                    self.emit(i, "ALU", bank_id_out=out["bank_id_out"],
                              bank_addr_out=out["bank_addr_out"], bank_id_in=a.vb[vb] + s["bank"],
                              bank_addr_in=s["bank_addr_in"], bank_addr_in_1=s["bank_addr_in_1"],
                              bank_addr_in_2=s["bank_addr_in_2"], bank_addr_in_3=s["bank_addr_in_3"],
                              valid_pixel_parallel=vpp, bank_addr_weights=wb, kernel_d=1, bank_addr_bias=bb, **pads)
                if d is None:
                    self._save_output(i, L, g, band, vb, c0, n_ch)
                elif i in self.tee:
                    self._save_window(i, L, band, d, c0, n_ch, c0 // a.icp)

    def elew(self, i: int, L: EltwiseLayer) -> None:
        a = self.arch
        rows, cols = self.tiling.get(i, (None, None))
        p = plan_channels(geometry(L, a), a.pp, a.half, rows, cols)
        g = p.geom
        self.plans[i] = p
        for c0, n_ch, cg in self._channel_tiles(g, L.out.c):
            for band in p.bands():
                vb = self.band_count % 2
                self.band_count += 1
                cols_b = band.ow1 - band.ow0
                inl = in_lines(g, band.oh1 - band.oh0, cols_b, a.pp)
                for k, f in enumerate(L.ins):
                    self._load_input(i, L, g, band, vb, f, k * inl, c0, n_ch)
                rl = row_lines(g, cols_b)
                orl = cols_b * g.cg
                for oh, vpp in p.strips(band):
                    q0 = oh - band.oh0
                    for k in range(len(L.ins)):
                        self.emit(i, "ELEWINIT", share_pp=0, bank_id_in=a.vb[vb] + q0 % a.pp,
                                  bank_addr_in=k * inl + (q0 // a.pp) * rl, jump_read_endl=rl, id=k, jump_bank=1,
                                  jump_read=g.cg, shift_read=L.shift_reads[k])
                    self.emit(i, "ELEW", length=cols_b, act_type=ACT_TYPES[L.act], elew_type=L.elew_type,
                              bank_id_out=a.vb[vb] + q0 % a.pp, bank_addr_out=a.half + (q0 // a.pp) * orl,
                              jump_write_endl=orl, num=len(L.ins), valid_pixel_parallel=vpp, jump_write=g.cg,
                              shift_write=L.shift_write, channel_group=cg)
                self._save_output(i, L, g, band, vb, c0, n_ch)

    def fill(self, i: int, L: FillLayer) -> None:
        """LOAD the fill row (npx pixels of the pad value) into one bank, SAVE it over every border row."""
        a = self.arch
        npx, c = L.weights.shape
        cg = math.ceil(c / a.icp)
        if npx * cg > a.half:
            npx = max(1, a.half // cg)
        vb = self.band_count % 2
        self.band_count += 1
        bank = a.vb[vb]
        self.emit(i, "LOAD", bank_id=bank, bank_addr=0, jump_read=c, jump_write=cg, pad_idx=1, channel=c,
                  length=npx, reg_id=REG_CONST, ddr_addr=self.ddr.const[(i, "weights")])
        reg, base = L.out.addr()
        for r0, r1, c0, c1 in L.rects:
            for r in range(r0, r1):
                for x in range(c0, c1, npx):
                    self.emit(i, "SAVE", bank_id=bank, bank_addr=0, jump_read=cg, jump_write=L.out.pstride,
                              length=min(npx, c1 - x), channel=c, reg_id=reg,
                              ddr_addr=base + r * L.out.rstride + x * L.out.pstride)


def forced_band(tiling: dict, *idx: int) -> tuple[int | None, int | None] | str:
    """The band forced (pass option `tiling`) on layers `idx` run as one (a conv and the ELEW fused with it):
    the one forced band, (None, None) when none is forced, or why they conflict (a message)."""
    bands = {tiling[k] for k in idx if k in tiling}
    if len(bands) > 1:
        return "their forced bands differ (" + ", ".join(f"{r}:{c}" for r, c in sorted(bands, key=str)) + ")"
    return next(iter(bands), (None, None))


def fusion_refusal(layers: list[Layer], i: int, a: Arch, tiling: dict) -> str | None:
    """None when conv layer `i` and the ELEW right after it run fused, band by band (vai_c_xir's conv + add
    super-layer), else why not: the conv's output must be a plain workspace map that only this ELEW reads,
    all the ELEW's maps have the conv's shape, the conv's weights fit the banks in one chunk, and a band of
    the conv (the band forced on either layer, else the tiler's) with its output, the ELEW's other inputs
    and the ELEW's result fits the banks."""
    if i + 1 >= len(layers):
        return "no next layer"
    P, E = layers[i], layers[i + 1]
    if not isinstance(P, ConvLayer) or not isinstance(E, EltwiseLayer):
        return "not a conv followed by an element-wise op"
    f = P.out
    if f.parent is not None or f.alias_of is not None or f.ddr is None or f.ddr[0] != REG_WORK:
        return "the conv's output is not a plain workspace map"
    if sum(x is f for x in E.ins) != 1 or a.ocp != a.icp:
        return "the element-wise op does not read the conv's output once"
    if any(x.shape != f.shape for x in [*E.ins, E.out]):
        return "the element-wise op's maps differ in shape"
    for k, L in enumerate(layers):
        if k != i + 1 and any(x.root() is f for x in L.inputs):
            return f"the conv's output is also read by {L.name}"
    n_og = math.ceil(f.c / a.ocp)
    if conv_chunk_groups(P, a) < n_og:
        return "the conv's weights do not fit the banks in one chunk"
    band = forced_band(tiling, i, i + 1)
    if isinstance(band, str):
        return band
    g = replace(geometry(P, a, n_og), extra_regions=len(E.ins))
    try:
        make_plan(g, a.pp, a.half, *band)
    except TilingError as e:
        what = f"the forced band {band[0] or ''}:{band[1] or ''}" if band != (None, None) else "no band"
        return f"{what} of the conv with the element-wise op's {len(E.ins)} band-sized regions beside it fits ({e})"
    return None


def fusable_eltwise(layers: list[Layer], i: int, a: Arch, tiling: dict) -> bool:
    """Whether conv layer `i` and the ELEW right after it run fused (`fusion_refusal` finds no reason)."""
    return fusion_refusal(layers, i, a, tiling) is None


def _whole_map_geometry(C: ConvLayer | AluLayer, a: Arch, extra: int,
                        band: tuple[int | None, int | None] = (None, None)) -> Geometry | None:
    """The input geometry of layer C (index j) when every chunk / channel tile of it computes the whole map
    in one band (its forced `band`, else the tiler's), else None."""
    if isinstance(C, AluLayer):
        try:
            p = plan_channels(geometry(C, a), a.pp, a.half, *band)
        except TilingError:
            return None
        full = p.geom.cg == math.ceil(C.inp.c / a.icp)
        return p.geom if full and p.rows >= C.out.h and p.cols >= C.out.w else None
    n_og = math.ceil(C.out.c / a.ocp)
    chunk = conv_chunk_groups(C, a)
    gC = None
    for groups in {min(chunk, n_og), n_og % chunk or min(chunk, n_og)}:
        g = replace(geometry(C, a, groups), extra_regions=extra)
        try:
            p = make_plan(g, a.pp, a.half, *band)
        except TilingError:
            return None
        if p.rows < C.out.h or p.cols < C.out.w:
            return None
        gC = g
    return gC


def chainable(layers: list[Layer], i: int, a: Arch, tiling: dict, fused: dict[int, int],
              tee: bool = False) -> Geometry | None:
    """The input geometry of layer i+1 when layer i writes its output straight into layer i+1's input
    window in the banks (no SAVE, no LOAD), else None. Needs: a conv or ALU layer (not a concat copy)
    followed by one that reads only its output, a plain workspace map no other layer reads; the consumer
    computes the whole map in one band (every chunk; a band forced on it must cover the map); the
    producer's rows and columns land inside that window; the producer is not fused with an ELEW. A band
    forced on the producer is kept (its bands write into the window one by one). `tee`: the map has other
    readers too (later layers, which LOAD it from DDR): the producer also SAVEs it from the window."""
    if i + 1 >= len(layers) or i in fused:
        return None
    P, C = layers[i], layers[i + 1]
    kinds = (ConvLayer, AluLayer)
    if not isinstance(P, kinds) or not isinstance(C, kinds) or getattr(P, "role", "") or getattr(C, "role", ""):
        return None
    f = P.out
    if C.inp is not f or f.parent is not None or f.alias_of is not None or f.ddr is None or f.ddr[0] != REG_WORK:
        return None
    if isinstance(P, AluLayer):
        try:
            gp = plan_channels(geometry(P, a), a.pp, a.half, *tiling.get(i, (None, None))).geom
        except TilingError:
            return None
        if gp.cg < math.ceil(f.c / a.icp):
            return None
    others = [k for k, L in enumerate(layers) if k != i + 1 and any(x.root() is f for x in L.inputs)]
    if bool(others) != tee or any(k < i + 1 for k in others):
        return None
    band = forced_band(tiling, *((i + 1, fused[i + 1]) if i + 1 in fused else (i + 1,)))
    if isinstance(band, str):
        return None
    g = _whole_map_geometry(C, a, len(layers[fused[i + 1]].ins) if i + 1 in fused else 0, band)
    if g is None or g.sh > 8:
        return None
    rl = row_lines(g, g.ow)
    if rl > (CONV_ENDL_MAX if isinstance(P, ConvLayer) else ALU_ENDL_MAX) or g.pl + f.w > in_cols(g, g.ow):
        return None
    top = max((v // g.sh // a.pp) * g.sh * rl + (v % g.sh) * rl for v in range(g.pt, g.pt + f.h))
    if top + (g.pl + f.w) * g.cg > in_lines(g, g.oh, g.ow, a.pp):
        return None
    return g


def chains(layers: list[Layer], a: Arch, tiling: dict, fused: dict[int, int]) -> dict[int, Geometry]:
    """producer index -> its consumer's input geometry, for every on-chip edge (`chainable`)."""
    res = {}
    for i in range(len(layers) - 1):
        g = chainable(layers, i, a, tiling, fused)
        if g is not None:
            res[i] = g
    return res


def tees(layers: list[Layer], a: Arch, tiling: dict, fused: dict[int, int]) -> dict[int, Geometry]:
    """producer index -> its consumer's input geometry, for every map with several readers that the next
    layer reads from the banks (the producer writes it into that layer's window and SAVEs it from there for
    the others: one SAVE, no LOAD for the next layer)."""
    res = {}
    for i in range(len(layers) - 1):
        g = chainable(layers, i, a, tiling, fused, tee=True)
        if g is not None:
            res[i] = g
    return res


def forced_notes(layers: list[Layer], a: Arch, tiling: dict, fused: dict[int, int],
                 chain: dict[int, Geometry]) -> dict[int, str]:
    """layer index -> why a fusion or an on-chip chain (or tee) that the tiler's own bands would give is not
    used under the forced bands (`tiling`), for the layers the user forced or their partners; `chain` holds
    the chains and tees used."""
    if not tiling:
        return {}
    notes: dict[int, str] = {}
    free_fused = fusions(layers, a, {})
    for i, j in free_fused.items():
        if i not in fused and (i in tiling or j in tiling):
            why = fusion_refusal(layers, i, a, tiling)
            for k in (i, j):
                notes[k] = f"not fused with {layers[j if k == i else i].name}: {why}"
    free_chain = {**chains(layers, a, {}, free_fused), **tees(layers, a, {}, free_fused)}
    for i in free_chain:
        if i not in chain and (i in tiling or i + 1 in tiling or i in fused or i + 1 in fused):
            C = layers[i + 1]
            pair = (i + 1, fused[i + 1]) if i + 1 in fused else (i + 1,)
            band = forced_band(tiling, *pair)
            who = " fused with ".join(layers[k].name for k in pair)
            if i in fused:
                why = f"{layers[i].name} is fused with {layers[fused[i]].name} under the forced bands"
            elif isinstance(band, str):
                why = f"{who}: {band}"
            elif band != (None, None):
                why = (f"the forced band {band[0] or ''}:{band[1] or ''} of {who} does not cover its whole "
                       f"{C.out.h}x{C.out.w} map in one band, which an on-chip chain needs")
            else:
                why = "the forced bands leave no room for the chained window"
            notes.setdefault(i, f"output not kept on chip for {C.name}: {why}")
    return notes


def fusions(layers: list[Layer], a: Arch, tiling: dict) -> dict[int, int]:
    """conv layer index -> index of the ELEW fused into it (`fusable_eltwise`)."""
    return {i: i + 1 for i in range(len(layers) - 1) if fusable_eltwise(layers, i, a, tiling)}


def generate(layers: list[Layer], ddr: DdrPlan, arch: Arch,
             tiling: dict[int, tuple[int | None, int | None]] | None = None) -> Emitter:
    """The instruction stream (without END and without dependency flags) of `layers`."""
    em = Emitter(arch, ddr, dict(tiling or {}))
    for L in layers:
        if isinstance(L, ConvLayer):
            L.augment = augment_channels(L, arch.augment, arch.icp)
            L.fold = 0 if L.augment else fold_columns(L, arch.augment, arch.icp)
            if L.augment or L.fold:        # only where its bands fit the banks too
                try:
                    make_plan(geometry(L, arch, 1), arch.pp, arch.half, *em.tiling.get(layers.index(L), (None, None)))
                except TilingError:
                    L.augment = L.fold = 0
    em.fused = fusions(layers, arch, em.tiling)
    em.chain = chains(layers, arch, em.tiling, em.fused)
    em.tee = tees(layers, arch, em.tiling, em.fused)
    em.notes = forced_notes(layers, arch, em.tiling, em.fused, {**em.chain, **em.tee})
    consumers = set(em.fused.values())
    for i, L in enumerate(layers):
        if i in consumers:
            continue                       # emitted with its producer
        if i in em.chain or i in em.tee:   # the output goes into layer i+1's input window in the banks
            gC = em.chain.get(i) or em.tee[i]
            y = em.vb_fixed.get(i, em.band_count % 2)
            em.vb_fixed[i], em.vb_fixed[i + 1] = y, 1 - y
            em.onchip_in.add(i + 1)
            em.dest[i] = Dest(1 - y, row_lines(gC, gC.ow), gC.cg, gC.pt, gC.pl, gC.sh)
        if isinstance(L, ConvLayer):
            em.conv(i, L, (em.fused[i], layers[em.fused[i]]) if i in em.fused else None)
        elif isinstance(L, AluLayer):
            em.alu(i, L)
        elif isinstance(L, EltwiseLayer):
            em.elew(i, L)
        elif isinstance(L, FillLayer):
            em.fill(i, L)
        elif not isinstance(L, (Alias, Concat)):
            raise ValueError(f"no code for layer {L!r}")
        if i in em.vb_fixed:
            em.band_count = em.vb_fixed[i] + 1     # the next layer's first band goes to the other group
    return em


__all__ = ["Arch", "Dest", "Emitter", "Tagged", "generate", "geometry", "conv_chunk_groups", "fusable_eltwise", "fusions",
           "fusion_refusal", "forced_band", "forced_notes", "chainable", "chains", "tees", "conv_window"]
