"""Emission: a `fix` module compiled by the DPU passes -> the compiled xmodel, as vai_c_xir lays it out.

Input: the module after `partition`, `allocate-ddr`, `lower-to-dpu` and `schedule-dpu` (fix ops with
`dpu.device` / `dpu.subgraph` / `dpu.ddr` / `dpu.const`, one `dpu.program @<subgraph>` per DPU subgraph).
Output: a :class:`~fixflow.backends.xmodel.compiled.CompiledModel` (spec compiled-xmodel.md)::

    root
     |- subgraph_<input>        device USER: the data-fix ops
     |- <DPU subgraph>          device DPU: mc_code (+ ac_code), REG_0..REG_3, runner, workloads
     |    |- subgraph_<input>_upload_0      upload op (skip_code_gen), tensor in REG_2
     |    |- subgraph_<op>                  one super-layer per compiler layer: its const-fix ops + the op;
     |    |                                 a conv and the element-wise op fused with it (`dpu.fused_operand`)
     |    |                                 and the layers of an on-chip chain (`dpu.chained_operand`) share
     |    |                                 one; tensors kept on chip: `location = 0`, no stride
     |    |- subgraph_<reshape>             reshape-fix (skip_code_gen: the same bytes)
     |    |- subgraph_<op>_download_0       download op per DPU output
     |- subgraph_<cpu op>       device CPU

- Fully connected layers become `conv2d-fix` ops named `<name>(TransferMatMulToConv2d)` whose kernel
  covers the whole input map (the flatten before them disappears; the weights are `[OC, KH, KW, IC]`);
  a `reshape-fix` named like the dense gives `[1, N]` back where anything but another dense reads it.
- `const-fix` ops keep an empty `data`; the parameters live only in `reg_id_to_parameter_value["REG_0"]`
  at each constant's `ddr_addr` (the offsets `allocate-ddr` chose), laid out by the compiler from the
  annotations (so a transposed conv's weights are there spatially flipped, a pad's fill value included).
- Tensors the DPU reads or writes carry `reg_id`, `ddr_addr`, `location = 1` and `stride` (an upload's
  address is its subgraph's: `dpu.ddr_in`); a map kept on chip (`dpu.ddr = [1, -1]`) has `location = 0`.
- `ac_code` (the program as assembly text) is written by default so AMD's simulator can run the file.

    m = emit_compiled(module, "net")            # CompiledModel; write with vaic.write_compiler_outputs
    compile_log(m)                              # ["Total device subgraph number 3, DPU subgraph number 1"]
"""

from __future__ import annotations

import itertools
import math

from ...dialects.dpu.ops import ProgramOp
from ...ir.core import Operation, Value
from ...ir.location import NameLoc
from ...target import Target, get_target
from ..mc import encode, write_ac
from .compiled import (
    CompiledModel,
    CompiledModelError,
    DpuSubgraph,
    HostSubgraph,
    Region,
    SuperLayer,
)
from .fix_xmodel import _KEEP, _Exporter, _tensor, _the_function
from .model import XAttr, XModelError, XOp, XTensor

__all__ = ["EmitError", "compile_log", "emit_compiled", "op_workload", "read_back_float_nhwc_names"]

_DENSE_SUFFIX = "(TransferMatMulToConv2d)"
_CONV_EXTRA = {"hsigmoid_in": -128, "shift_hsigmoid": -128, "shift_hswish": -128}


class EmitError(CompiledModelError):
    """The module cannot be emitted as a compiled xmodel (passes not run, unsupported op, ...)."""


def _strides(shape: list[int]) -> list[int]:
    return [int(math.prod(shape[i + 1:])) for i in range(len(shape))]


def _is_const(op: Operation | None) -> bool:
    return op is not None and op.name == "fix.const"


def _root(v: Value, inside: set[Operation] | None = None) -> Value:
    """`v` with reshapes looked through (the feature map that owns the bytes); with `inside`, only the
    reshapes among those ops (a subgraph reads what crosses its boundary, e.g. a CPU-side flatten)."""
    while (getattr(v, "op", None) is not None and v.op.name == "fix.reshape"
           and (inside is None or v.op in inside)):
        v = v.op.operands[0]
    return v


def _on_chip(t: XTensor) -> None:
    """Mark `t` as kept in the feature-map banks: `location = 0`, no stride (as AMD's compiler writes
    fused tensors: `reg_id` 1, `ddr_addr` 0 unless it had one)."""
    t.attrs.setdefault("reg_id", XAttr("int32", 1))
    if t.attrs.get("ddr_addr") is None or t.attrs["ddr_addr"].value < 0:
        t.attrs["ddr_addr"] = XAttr("int32", 0)
    t.attrs["location"] = XAttr("int32", 0)
    t.attrs.pop("stride", None)


def op_workload(op: Operation) -> int:
    """Operations of a fix op counted as AMD's compiler counts `workload`: 2 per MAC and 1 per bias add
    (convolutions, dense), kernel taps per output (pooling), inputs - 1 per output (element-wise)."""
    out = op.results[0].type.shape
    n_out = int(math.prod(out))
    if op.name in ("fix.conv2d", "fix.transposed_conv2d"):
        kh, kw = op.kernel
        ic = op.operands[0].type.shape[-1] // max(1, int(getattr(op, "group", 1) or 1))
        return 2 * n_out * kh * kw * ic + (n_out if op.bias is not None else 0)
    if op.name == "fix.dense":
        k = int(op.operands[1].type.shape[1])
        return 2 * n_out * k + (n_out if op.bias is not None else 0)
    if op.name == "fix.depthwise_conv2d":
        kh, kw = op.kernel
        return 2 * n_out * kh * kw + (n_out if op.bias is not None else 0)
    if op.name == "fix.pool":
        kh, kw = op.kernel
        return n_out * kh * kw
    if op.name == "fix.eltwise":
        return n_out * max(1, len(op.operands) - 1)
    return 0


def _int_attr(a) -> int:
    return int(getattr(a, "value", a))


def _float_transpose(ex: _Exporter, op: Operation) -> None:
    """A float (CPU) graph.transpose as XIR's float `transpose` with its `order` (the reader's form of the
    transposes around a conv left in float)."""
    out = op.results[0]
    name = ex.name(out, "transpose")
    attrs = {k: op.attributes[k].value for k in _KEEP if k in op.attributes}
    attrs["order"] = [int(p) for p in op.perm]
    ex.ops.append(XOp(name, "transpose", attrs, {"input": [ex.ref(op.input, op)]}, output=_tensor(name, out.type)))


def read_back_float_nhwc_names(body: list[Operation]) -> dict[Operation, str]:
    """Names for a layer left in float that the _int.xmodel holds as an NHWC XIR op `L` (a float conv2d, ...)
    as the reader gives it back: graph.transpose -> the NCHW graph op -> graph.transpose, all located at `L`,
    only the last named `L`. The graph op is named `L` (its layer), the transposes `L_to_nchw` / `L_to_nhwc`
    (the emission's and the inspector's names)."""
    res: dict[Operation, str] = {}
    for op in body:
        loc = op.location
        if (not op.name.startswith("graph.") or op.name == "graph.transpose" or not op.results or not op.operands
                or op.results[0].name_hint or not isinstance(loc, NameLoc)):
            continue
        t_in = getattr(op.operands[0], "op", None)
        t_out = [u for u in op.results[0].users if u.name == "graph.transpose" and u.location == loc]
        if t_in is None or t_in.name != "graph.transpose" or t_in.location != loc or len(t_out) != 1:
            continue
        res[op], res[t_in], res[t_out[0]] = loc.name, f"{loc.name}_to_nchw", f"{loc.name}_to_nhwc"
    return res


class _Emitter:
    def __init__(self, module: Operation, name: str | None, ac_code: bool, target: Target | None):
        self.module = module
        self.ac_code = ac_code
        self.target = target
        try:
            self.func = _the_function(module)
        except XModelError as e:
            raise EmitError(f"cannot emit a compiled xmodel: {e.message}") from None
        self.name = name or self.func.attributes["sym_name"].value
        self.programs = {op.sym_name: op for op in module.regions[0].blocks[0].ops if isinstance(op, ProgramOp)}
        self.body = [op for op in self.func.regions[0].blocks[0].ops if op.name != "func.return"]
        self.ret = self.func.regions[0].blocks[0].terminator
        self.xop: dict[Operation, XOp] = {}
        self.emitted: dict[Operation, list[XOp]] = {}  # a CPU op's XOps when not just its own (a float conv's)
        self.sources: dict[Operation, list[Operation]] = {}  # the ops a folded XOp stands for
        self.skip: set[Operation] = set()
        self.ops: list[XOp] = []                   # the graph's ops, in order
        self.ref: dict[Value, str] = {}            # the op name a reader of a value refers to
        self.xname: dict[Value, str] = {}          # the op name the _int.xmodel exporter gave it
        self.conv_of: dict[Value, str] = {}        # a dense's result -> its conv2d-fix op
        self._consts: dict[str, bytes] | None = None

    # -- placement ---------------------------------------------------------------------------------
    def _placement(self) -> None:
        if not self.programs:
            devices = [op.attributes.get("dpu.device") for op in self.body]
            if devices and all(d is not None for d in devices) and all(d.value != "DPU" for d in devices):
                raise EmitError("nothing runs on the DPU: every layer was placed on the CPU")
            raise EmitError("the module has no dpu.program: run the DPU compiler's passes first "
                            "(partition, allocate-ddr, lower-to-dpu, schedule-dpu)")
        self.device: dict[Operation, str] = {}
        self.subgraph: dict[Operation, str] = {}
        for op in self.body:
            d = op.attributes.get("dpu.device")
            if d is None:
                raise EmitError(f"op '{op.name}' has no dpu.device: run 'partition' first")
            self.device[op] = d.value
            s = op.attributes.get("dpu.subgraph")
            if s is not None:
                self.subgraph[op] = s.value
        for op in self.body:                      # constants shared by several subgraphs: their first reader's
            if op not in self.subgraph:
                users = [u for u in op.results[0].users if u in self.subgraph] if op.results else []
                if not users:
                    raise EmitError(f"op '{op.name}' ({self._name(op)}) belongs to no subgraph")
                self.subgraph[op] = self.subgraph[users[0]]
                self.device[op] = self.device[users[0]]
        dpu_names = {self.subgraph[op] for op in self.body if self.device[op] == "DPU"}
        missing = sorted(dpu_names - set(self.programs))
        if missing:
            raise EmitError(f"DPU subgraph {missing[0]} has no dpu.program: run 'lower-to-dpu' first")

    @staticmethod
    def _name(op: Operation) -> str:
        return op.results[0].name_hint if op.results and op.results[0].name_hint else op.name

    # -- ops -----------------------------------------------------------------------------------------
    def _export(self) -> None:
        ex = _Exporter(self.func)
        own = read_back_float_nhwc_names(self.body)
        folds = self._folds(own)
        t_ins = {t_in: mid for mid, (t_in, _) in folds.items()}
        for op in self.body:
            if op in self.skip:           # a folded transpose back to NHWC: its NHWC op stands for it
                continue
            if op in t_ins:               # folded: the NHWC op reads the transpose's input itself
                ex.names[op.results[0]] = ex.ref(op.input, op)
                self.emitted[op] = []
                continue
            first = len(ex.ops)
            try:
                if op in own:
                    ex.name(op.results[0], "", own[op])
                if op.name == "graph.transpose":
                    _float_transpose(ex, op)
                else:
                    ex.export(op)
            except XModelError as e:
                if self.device.get(op) == "CPU":
                    reason = op.attributes.get("dpu.reason")
                    why = f" ({reason.value})" if reason is not None else ""
                    raise EmitError(f"op {self._name(op)!r} ({op.name}) cannot run on the DPU{why}, and not on "
                                    f"the CPU either: {e.message}") from None
                raise EmitError(e.message) from None
            new = ex.ops[first:]
            for x in new:
                x.attrs["device"] = XAttr("string", self.device[op])
            if op in folds and len(new) == 3 and new[0].type == new[2].type == "transpose":
                # the reader's transpose / NCHW graph op / transpose is the _int.xmodel's one NHWC XIR op again:
                # its own transposes are dropped and the one back to NHWC (the next op) stands for its result
                t_in, t_out = folds[op]
                x = new[1]
                x.inputs["input"] = new[0].inputs["input"]
                del ex.ops[first:]
                ex.ops.append(x)
                ex.used -= {new[0].name, new[2].name}   # the _int.xmodel's transposes keep their names
                ex.names[t_out.results[0]] = x.name
                self.emitted[op], self.emitted[t_out] = [], [x]
                self.sources[t_out] = [t_in, op, t_out]
                for o in (op, t_out):
                    self.xop[o] = x
                    self.ref[o.results[0]] = self.xname[o.results[0]] = x.name
                self.skip.add(t_out)
                continue
            # a float NHWC op (a conv left in float) is written between transposes: all in its (CPU) subgraph
            self.emitted[op] = new
            x = new[-1]
            self.xop[op] = x
            self.ref[op.results[0]] = x.name
            self.xname[op.results[0]] = x.name
        self.out_names = [ex.names[v] for v in self.ret.operands]

    def _folds(self, own: dict[Operation, str]) -> dict[Operation, tuple[Operation, Operation]]:
        """The read-back float NHWC ops whose transposes (`read_back_float_nhwc_names`) the emission folds away:
        {graph op: (transpose in, transpose out)}, all three in one CPU subgraph, the transpose in read only by
        the op and the op only by the transpose out."""
        res = {}
        for op, n in own.items():
            if n.endswith(("_to_nchw", "_to_nhwc")):
                continue
            t_in = op.operands[0].op
            users = list(op.results[0].users)
            trio = (t_in, op, *users)
            if (len(users) == 1 and len(list(t_in.results[0].users)) == 1
                    and [int(p) for p in t_in.perm] == [0, 3, 1, 2] and [int(p) for p in users[0].perm] == [0, 2, 3, 1]
                    and all(self.device.get(o) == "CPU" for o in trio)
                    and len({self.subgraph.get(o) for o in trio}) == 1):
                res[op] = (t_in, users[0])
        return res

    def _ddr(self, op: Operation, subgraph: str | None = None) -> tuple[int, int]:
        """(reg, address) of `op`'s result; in DPU subgraph `subgraph` when it is an input there."""
        from ...passes.dpu.program import ddr_attr
        a = ddr_attr(op, subgraph) if subgraph is not None else op.attributes.get("dpu.ddr")
        if a is None:
            raise EmitError(f"feature map {self._name(op)!r} of a DPU subgraph has no dpu.ddr: run 'allocate-ddr' "
                            "first")
        reg, addr = (int(v) for v in a.value)
        return reg, addr

    def _in_ddr(self, t: XTensor, reg: int, addr: int, stride: bool = True, pixel: int | None = None) -> None:
        if addr < 0:                   # kept in the banks (dpu.ddr address -1): no DDR bytes
            _on_chip(t)
            return
        t.attrs["reg_id"] = XAttr("int32", reg)
        t.attrs["ddr_addr"] = XAttr("int32", addr)
        t.attrs["location"] = XAttr("int32", 1)
        if stride:
            st = _strides(t.shape)
            if pixel is not None and len(t.shape) == 4:      # a channel slice of a concat's buffer
                _, h, w, _ = t.shape
                st = [h * w * pixel, w * pixel, pixel, 1]
            t.attrs["stride"] = XAttr("int32_vec", st)

    def _pixel_stride(self, v: Value) -> int | None:
        """DDR bytes from pixel to pixel of `v` when a DPU channel concat places it in its buffer (the
        concat's channels), else None."""
        for u in v.users:
            if (u.name == "fix.concat" and self.device.get(u) == "DPU" and len(v.type.shape) == 4
                    and int(u.axis) in (3, -1) and "dpu.ddr" in u.attributes and "dpu.ddr" in v.op.attributes):
                (ur, ua), (vr, va) = self._ddr(u), self._ddr(v.op)
                cat_c = int(u.results[0].type.shape[-1])
                if ur == vr and ua <= va < ua + cat_c:
                    return self._pixel_stride(u.results[0]) or cat_c
        return None

    def _dense_readers_only(self, v: Value) -> bool:
        """Every reader of `v` is a DPU dense, directly or through reshapes (so `v` needs no [1, N] view)."""
        return all((u.name == "fix.dense" and self.device.get(u) == "DPU" and u.operands[0] is v)
                   or (u.name == "fix.reshape" and self.device.get(u) == "DPU"
                       and self._dense_readers_only(u.results[0]))
                   for u in v.users)

    # -- DPU subgraphs -------------------------------------------------------------------------------
    def _dpu(self, name: str, members: list[Operation]) -> tuple[DpuSubgraph, list[XOp]]:
        """The DPU subgraph `name`; returns it and its ops in order (uploads first, downloads last)."""
        prog = self.programs[name]
        target = self.target or get_target(prog.target)
        inside = set(members)
        ops: list[XOp] = []
        children: list[SuperLayer] = []
        used_names: set[str] = {name}

        def child_name(base: str) -> str:
            n, i = f"subgraph_{base}", 0
            while n in used_names:
                i += 1
                n = f"subgraph_{base}_{i}"
            used_names.add(n)
            return n

        # uploads: one per value read from outside (a value several DPU subgraphs read gets one in each)
        uploaded: dict[Operation, str] = {}
        for op in members:
            for v in op.operands:
                p = v.op if hasattr(v, "op") else None
                if p is None or p in inside or _is_const(p) or p in uploaded:
                    continue
                src = self.xop[p]
                k = self._uploads.get(src.name, 0)
                self._uploads[src.name] = k + 1
                reg, addr = self._ddr(p, name)
                t = XTensor(f"{src.output.name}_upload_{k}", src.output.shape, src.output.data_type,
                            dict(src.output.attrs))
                self._in_ddr(t, reg, addr)
                up = XOp(f"{src.name}_upload_{k}", "upload", {"device": "DPU"}, {"input": [self.ref[v]]}, output=t)
                uploaded[p] = up.name
                ops.append(up)
                children.append(SuperLayer(child_name(up.name), [up.name], "upload"))
        local = {v: uploaded[v.op] for op in members for v in op.operands if getattr(v, "op", None) in uploaded}
        spans = sorted((o.output.attr("ddr_addr"), o.output.attr("ddr_addr") + math.prod(o.output.shape), o.name)
                       for o in ops if o.type == "upload")
        for (_, end, a), (start, _, b) in itertools.pairwise(spans):
            if start < end:          # each DPU subgraph has its own address of an input (dpu.ddr_in)
                raise EmitError(f"DPU subgraph {name}: inputs {a} and {b} overlap in REG_2 (dpu.ddr_in of their "
                                "producers); run allocate-ddr again")

        def src_of(v: Value) -> str:
            return local.get(v) or self.ref[v]

        # constants: REG_0 offsets from the layer that reads them
        const_addr: dict[Operation, int] = {}
        for op in members:
            a = op.attributes.get("dpu.const")
            if a is None:
                continue
            offs = [int(x) for x in a.value]
            if len(offs) % 2 or len(op.operands) < 2:
                continue             # no constant operands: the offsets are the compiler's own (a pad's fill)
            # pairs (weights, bias) per compiler layer of the op; the last layer reads the op's operands
            # (a transposed conv's first pair is its zero fill's)
            for k, v in ((-2, op.operands[1]), (-1, op.operands[2] if len(op.operands) > 2 else None)):
                if v is None or offs[k] < 0 or not _is_const(v.op):
                    continue
                const_addr.setdefault(v.op, offs[k])
        for op in members:
            if op.name in ("fix.conv2d", "fix.dense", "fix.depthwise_conv2d") and op.operands[1].op not in const_addr:
                raise EmitError(f"layer {self._name(op)!r} has no REG_0 offsets (dpu.const): run 'allocate-ddr' first")

        # layers
        workload = 0
        placed: set[Operation] = set()
        child_of: dict[Operation, tuple[SuperLayer, XOp]] = {}
        for op in members:
            if _is_const(op):
                continue
            x = self.xop[op]
            if op.name == "fix.reshape" and self._dense_readers_only(op.results[0]):
                continue                                       # the flatten before a dense disappears
            new = {self.xname[v]: src_of(v) for v in op.operands if not _is_const(getattr(v, "op", None))}
            x.inputs = {k: [new.get(n, n) for n in ns] for k, ns in x.inputs.items()}
            group = []
            for v in op.operands:                 # a constant two layers share goes with the first
                if _is_const(getattr(v, "op", None)) and v.op not in placed:
                    placed.add(v.op)
                    c = self.xop[v.op]
                    c.attrs["data"] = XAttr("bytes", b"")
                    if v.op in const_addr:
                        self._in_ddr(c.output, 0, const_addr[v.op], stride=False)
                    group.append(c)
            if op.name == "fix.dense":
                x = self._dense_as_conv(op, x, group, src_of, inside)
            elif op.name in ("fix.conv2d", "fix.depthwise_conv2d", "fix.transposed_conv2d"):
                x.attrs.update({k: XAttr("int32", v) for k, v in _CONV_EXTRA.items()})
            reg, addr = self._ddr(op)
            self._in_ddr(x.output, reg, addr, pixel=self._pixel_stride(op.results[0]))
            wl = op_workload(op)
            if wl:
                x.attrs["workload"] = XAttr("uint64", wl)
            workload += wl
            ops += group + [x]
            # conv + element-wise, and on-chip chains: one super-layer, the operand read from the banks on chip
            fa = op.attributes.get("dpu.fused_operand") or op.attributes.get("dpu.chained_operand")
            host = (child_of.get(getattr(_root(op.operands[int(fa.value)], inside), "op", None))
                    if fa is not None and int(fa.value) < len(op.operands) else None)
            if host is not None:
                host[0].op_names += [c.name for c in group] + [x.name]
                host[0].workload += wl
                _on_chip(host[1].output)
                child_of[op] = (host[0], x)
                self._dense_view(op, x, reg, addr, ops, children, child_name)
                continue
            kind = "code"
            if op.name == "fix.reshape" or (op.name == "fix.concat" and all(
                    self._pixel_stride(v) is not None for v in op.operands)):
                kind = "skip"          # no code: the same bytes, or every input written into its slice
            children.append(SuperLayer(child_name(x.name), [c.name for c in group] + [x.name], kind, workload=wl))
            child_of[op] = (children[-1], x)
            self._dense_view(op, x, reg, addr, ops, children, child_name)

        # downloads: one per value read outside the subgraph
        outs: list[Value] = []
        for op in members:
            for r in op.results:
                if any(u not in inside for u in r.users) and r not in outs:
                    outs.append(r)
        by_name = {o.name: o for o in ops}
        for r in outs:
            p = by_name[self.ref[r]]
            orig = p.output.name
            dt = XTensor(orig, p.output.shape, p.output.data_type,
                         {k: a for k, a in p.output.attrs.items()
                          if k not in ("reg_id", "ddr_addr", "location", "stride")})
            p.output.name = f"{orig}_download_0"
            down = XOp(f"{p.name}_download_0", "download", {"device": "DPU"}, {"input": [p.name]}, output=dt)
            ops.append(down)
            children.append(SuperLayer(child_name(down.name), [down.name], "download"))
            self.ref[r] = down.name

        # the bytes as the compiler laid them out (flipped transposed-conv weights, fill values included)
        reg0 = bytes(self._const_bytes().get(name, b""))
        instrs = prog.instructions()
        sizes_attr = prog.attributes.get("reg_id_to_size")
        if sizes_attr is None:
            raise EmitError(f"dpu.program @{name} has no reg_id_to_size: run 'lower-to-dpu' first")
        sizes = {int(k[4:]): _int_attr(v) for k, v in sizes_attr.value.items()}
        if len(reg0) > sizes.get(0, 0):
            raise EmitError(f"dpu.program @{name}: REG_0 is {sizes.get(0, 0)} bytes but its constants need "
                            f"{len(reg0)}")
        for op in members:                        # compiler-owned frames (a transposed conv's zero-filled input)
            sc = op.attributes.get("dpu.scratch")
            vals = [int(x) for x in sc.value] if sc is not None else []
            for reg, addr in zip(vals[::2], vals[1::2]):
                if addr >= sizes.get(reg, 0):
                    raise EmitError(f"dpu.program @{name}: the dpu.scratch frame of {self._name(op)!r} at REG_{reg} "
                                    f"+{addr} lies outside REG_{reg} ({sizes.get(reg, 0)} bytes)")
        regions = []
        for reg in sorted(sizes):
            if sizes[reg] <= 0 and reg != 0:
                continue
            if reg == 0:
                param = bytes(reg0) + bytes(sizes[0] - len(reg0))
                regions.append(Region(0, "CONST", "CONST", sizes[0], parameter=param))
            else:
                regions.append(Region(reg, "DATA", "WORKSPACE" if reg == 1 else "INTERFACE", sizes[reg]))
        sg = DpuSubgraph(name, target, encode(instrs), regions, children,
                         ac_code=write_ac(instrs).splitlines() if self.ac_code else None, workload=workload,
                         attrs={"mc_code_preload": XAttr("bytes", b""), "debug_mode": "null",
                                "if_prefetch": False})
        return sg, ops

    def _dense_view(self, op: Operation, x: XOp, reg: int, addr: int, ops: list[XOp], children: list[SuperLayer],
                    child_name) -> None:
        """Sets what readers of `op`'s result refer to: `x`, or for a dense read by anything but another DPU
        dense (a CPU op, a download) the [1, N] `reshape-fix` view of its conv form under the dense's own
        name, also when the dense shares its super-layer with the layer before it (an on-chip chain)."""
        if op.name != "fix.dense" or self._dense_readers_only(op.results[0]):
            self.ref[op.results[0]] = x.name
            return
        h = self.xop[op]
        view = XOp(h.name, "reshape-fix", {"device": "DPU", "shape": XAttr("int32_vec", h.output.shape)},
                   {"input": [x.name]}, output=XTensor(h.output.name, h.output.shape, h.output.data_type,
                                                       dict(h.output.attrs)))
        self._in_ddr(view.output, reg, addr)
        ops.append(view)
        children.append(SuperLayer(child_name(view.name), [view.name], "skip"))
        self.ref[op.results[0]] = view.name

    def _const_bytes(self) -> dict[str, bytes]:
        """Per DPU subgraph, its REG_0 bytes as the compiler lays them out from the annotations."""
        if self._consts is None:
            from ...passes.dpu.program import annotated_subgraphs, compile_annotated
            self._consts = {}
            for sg in annotated_subgraphs(self.func):
                if sg.name in self.programs:
                    p = self.programs[sg.name]
                    try:
                        dp = compile_annotated(sg, self.target or get_target(p.target), flags=False)
                    except ValueError as e:
                        raise EmitError(f"DPU subgraph {sg.name}: {e}") from None
                    self._consts[sg.name] = bytes(dp.const_bytes)
        return self._consts

    def _dense_as_conv(self, op: Operation, x: XOp, group: list[XOp], src_of, inside: set[Operation]) -> XOp:
        """fix.dense -> conv2d-fix over the whole input map (XIR's TransferMatMulToConv2d)."""
        root = _root(op.operands[0], inside)
        shape = list(root.type.shape)
        if len(shape) == 2:                                 # a dense after a dense: [1, K] is 1 x 1 x K
            shape = [1, 1, 1, shape[1]]
        _, h, w, c = shape
        n = int(op.results[0].type.shape[-1])
        wx = self.xop[op.operands[1].op]
        wx.attrs["shape"] = XAttr("int32_vec", [n, h, w, c])
        wx.output.shape = [n, h, w, c]
        attrs = {k: a for k, a in x.attrs.items() if k not in ("transpose_a", "transpose_b")}
        attrs.update(kernel=XAttr("int32_vec", [w, h]), stride=XAttr("int32_vec", [1, 1]),
                     dilation=XAttr("int32_vec", [1, 1]), pad=XAttr("int32_vec", [0, 0, 0, 0]),
                     pad_mode=XAttr("string", "FLOOR"), group=XAttr("int32", 1),
                     **{k: XAttr("int32", v) for k, v in _CONV_EXTRA.items()})
        inputs = dict(x.inputs)
        inputs["input"] = [self.conv_of.get(root) or src_of(root)]
        name = x.name + _DENSE_SUFFIX
        self.conv_of[op.results[0]] = name
        out = XTensor(name, [1, 1, 1, n], x.output.data_type, dict(x.output.attrs))
        return XOp(name, "conv2d-fix", attrs, inputs, output=out)

    # -- the whole graph -----------------------------------------------------------------------------
    def run(self) -> CompiledModel:
        self._placement()
        self._export()
        self._uploads: dict[str, int] = {}         # uploads made so far per source op
        order: list[str] = []
        members: dict[str, list[Operation]] = {}
        for op in self.body:
            s = self.subgraph[op]
            if s not in members:
                members[s] = []
                order.append(s)
            members[s].append(op)
        subgraphs = []
        for s in self._subgraph_order(order, members):
            ops = members[s]
            devices = {self.device[o] for o in ops}
            if len(devices) != 1:
                raise EmitError(f"subgraph {s} mixes devices {sorted(devices)}")
            dev = devices.pop()
            if dev == "DPU":
                sg, xops = self._dpu(s, ops)
                self.ops += xops
                subgraphs.append(sg)
            else:
                xs = []
                for o in ops:
                    for x in (self.emitted[o] if o in self.emitted else [self.xop[o]]):
                        x.inputs = {k: [self._cpu_ref(n, *self.sources.get(o, [o])) for n in ns]
                                    for k, ns in x.inputs.items()}
                        xs.append(x)
                self.ops += xs
                subgraphs.append(HostSubgraph(s, "USER" if dev == "USER" else "CPU", [x.name for x in xs]))
        dpus = [s for s in subgraphs if isinstance(s, DpuSubgraph)]
        if not dpus:
            raise EmitError("nothing runs on the DPU: every layer was placed on the CPU")
        names = {v: self.ref[v] for v in self.ret.operands}
        total = sum(d.workload for d in dpus)
        attrs = {"origin": "fixflow", "__fixflow_function": self.func.attributes["sym_name"].value,
                 "__fixflow_outputs": [names[v] for v in self.ret.operands]}
        m = CompiledModel(self.name, self.ops, subgraphs, attrs,
                          {"workload": XAttr("uint64", total), "fusion": True, "prefetch": False,
                           "concat_skip_code_gen": True, "reserve_const_data": False})
        try:
            m.validate()
        except XModelError as e:
            raise EmitError(f"internal inconsistency in the emitted xmodel: {e.message}") from None
        return m

    def _subgraph_order(self, order: list[str], members: dict[str, list[Operation]]) -> list[str]:
        """The subgraphs in an order where each comes after those it reads (first appearance among the
        ready ones): a DPU subgraph may hold layers on both sides of a CPU op (the per-group slices of a
        grouped conv), so the order of first appearance alone can put a reader before its producer."""
        deps: dict[str, set[str]] = {s: set() for s in order}
        for s in order:
            for op in members[s]:
                for v in op.operands:
                    p = getattr(v, "op", None)
                    if p is not None and not _is_const(p) and p in self.subgraph and self.subgraph[p] != s:
                        deps[s].add(self.subgraph[p])
        done: list[str] = []
        left = list(order)
        while left:
            ready = next((s for s in left if deps[s] <= set(done)), None)
            if ready is None:
                raise EmitError(f"subgraphs {', '.join(left)} read each other's results (a cycle): the "
                                "partition cannot run them in any order")
            done.append(ready)
            left.remove(ready)
        return done

    def _cpu_ref(self, name: str, *ops: Operation) -> str:
        """A host op's argument: through the download when it reads a DPU output."""
        for op in ops:
            for v in op.operands:
                if self.xname.get(v) == name:
                    return self.ref.get(v, name)
        return name


def emit_compiled(module: Operation, name: str | None = None, *, ac_code: bool = True,
                  target: Target | None = None) -> CompiledModel:
    """The compiled xmodel of `module` (after the DPU passes); `name` is the graph name (default: the
    function's), `ac_code=False` leaves the assembly text out (as AMD's release files), `target`
    overrides the programs' target (e.g. one read from an arch.json with its own fingerprint)."""
    return _Emitter(module, name, ac_code, target).run()


def compile_log(m: CompiledModel) -> list[str]:
    """vai_c_xir's summary lines for `m`."""
    return [f"Total device subgraph number {len(m.subgraphs)}, DPU subgraph number {len(m.dpu_subgraphs)}"]
