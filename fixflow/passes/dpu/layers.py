"""The compiler's view of a DPU subgraph: feature maps (NHWC tensors in DDR) and layers (one
per fused fix op), extracted from `fix` ops.

A layer is what one run of one engine computes over a whole feature map:
- `ConvLayer`: CONV engine; fix.conv2d (+ fused activation) and fix.dense (as a convolution whose
  kernel covers the whole input map: the flatten before a dense is layout only).
- `AluLayer`: ALU engine (ISA1 has no pool or depthwise engine): max/avg pooling, depthwise conv.
- `Alias`: fix.reshape: a row-major reshape of an NHWC tensor in DDR is the same bytes.
- `Concat`: fix.concat along channels, by placement: each input is a channel slice (`FMap.parent`,
  `c_off`) of the concat's buffer, so its producer SAVEs straight into it (DDR pixel stride = the
  concat's channels) and its consumers LOAD it with that stride; no copy. An input that cannot be
  placed (produced outside the subgraph, already placed in another concat, read by a reshape or
  outside the subgraph, or at another fix_pos) is copied in by a 1x1 ALU max pool (`role="copy"`,
  which also requantizes it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...dialects.fix.numerics import avgpool_multiplier
from ...ir.core import Operation, Value

ACT_TYPES = {"NONE": 0, "RELU": 1, "LEAKYRELU": 3, "RELU6": 4}
#: ALUINIT exec_mode values (spec dpu-isa.md)
ALU_MODES = {"dwconv": 0, "avg_pool": 2, "max_pool": 3, "dwconv_no_bias": 6, "hsigmoid": 7}
#: hard-sigmoid-fix = relu6(x + 3) * 2731 / 2^14: the ALU HSIGMOID's constant shift
HSIGMOID_SHIFT = 14


@dataclass(eq=False)
class FMap:
    """A feature map: (h, w, c) int8 NHWC, its fix position; `ddr` = (reg_id, byte address) once
    allocated. `alias_of` is set for a reshape's result (same bytes as that feature map)."""

    name: str
    shape: tuple[int, int, int]
    fix_pos: int
    value: Value | None = None
    alias_of: "FMap | None" = None
    ddr: tuple[int, int] | None = None
    parent: "FMap | None" = None       # a strided window of parent: its channels [c_off, c_off + c) of the
    c_off: int = 0                     # pixels (origin + step * (y, x)) (concat by placement, upsample, pad)
    step: tuple[int, int] = (1, 1)
    origin: tuple[int, int] = (0, 0)

    @property
    def h(self) -> int:
        return self.shape[0]

    @property
    def w(self) -> int:
        return self.shape[1]

    @property
    def c(self) -> int:
        return self.shape[2]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape)

    def root(self) -> "FMap":
        """The feature map that owns the bytes (follows reshape aliases and concat placement)."""
        f = self
        while f.alias_of is not None or f.parent is not None:
            f = f.alias_of if f.alias_of is not None else f.parent
        return f

    def unaliased(self) -> "FMap":
        """The feature map whose shape the bytes have (follows reshape aliases only)."""
        f = self
        while f.alias_of is not None:
            f = f.alias_of
        return f

    @property
    def pstride(self) -> int:
        """DDR bytes from one pixel to the next (the concat's channels for a placed slice)."""
        return self.parent.pstride * self.step[1] if self.parent is not None else self.c

    @property
    def rstride(self) -> int:
        """DDR bytes from one row to the next."""
        return self.parent.rstride * self.step[0] if self.parent is not None else self.w * self.c

    @property
    def offset(self) -> int:
        """Byte offset of channel 0 of pixel 0 from the owner's (root's) address."""
        if self.parent is not None:
            p = self.parent
            return p.offset + self.origin[0] * p.rstride + self.origin[1] * p.pstride + self.c_off
        return self.alias_of.offset if self.alias_of is not None else 0

    def addr(self) -> tuple[int, int]:
        """(reg_id, byte address) of channel 0 of pixel 0, from the root's allocation."""
        reg, a = self.root().ddr
        return reg, a + self.offset


@dataclass(eq=False)
class Window:
    """Sliding-window geometry shared by CONV and ALU layers."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int, int, int]   # top, bottom, left, right


@dataclass(eq=False)
class ConvLayer:
    """conv2d-fix / dense on the CONV engine; weights [OC][KH][KW][IC] int8, bias [OC] int8."""

    name: str
    inp: FMap
    out: FMap
    win: Window
    act: str
    shift_cut: int
    shift_bias: int          # the instruction field: fp_in + fp_w - fp_b + 1
    weights: np.ndarray
    bias: np.ndarray
    ops: list[Operation] = field(default_factory=list)
    engine: str = "conv"
    augment: int = 0         # channel augmentation: the kernel's width folded into kw*IC channels (`augment.py`)
    fold: int = 0            # column folding: sw columns a pixel, ceil(kw/sw) taps across (`augment.py`)

    @property
    def inputs(self) -> list[FMap]:
        return [self.inp]


@dataclass(eq=False)
class AluLayer:
    """Pooling or depthwise conv on the ALU engine. Depthwise weights [KH][KW][C], bias [C]."""

    name: str
    mode: str                # a key of ALU_MODES
    inp: FMap
    out: FMap
    win: Window
    act: str = "NONE"
    shift_cut: int = 0
    shift_bias: int = 0
    multi_factor: int = 0
    weights: np.ndarray | None = None
    bias: np.ndarray | None = None
    ops: list[Operation] = field(default_factory=list)
    engine: str = "alu"
    role: str = ""           # "copy": a concat input copied into its slice

    @property
    def inputs(self) -> list[FMap]:
        return [self.inp]


@dataclass(eq=False)
class EltwiseLayer:
    """eltwise-fix ADD/MUL of 1-4 same-shape maps on the ELEW engine: input k is pre-scaled by
    `shift_reads[k]`, the result by `shift_write` (the 5-bit field encoding)."""

    name: str
    ins: list[FMap]
    out: FMap
    elew_type: int            # 0 ADD, 1 MULT
    act: str
    shift_reads: list[int]
    shift_write: int
    ops: list[Operation] = field(default_factory=list)
    engine: str = "elew"

    @property
    def inputs(self) -> list[FMap]:
        return list(self.ins)


@dataclass(eq=False)
class Alias:
    """A reshape: `out` is `inp`'s bytes under another shape (no code)."""

    name: str
    inp: FMap
    out: FMap
    ops: list[Operation] = field(default_factory=list)
    engine: str = "none"

    @property
    def inputs(self) -> list[FMap]:
        return [self.inp]


@dataclass(eq=False)
class Concat:
    """A channel concat by placement: every `ins[k]` is a slice (`parent` = `out`) of `out` (no code)."""

    name: str
    ins: list[FMap]
    out: FMap
    ops: list[Operation] = field(default_factory=list)
    engine: str = "none"

    @property
    def inputs(self) -> list[FMap]:
        return list(self.ins)


@dataclass(eq=False)
class FillLayer:
    """The border of a pad's output: `weights` (a REG_0 row of `value` bytes, `npx` pixels) LOADed once,
    then SAVEd over the rectangles `rects` (row0, row1, col0, col1) of `out`."""

    name: str
    out: FMap
    value: int
    weights: np.ndarray
    rects: list[tuple[int, int, int, int]]
    ops: list[Operation] = field(default_factory=list)
    engine: str = "fill"
    bias: None = None

    @property
    def inputs(self) -> list[FMap]:
        return []


Layer = ConvLayer | AluLayer | EltwiseLayer | Alias | Concat | FillLayer

#: fix ops whose result a layer SAVEs (so it can be written straight into a concat's slice)
_SAVED_BY_LAYER = ("fix.conv2d", "fix.transposed_conv2d", "fix.dense", "fix.depthwise_conv2d", "fix.pool", "fix.eltwise", "fix.concat",
                   "fix.upsample", "fix.pad")


def fmap_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(h, w, c) of a batch-1 tensor: NHWC, or [1, K] / [K] as a 1 x 1 x K map."""
    s = tuple(int(d) for d in shape)
    if len(s) == 4:
        return s[1], s[2], s[3]
    if len(s) == 2:
        return 1, 1, s[1]
    if len(s) == 1:
        return 1, 1, s[0]
    if len(s) == 3:
        return 1, s[1], s[2]
    raise ValueError(f"cannot place a rank-{len(s)} tensor in DPU memory")


def max_pool_shift_cut(fp_in: int, fp_out: int) -> int:
    """ALU max/avg pool `shift_cut` for a right shift by d = fp_in - fp_out (AMD's simulator:
    shift_cut >= 8 divides by 2**(shift_cut - 8), < 8 multiplies by 2**shift_cut)."""
    d = fp_in - fp_out
    return 8 + d if d >= 0 else -d


def avg_pool_params(kh: int, kw: int, fp_in: int, fp_out: int) -> tuple[int, int]:
    """(multi_factor, shift_cut) of an ALU average pool equal to fix.pool AVG."""
    mult, shift = avgpool_multiplier(kh, kw)
    return mult, max_pool_shift_cut(fp_in + shift, fp_out)


def _ints(v) -> np.ndarray:
    return np.asarray(v.op.ints if hasattr(v.op, "ints") else v.op.attributes["value"].array)


def _const_array(v: Value | None) -> np.ndarray | None:
    if v is None:
        return None
    return np.asarray(v.op.attributes["value"].array).astype(np.int8)


def _fmt_fp(v: Value) -> int:
    return v.type.element_type.fix_pos


def build_layers(ops: list[Operation], name_of) -> tuple[list[Layer], dict[Value, FMap]]:
    """Layers (in op order) of the DPU ops `ops`; `name_of(value)` names feature maps.

    Constants feeding a layer are read from their `fix.const` ops (weights stay int8).
    """
    fmaps: dict[Value, FMap] = {}

    def fm(v: Value) -> FMap:
        if v not in fmaps:
            fmaps[v] = FMap(name_of(v), fmap_shape(v.type.shape), _fmt_fp(v), v)
        return fmaps[v]

    layers: list[Layer] = []
    for op in ops:
        kind = op.name
        if kind == "fix.const":
            continue
        if kind == "fix.reshape":
            src = fm(op.operands[0])
            out = FMap(name_of(op.results[0]), fmap_shape(op.results[0].type.shape), _fmt_fp(op.results[0]),
                       op.results[0], alias_of=src)
            fmaps[op.results[0]] = out
            layers.append(Alias(out.name, src, out, [op]))
            continue
        out = fm(op.results[0])
        if kind == "fix.conv2d" and tuple(op.dilation) != (1, 1):
            layers.extend(_dilated_layers(op, out, fm(op.input)))
        elif kind in ("fix.conv2d", "fix.dense"):
            sc, sb = op.shifts()
            w = _const_array(op.weights)
            b = _const_array(op.bias)
            if kind == "fix.conv2d":
                inp = fm(op.input)
                win = Window(tuple(op.kernel), tuple(op.stride), tuple(op.pad))
            else:
                inp = fm(op.input)
                src = inp.unaliased()
                if src.nbytes != inp.nbytes or w.shape[1] != src.nbytes:
                    raise ValueError("dense input does not match its weights")
                inp = src
                w = w.reshape(w.shape[0], src.h, src.w, src.c)
                win = Window((src.h, src.w), (1, 1), (0, 0, 0, 0))
            if b is None:
                b = np.zeros(w.shape[0], dtype=np.int8)
                sb = 0
            layers.append(ConvLayer(out.name, inp, out, win, op.nonlinear, sc, sb + 1, w, b, [op]))
        elif kind == "fix.depthwise_conv2d":
            sc, sb = op.shifts()
            w = _const_array(op.weights)
            w = w[0] if w.ndim == 4 else w
            b = _const_array(op.bias)
            win = Window(tuple(op.kernel), tuple(op.stride), tuple(op.pad))
            mode = "dwconv" if b is not None else "dwconv_no_bias"
            layers.append(AluLayer(out.name, mode, fm(op.input), out, win, op.nonlinear, sc,
                                   0 if sb is None else sb + 1, 0, w, b, [op]))
        elif kind == "fix.pool":
            inp = fm(op.input)
            win = Window(tuple(op.kernel), tuple(op.stride), tuple(op.pad))
            fi, fo = _fmt_fp(op.input), _fmt_fp(op.results[0])
            if op.type == "MAX":
                layers.append(AluLayer(out.name, "max_pool", inp, out, win, shift_cut=max_pool_shift_cut(fi, fo),
                                       ops=[op]))
            else:
                mult, sc = avg_pool_params(win.kernel[0], win.kernel[1], fi, fo)
                layers.append(AluLayer(out.name, "avg_pool", inp, out, win, shift_cut=sc, multi_factor=mult,
                                       ops=[op]))
        elif kind == "fix.eltwise":
            from ...dialects.fix.kernels import elew_shift_write_field, elew_shifts
            fps = [_fmt_fp(v) for v in op.operands]
            reads, write = elew_shifts(fps, _fmt_fp(op.results[0]), op.type)
            layers.append(EltwiseLayer(out.name, [fm(v) for v in op.operands], out, 0 if op.type == "ADD" else 1,
                                       op.nonlinear, reads, elew_shift_write_field(write), [op]))
        elif kind == "fix.concat":
            layers.extend(_concat_layers(op, out, fm, fmaps, set(ops)))
        elif kind == "fix.upsample":
            layers.extend(_upsample_layers(op, out, fm(op.input)))
        elif kind == "fix.transposed_conv2d":
            layers.extend(_tconv_layers(op, out, fm(op.input)))
        elif kind == "fix.hard_sigmoid":
            fi, fo = _fmt_fp(op.input), _fmt_fp(op.results[0])
            layers.append(AluLayer(out.name, "hsigmoid", fm(op.input), out, Window((1, 1), (1, 1), (0, 0, 0, 0)),
                                   shift_cut=HSIGMOID_SHIFT + fi - fo, shift_bias=fi, ops=[op]))
        elif kind == "fix.pad":
            layers.extend(_pad_layers(op, out, fm(op.input)))
        else:
            raise ValueError(f"'{kind}' has no DPU lowering")
    for L in layers:           # one output row (column): the row (column) stride is irrelevant
        if isinstance(L, (ConvLayer, AluLayer)):
            sh, sw = L.win.stride
            L.win = Window(L.win.kernel, (1 if L.out.h == 1 else sh, 1 if L.out.w == 1 else sw), L.win.pad)
    return layers, fmaps


def _placeable(v: Value, concat: Operation, fmaps: dict, inside: set) -> bool:
    """Whether `v`'s producer can SAVE it straight into `concat`'s buffer (module docstring)."""
    p = getattr(v, "op", None)
    f = fmaps.get(v)
    if p is None or p not in inside or p.name not in _SAVED_BY_LAYER or f is None or f.parent is not None:
        return False
    if _fmt_fp(v) != _fmt_fp(concat.results[0]) or f.alias_of is not None:
        return False
    return all(u in inside and u.name != "fix.reshape" for u in v.users)


def copy_layer(src: FMap, dst: FMap, op: Operation) -> AluLayer:
    """`dst` = `src` requantized to dst's fix_pos: a 1x1 ALU max pool (dst usually a view)."""
    return AluLayer(dst.name, "max_pool", src, dst, Window((1, 1), (1, 1), (0, 0, 0, 0)),
                    shift_cut=max_pool_shift_cut(src.fix_pos, dst.fix_pos), ops=[op], role="copy")


def _upsample_layers(op: Operation, out: FMap, src: FMap) -> list[Layer]:
    """Nearest upsample by (sh, sw): sh * sw copies of the input, each SAVEd with row stride sh rows and
    pixel stride sw pixels into the output at origin (dy, dx)."""
    sh, sw = (int(s) for s in op.scale)
    res: list[Layer] = []
    for dy in range(sh):
        for dx in range(sw):
            v = FMap(f"{out.name}_{dy}_{dx}", src.shape, out.fix_pos, None, parent=out, step=(sh, sw),
                     origin=(dy, dx))
            res.append(copy_layer(src, v, op))
    return res


#: pixels of the fill row a pad's border is SAVEd from (at most; fewer when the map is narrower)
FILL_PIXELS = 64


def _pad_layers(op: Operation, out: FMap, src: FMap) -> list[Layer]:
    """Constant pad: the border filled from a REG_0 row of the pad value, the input copied into the
    interior (a view at origin (top, left))."""
    if op.mode != "constant":
        raise ValueError(f"{op.mode} padding has no DPU lowering")
    pt, pb, pl, pr = (int(p) for p in op.pad)
    H, W = out.h, out.w
    rects = [r for r in ((0, pt, 0, W), (H - pb, H, 0, W), (pt, H - pb, 0, pl), (pt, H - pb, W - pr, W))
             if r[0] < r[1] and r[2] < r[3]]
    res: list[Layer] = []
    if rects:
        npx = min(FILL_PIXELS, max(r[3] - r[2] for r in rects))
        row = np.full((npx, out.c), int(op.value), dtype=np.int8)
        res.append(FillLayer(f"{out.name}_border", out, int(op.value), row, rects, [op]))
    inner = FMap(f"{out.name}_inner", src.shape, out.fix_pos, None, parent=out, origin=(pt, pl))
    res.append(copy_layer(src, inner, op))
    return res


def tconv_frame(op: Operation) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a transposed conv's zero-inserted input: the input's pixels at
    (top + y * sh, left + x * sw), zeros elsewhere; a stride-1 unpadded conv over it with the kernel
    flipped is the transposed conv."""
    _, h, w, _ = op.input.type.shape
    (kh, kw), (sh, sw), (pt, pb, pl, pr) = tuple(op.kernel), tuple(op.stride), tuple(op.pad)
    oph, opw = tuple(op.output_padding)
    top, left = kh - 1 - pt, kw - 1 - pl
    return top, left, top + (h - 1) * sh + 1 + kh - 1 - pb + oph, left + (w - 1) * sw + 1 + kw - 1 - pr + opw


def _tconv_layers(op: Operation, out: FMap, src: FMap) -> list[Layer]:
    """Transposed conv = zero fill of the frame (`tconv_frame`), the input copied into it with pixel
    steps (sh, sw), then a CONV (stride 1, no padding) with the spatially flipped weights."""
    top, left, zh, zw = tconv_frame(op)
    z = FMap(f"{out.name}_zero_inserted", (zh, zw, src.c), src.fix_pos, None)
    fill = FillLayer(f"{z.name}_fill", z, 0, np.zeros((min(FILL_PIXELS, zw), src.c), dtype=np.int8),
                     [(0, zh, 0, zw)], [op])
    view = FMap(f"{z.name}_in", src.shape, src.fix_pos, None, parent=z, origin=(top, left),
                step=tuple(int(s) for s in op.stride))
    sc, sb = op.shifts()
    w = _const_array(op.weights)[:, ::-1, ::-1, :].copy()
    b = _const_array(op.bias)
    if b is None:
        b = np.zeros(w.shape[0], dtype=np.int8)
        sb = 0
    conv = ConvLayer(out.name, z, out, Window(tuple(op.kernel), (1, 1), (0, 0, 0, 0)), op.nonlinear, sc, sb + 1,
                     w, b, [op])
    return [fill, copy_layer(src, view, op), conv]


def dilation_phase(n_in: int, n_out: int, k: int, pad: int, d: int, s: int,
                   a: int) -> tuple[int, int, int, int, int] | str | None:
    """One axis of phase `a` of a conv with dilation d and stride s. With g = gcd(s, d), d' = d/g, s' = s/g,
    outputs y = a + d'*y' read input rows s*a - pad + d*(s'*y' + i): an undilated conv of stride s' over the
    rows r0, r0 + d, ... of the input. Returns (r0, rows read, pad before, pad after, outputs), None when the
    phase has no output, or why it cannot run as an undilated conv (a message)."""
    g = math.gcd(s, d)
    d2, s2 = d // g, s // g
    n = (n_out - a + d2 - 1) // d2
    if n <= 0:
        return None
    t0 = s * a - pad
    ry = t0 % d
    q = (t0 - ry) // d                     # view row of tap 0 of output 0 (negative: in the padding)
    avail = (n_in - ry + d - 1) // d       # input rows ry, ry + d, ...
    start = max(q, 0)
    rows = min(avail, q + s2 * (n - 1) + k) - start
    before = max(0, -q)
    after = (n - 1) * s2 + k - before - rows
    if rows < 1 or before > k - 1 or not 0 <= after <= k - 1:
        return f"phase {a} of dilation {d} reads no input row or pads beyond kernel - 1"
    return ry + d * start, rows, before, after, n


def dilation_phases(op: Operation) -> list[tuple] | str:
    """The undilated convs of a dilated fix.conv2d: per output phase (a, b) the input view's (origin, shape),
    its pads (top, bottom, left, right), the output view's (origin, shape), the input view's pixel step, the
    output view's pixel step and the conv's stride; or why not."""
    _, h, w, _ = op.input.type.shape
    _, oh, ow, _ = op.results[0].type.shape
    (kh, kw), (dh, dw), (pt, pb, pl, pr) = tuple(op.kernel), tuple(op.dilation), tuple(op.pad)
    sh, sw = tuple(op.stride)
    gh, gw = math.gcd(sh, dh), math.gcd(sw, dw)
    res = []
    for a in range(dh // gh):
        ya = dilation_phase(h, oh, kh, pt, dh, sh, a)
        for b in range(dw // gw):
            xb = dilation_phase(w, ow, kw, pl, dw, sw, b)
            if isinstance(ya, str) or isinstance(xb, str):
                return ya if isinstance(ya, str) else xb
            if ya is None or xb is None:
                continue
            res.append(((ya[0], xb[0]), (ya[1], xb[1]), (ya[2], ya[3], xb[2], xb[3]), (a, b), (ya[4], xb[4]),
                        (dh, dw), (dh // gh, dw // gw), (sh // gh, sw // gw)))
    return res


def _dilated_layers(op: Operation, out: FMap, src: FMap) -> list[Layer]:
    """A conv with dilation (dh, dw) and stride (sh, sw) as undilated convs (`dilation_phases`): phase (a, b)
    LOADs the input view of pixel step (dh, dw), runs with stride (sh, sw) / gcd, and SAVEs into the output
    view of step (dh, dw) / gcd at origin (a, b)."""
    phases = dilation_phases(op)
    if isinstance(phases, str):
        raise ValueError(phases)
    sc, sb = op.shifts()
    w = _const_array(op.weights)
    b = _const_array(op.bias)
    if b is None:
        b = np.zeros(w.shape[0], dtype=np.int8)
        sb = 0
    res: list[Layer] = []
    for origin, shape, pads, oorigin, oshape, istep, ostep, stride in phases:
        tag = f"{oorigin[0]}_{oorigin[1]}"
        vin = FMap(f"{out.name}_in{tag}", (shape[0], shape[1], src.c), src.fix_pos, None, parent=src, step=istep,
                   origin=origin)
        vout = FMap(f"{out.name}_{tag}", (oshape[0], oshape[1], out.c), out.fix_pos, None, parent=out, step=ostep,
                    origin=oorigin)
        res.append(ConvLayer(vout.name, vin, vout, Window(tuple(op.kernel), stride, pads), op.nonlinear, sc, sb + 1,
                             w, b, [op]))
    return res


def _concat_layers(op: Operation, out: FMap, fm, fmaps: dict, inside: set) -> list[Layer]:
    if op.results[0].type.rank != 4 or op._axis() != 3:
        raise ValueError("the DPU concatenates along channels (NHWC axis 3) only")
    res: list[Layer] = []
    views: list[FMap] = []
    off = 0
    for k, v in enumerate(op.operands):
        c = int(v.type.shape[3])
        if _placeable(v, op, fmaps, inside):
            f = fmaps[v]
            f.parent, f.c_off = out, off
        else:
            src = fm(v)
            f = FMap(f"{out.name}_in{k}", src.shape, out.fix_pos, None, parent=out, c_off=off)
            res.append(copy_layer(src, f, op))
        views.append(f)
        off += c
    res.append(Concat(out.name, views, out, [op]))
    return res


__all__ = ["FMap", "Window", "ConvLayer", "AluLayer", "EltwiseLayer", "Alias", "Concat", "FillLayer", "Layer", "build_layers", "fmap_shape",
           "ACT_TYPES", "ALU_MODES", "max_pool_shift_cut", "avg_pool_params", "dilation_phases"]
