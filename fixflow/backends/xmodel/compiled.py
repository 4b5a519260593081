"""The compiled .xmodel (vai_c_xir's layout) as a typed model over :class:`XGraph`.

Structure (spec ``xmodel.md`` and ``compiled-xmodel.md``)::

    root                                   (root_attrs: workload, fusion switches, ...)
     |- HostSubgraph  device USER          (the data-fix input ops)
     |- DpuSubgraph   device DPU           (typed attributes below; children only)
     |    |- SuperLayer kind "upload"      (an ``upload`` op; skip_code_gen)
     |    |- SuperLayer kind "code"        (a fused group: const-fix weights/bias + its ops)
     |    |- SuperLayer kind "skip"        (reshape/concat: skip_code_gen, no code)
     |    |- SuperLayer kind "download"    (a ``download`` op per DPU output)
     |- HostSubgraph  device CPU

Build one in Python and write it (``write_compiled``), or read any compiled xmodel
(``read_compiled``); ``read_compiled(write_compiled(m))`` equals ``m``.  Attributes that
fixflow does not model are kept, as read, in each node's ``attrs``.  Every problem is one
:class:`CompiledModelError` naming the subgraph, tensor and attribute.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fixflow.target import Target, TargetError

from .model import XAttr, XGraph, XModelError, XOp, XSubgraph, XTensor, parse_data_type, to_attrs
from .serial import read_file_bytes, read_xmodel_bytes, xmodel_bytes


__all__ = [
    "CompiledModelError", "REQUIRED_DPU_ATTRS", "OPTIONAL_DPU_ATTRS", "CHILD_ATTRS", "TENSOR_ATTRS", "DPU_RUNNER",
    "CPU_RUNNER", "CONTEXT_TYPES", "CONTEXT_TYPES_V2", "CHILD_KINDS", "Region", "SuperLayer", "DpuSubgraph",
    "HostSubgraph", "DdrTensor", "CompiledModel", "from_xgraph", "read_compiled", "read_compiled_bytes",
    "compiled_bytes", "write_compiled", "tensor_of",
]


class CompiledModelError(XModelError):
    """A compiled xmodel that breaks vai_c_xir's layout (missing or mistyped attribute, ...)."""


#: DPU subgraph attributes every reader needs, with the kind AMD's readers expect.
REQUIRED_DPU_ATTRS: dict[str, str] = {
    "device": "string", "dpu_name": "string", "dpu_fingerprint": "uint64", "mc_code": "bytes",
    "reg_id_to_context_type": "map_string_2_string", "reg_id_to_context_type_v2": "map_string_2_string",
    "reg_id_to_size": "map_string_2_int32", "workload": "uint64", "children_topological_sort": "string_vec",
}
#: Optional DPU subgraph attributes fixflow models, with their kinds (checked when present).
OPTIONAL_DPU_ATTRS: dict[str, str] = {
    "reg_id_to_hw_segment": "map_string_2_string", "reg_id_to_parameter_value": "map_string_2_bytes",
    "ac_code": "string_vec", "workload_on_arch": "uint64", "runner": "map_string_2_string",
    "mc_code_preload": "bytes", "debug_mode": "string", "if_prefetch": "bool",
}
#: Super-layer child attributes fixflow models.
CHILD_ATTRS: dict[str, str] = {"mc_code": "bytes", "ac_code": "string_vec", "workload": "uint64",
                               "workload_on_arch": "uint64", "skip_code_gen": "bool"}
#: DDR tensor attributes on DPU tensors.
TENSOR_ATTRS: dict[str, str] = {"reg_id": "int32", "ddr_addr": "int32", "location": "int32",
                                "stride": "int32_vec", "fix_point": "int32"}

DPU_RUNNER = {"ref": "libvart-cpu-runner.so", "run": "libvart-dpu-runner.so", "sim": "libvart-sim-runner.so"}
CPU_RUNNER = {"ref": "libvart-cpu-runner.so", "run": "libvart-cpu-runner.so", "sim": "libvart-cpu-runner.so"}
CONTEXT_TYPES = ("CONST", "DATA")
CONTEXT_TYPES_V2 = ("CONST", "WORKSPACE", "INTERFACE")
CHILD_KINDS = ("upload", "code", "skip", "download")
NUM_REGS = 8
_REG_RE = re.compile(r"REG_([0-7])")


def _err(where: str, msg: str) -> CompiledModelError:
    return CompiledModelError(f"{where}: {msg}")


def _check_kind(where: str, name: str, a: XAttr, kind: str) -> None:
    if a.kind != kind:
        raise _err(where, f"attribute {name!r} is {a.kind}, expected {kind}")


# ---------------------------------------------------------------------------- nodes


@dataclass(eq=True)
class Region:
    """DDR region ``REG_<reg_id>`` of a DPU subgraph."""

    reg_id: int
    context_type: str
    context_type_v2: str
    size: int
    hw_segment: str | None = None
    parameter: bytes | None = None

    def __post_init__(self) -> None:
        if self.hw_segment is None:  # AMD's compiler: CONST regions in W0, data regions in D0
            self.hw_segment = "W0" if self.context_type == "CONST" else "D0"

    @property
    def name(self) -> str:
        return f"REG_{self.reg_id}"


@dataclass(eq=True)
class SuperLayer:
    """A child of a DPU subgraph: ``kind`` upload / code / skip / download (see module docstring)."""

    name: str
    op_names: list[str]
    kind: str = "code"
    mc_code: bytes | None = None
    ac_code: list[str] | None = None
    workload: int = 0
    workload_on_arch: int | None = None
    skip_code_gen: bool | None = None
    attrs: dict[str, XAttr] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in CHILD_KINDS:
            raise _err(f"subgraph {self.name!r}", f"unknown super-layer kind {self.kind!r}; "
                       f"expected one of {', '.join(CHILD_KINDS)}")
        if self.skip_code_gen is None:
            self.skip_code_gen = self.kind in ("upload", "skip")
        self.op_names = list(self.op_names)
        self.attrs = to_attrs(self.attrs, f"subgraph {self.name!r}: ")

    def to_subgraph(self) -> XSubgraph:
        a: dict[str, Any] = {}
        if self.skip_code_gen:
            a["skip_code_gen"] = True
        if self.mc_code is not None:
            a["mc_code"] = XAttr("bytes", self.mc_code)
        if self.ac_code is not None:
            a["ac_code"] = XAttr("string_vec", self.ac_code)
        a["workload"] = XAttr("uint64", self.workload)
        if self.workload_on_arch is not None:
            a["workload_on_arch"] = XAttr("uint64", self.workload_on_arch)
        return XSubgraph(self.name, self.op_names, {**self.attrs, **a})


@dataclass(eq=True)
class DpuSubgraph:
    """A DPU subgraph: its program, DDR regions and super-layer children."""

    name: str
    target: Target
    mc_code: bytes
    regions: list[Region]
    children: list[SuperLayer]
    dpu_name: str | None = None
    topological_sort: list[str] | None = None
    ac_code: list[str] | None = None
    workload: int = 0
    workload_on_arch: int | None = None
    runner: dict[str, str] | None = None
    attrs: dict[str, XAttr] = field(default_factory=dict)

    device = "DPU"

    def __post_init__(self) -> None:
        if self.dpu_name is None:
            self.dpu_name = self.target.name
        if self.topological_sort is None:
            self.topological_sort = [c.name for c in self.children if c.kind in ("code", "skip")]
        if self.runner is None:
            self.runner = dict(DPU_RUNNER)
        self.regions = sorted(self.regions, key=lambda r: r.reg_id)
        self.attrs = to_attrs(self.attrs, f"subgraph {self.name!r}: ")

    def region(self, reg_id: int) -> Region:
        for r in self.regions:
            if r.reg_id == reg_id:
                return r
        raise _err(f"subgraph {self.name!r}", f"has no region REG_{reg_id}")

    def child(self, name: str) -> SuperLayer:
        for c in self.children:
            if c.name == name:
                return c
        raise _err(f"subgraph {self.name!r}", f"has no child {name!r}")

    @property
    def code_children(self) -> list[SuperLayer]:
        """Children in ``children_topological_sort`` order."""
        by_name = {c.name: c for c in self.children}
        return [by_name[n] for n in self.topological_sort or [] if n in by_name]

    @property
    def parameters(self) -> dict[str, bytes]:
        return {r.name: r.parameter for r in self.regions if r.parameter is not None}

    def to_subgraph(self) -> XSubgraph:
        regs = self.regions
        a: dict[str, Any] = {
            "device": "DPU",
            "dpu_name": self.dpu_name,
            "dpu_fingerprint": XAttr("uint64", self.target.fingerprint),
            "mc_code": XAttr("bytes", self.mc_code),
            "reg_id_to_context_type": XAttr("map_string_2_string", {r.name: r.context_type for r in regs}),
            "reg_id_to_context_type_v2": XAttr("map_string_2_string", {r.name: r.context_type_v2 for r in regs}),
            "reg_id_to_size": XAttr("map_string_2_int32", {r.name: r.size for r in regs}),
            "reg_id_to_hw_segment": XAttr("map_string_2_string", {r.name: r.hw_segment for r in regs}),
            "reg_id_to_parameter_value": XAttr("map_string_2_bytes", self.parameters),
            "workload": XAttr("uint64", self.workload),
            "children_topological_sort": XAttr("string_vec", self.topological_sort),
            "runner": XAttr("map_string_2_string", self.runner),
        }
        if self.ac_code is not None:
            a["ac_code"] = XAttr("string_vec", self.ac_code)
        if self.workload_on_arch is not None:
            a["workload_on_arch"] = XAttr("uint64", self.workload_on_arch)
        return XSubgraph(self.name, [], {**self.attrs, **a}, [c.to_subgraph() for c in self.children])


@dataclass(eq=True)
class HostSubgraph:
    """A USER (graph inputs) or CPU subgraph: a leaf with op names."""

    name: str
    device: str
    op_names: list[str]
    attrs: dict[str, XAttr] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.device not in ("USER", "CPU"):
            raise _err(f"subgraph {self.name!r}", f"device {self.device!r} is not USER or CPU")
        self.op_names = list(self.op_names)
        self.attrs = to_attrs(self.attrs, f"subgraph {self.name!r}: ")
        if self.device == "CPU":
            self.attrs.setdefault("runner", XAttr("map_string_2_string", CPU_RUNNER))

    def to_subgraph(self) -> XSubgraph:
        return XSubgraph(self.name, self.op_names, {**self.attrs, "device": self.device})


@dataclass(frozen=True)
class DdrTensor:
    """A tensor in DDR as the DPU sees it: region ``reg_id`` at byte ``ddr_addr``."""

    name: str
    op: str
    shape: tuple[int, ...]
    data_type: str
    reg_id: int
    ddr_addr: int
    location: int
    stride: tuple[int, ...] | None
    fix_point: int | None

    @property
    def nbytes(self) -> int:
        """Bytes the tensor spans in DDR (``stride[0] * shape[0]`` when strided)."""
        if self.stride and self.shape:
            return self.stride[0] * self.shape[0] * parse_data_type(self.data_type)[1] // 8
        return math.prod(self.shape) * parse_data_type(self.data_type)[1] // 8

    @property
    def extent(self) -> int:
        """Bytes from the tensor's first to its last element, inclusive: a strided view (a concat input
        placed beside its siblings) ends before ``ddr_addr + nbytes``."""
        if self.stride and self.shape:
            last = sum((d - 1) * st for d, st in zip(self.shape, self.stride))
            return (last + 1) * parse_data_type(self.data_type)[1] // 8
        return self.nbytes


# ---------------------------------------------------------------------------- the model


@dataclass(eq=True)
class CompiledModel:
    """A compiled graph: ops (topological order), root children (USER / DPU / CPU subgraphs)."""

    name: str
    ops: list[XOp]
    subgraphs: list[HostSubgraph | DpuSubgraph]
    attrs: dict[str, XAttr] = field(default_factory=dict)
    root_attrs: dict[str, XAttr] = field(default_factory=dict)
    root_name: str = "root"

    def __post_init__(self) -> None:
        self.attrs = to_attrs(self.attrs, "graph: ")
        self.root_attrs = to_attrs(self.root_attrs, f"subgraph {self.root_name!r}: ")

    @property
    def dpu_subgraphs(self) -> list[DpuSubgraph]:
        return [s for s in self.subgraphs if isinstance(s, DpuSubgraph)]

    def subgraph(self, name: str) -> HostSubgraph | DpuSubgraph:
        for s in self.subgraphs:
            if s.name == name:
                return s
        raise _err(f"graph {self.name!r}", f"has no subgraph {name!r}")

    def op(self, name: str) -> XOp:
        for o in self.ops:
            if o.name == name:
                return o
        raise _err(f"graph {self.name!r}", f"has no op {name!r}")

    def to_xgraph(self) -> XGraph:
        """The plain XIR graph (what is written to the file)."""
        root = XSubgraph(self.root_name, [], self.root_attrs, [s.to_subgraph() for s in self.subgraphs])
        return XGraph(self.name, self.ops, self.attrs, root)

    def ddr_tensor(self, op_name: str) -> DdrTensor:
        """The DDR view of op ``op_name``'s output tensor (needs ``reg_id``, ``ddr_addr``, ``location``)."""
        return _ddr_tensor(self.op(op_name))

    def dpu_inputs(self, sg: DpuSubgraph) -> list[DdrTensor]:
        """The tensors of ``sg``'s ``upload`` ops, in op order."""
        names = {n for c in sg.children if c.kind == "upload" for n in c.op_names}
        return [_ddr_tensor(o) for o in self.ops if o.name in names]

    def dpu_outputs(self, sg: DpuSubgraph) -> list[DdrTensor]:
        """The tensors the ``download`` ops of ``sg`` read, in op order."""
        ops = {o.name: o for o in self.ops}
        names: list[str] = []
        for o in self.ops:
            if any(o.name in c.op_names for c in sg.children if c.kind == "download"):
                names += [p for p in o.input_ops() if p not in names]
        return [_ddr_tensor(ops[n]) for n in names]

    def validate(self) -> None:
        """Every structural check the reader applies (see :func:`from_xgraph`)."""
        from_xgraph(self.to_xgraph())


def _ddr_tensor(o: XOp) -> DdrTensor:
    t = o.output
    where = f"tensor {t.name!r} (op {o.name!r})"
    vals = {}
    for k in ("reg_id", "ddr_addr", "location"):
        if k not in t.attrs:
            raise _err(where, f"lacks attribute {k!r} (int32) that a DPU tensor in DDR needs")
        _check_kind(where, k, t.attrs[k], "int32")
        vals[k] = t.attrs[k].value
    stride = None
    if "stride" in t.attrs:
        _check_kind(where, "stride", t.attrs["stride"], "int32_vec")
        stride = tuple(t.attrs["stride"].value)
    fp = t.attrs.get("fix_point")
    return DdrTensor(t.name, o.name, tuple(t.shape), t.data_type, vals["reg_id"], vals["ddr_addr"],
                     vals["location"], stride, fp.value if fp is not None and fp.kind == "int32" else None)


# ---------------------------------------------------------------------------- reading


def _split_known(sg: XSubgraph, known: Mapping[str, str]) -> tuple[dict[str, XAttr], dict[str, XAttr]]:
    where = f"subgraph {sg.name!r}"
    mine, rest = {}, {}
    for k, a in sg.attrs.items():
        if k in known:
            _check_kind(where, k, a, known[k])
            mine[k] = a
        else:
            rest[k] = a
    return mine, rest


def _regions(sg: XSubgraph, a: dict[str, XAttr]) -> list[Region]:
    where = f"subgraph {sg.name!r}"
    maps = {k: a[k].value for k in ("reg_id_to_context_type", "reg_id_to_context_type_v2", "reg_id_to_size",
                                      "reg_id_to_hw_segment", "reg_id_to_parameter_value") if k in a}
    for k, m in maps.items():
        for reg in m:
            if not _REG_RE.fullmatch(reg):
                raise _err(where, f"attribute {k!r}: key {reg!r} is not a register name REG_0 ... REG_7")
    regs = maps["reg_id_to_size"]
    for k in ("reg_id_to_context_type", "reg_id_to_context_type_v2"):
        if set(maps[k]) != set(regs):
            raise _err(where, f"attribute {k!r} names registers {sorted(maps[k])}, "
                       f"but reg_id_to_size names {sorted(regs)}")
    for k in ("reg_id_to_hw_segment", "reg_id_to_parameter_value"):
        extra = sorted(set(maps.get(k, {})) - set(regs))
        if extra:
            raise _err(where, f"attribute {k!r} names {extra[0]}, which reg_id_to_size lacks")
    out = []
    for reg, size in regs.items():
        ct, ct2 = maps["reg_id_to_context_type"][reg], maps["reg_id_to_context_type_v2"][reg]
        if ct not in CONTEXT_TYPES:
            raise _err(where, f"attribute 'reg_id_to_context_type': {reg} is {ct!r}, expected CONST or DATA")
        if ct2 not in CONTEXT_TYPES_V2:
            raise _err(where, f"attribute 'reg_id_to_context_type_v2': {reg} is {ct2!r}, "
                       "expected CONST, WORKSPACE or INTERFACE")
        if (ct == "CONST") != (ct2 == "CONST"):
            raise _err(where, f"{reg} is {ct} in reg_id_to_context_type but {ct2} in reg_id_to_context_type_v2")
        if size < 0:
            raise _err(where, f"attribute 'reg_id_to_size': {reg} has negative size {size}")
        param = maps.get("reg_id_to_parameter_value", {}).get(reg)
        if param is not None and ct != "CONST":
            raise _err(where, f"attribute 'reg_id_to_parameter_value': {reg} is a {ct} region, not CONST")
        if param is not None and len(param) > size:
            raise _err(where, f"attribute 'reg_id_to_parameter_value': {reg} holds {len(param)} bytes, "
                       f"more than its reg_id_to_size {size}")
        out.append(Region(int(reg[4:]), ct, ct2, size, maps.get("reg_id_to_hw_segment", {}).get(reg), param))
    return out


def _child_kind(c: XSubgraph, ops: Mapping[str, XOp], skip: bool) -> str:
    types = {ops[n].type for n in c.op_names}
    if "upload" in types or "download" in types:
        if len(types) != 1:
            raise _err(f"subgraph {c.name!r}", f"mixes {'/'.join(sorted(types))} ops; an upload or download "
                       "child holds only upload or only download ops")
        return types.pop()
    return "skip" if skip else "code"


def _dpu(sg: XSubgraph, ops: Mapping[str, XOp]) -> DpuSubgraph:
    where = f"DPU subgraph {sg.name!r}"
    for k, kind in REQUIRED_DPU_ATTRS.items():
        if k not in sg.attrs:
            raise _err(where, f"lacks required attribute {k!r} ({kind})")
    mine, rest = _split_known(sg, {**REQUIRED_DPU_ATTRS, **OPTIONAL_DPU_ATTRS})
    try:
        target = Target.from_fingerprint(mine["dpu_fingerprint"].value)
    except TargetError as e:
        raise _err(where, f"attribute 'dpu_fingerprint': {e.message}") from None
    name = mine["dpu_name"].value
    if name not in (target.name, target.base_name):
        raise _err(where, f"attribute 'dpu_name' is {name!r} but dpu_fingerprint "
                   f"{target.fingerprint_hex} is {target.name}")
    if sg.op_names or not sg.children:
        raise _err(where, "must have super-layer children and no ops of its own")
    children = []
    for c in sg.children:
        if c.children:
            raise _err(f"subgraph {c.name!r}", "a super-layer child of a DPU subgraph must be a leaf")
        cm, crest = _split_known(c, CHILD_ATTRS)
        kind = _child_kind(c, ops, bool(cm["skip_code_gen"].value) if "skip_code_gen" in cm else False)
        children.append(SuperLayer(
            c.name, c.op_names, kind,
            cm["mc_code"].value if "mc_code" in cm else None,
            cm["ac_code"].value if "ac_code" in cm else None,
            cm["workload"].value if "workload" in cm else 0,
            cm["workload_on_arch"].value if "workload_on_arch" in cm else None,
            cm["skip_code_gen"].value if "skip_code_gen" in cm else False, crest))
    names = [c.name for c in children]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise _err(where, f"has two children named {dup!r}")
    topo = mine["children_topological_sort"].value
    for n in topo:
        if n not in names:
            raise _err(where, f"attribute 'children_topological_sort' names {n!r}, which is not a child")
    if len(set(topo)) != len(topo):
        raise _err(where, "attribute 'children_topological_sort' names a child twice")
    return DpuSubgraph(
        sg.name, target, mine["mc_code"].value, _regions(sg, mine), children, name, topo,
        mine["ac_code"].value if "ac_code" in mine else None, mine["workload"].value,
        mine["workload_on_arch"].value if "workload_on_arch" in mine else None,
        mine["runner"].value if "runner" in mine else {}, rest | {
            k: mine[k] for k in ("mc_code_preload", "debug_mode", "if_prefetch") if k in mine})


def _check_dataflow(m: CompiledModel) -> None:
    """Data enters a DPU subgraph only through ``upload`` ops and leaves only through ``download`` ops;
    its DDR tensors lie inside their regions."""
    owner: dict[str, tuple[DpuSubgraph, SuperLayer] | None] = {}
    for s in m.subgraphs:
        if isinstance(s, DpuSubgraph):
            for c in s.children:
                owner.update({n: (s, c) for n in c.op_names})
        else:
            owner.update({n: None for n in s.op_names})
    for o in m.ops:
        mine = owner.get(o.name)
        for p in o.input_ops():
            theirs = owner.get(p)
            if mine is not None and (theirs is None or theirs[0] is not mine[0]) and mine[1].kind != "upload":
                raise _err(f"op {o.name!r}", f"in DPU subgraph {mine[0].name!r} reads {p!r} from outside it; "
                           "data enters a DPU subgraph only through an upload op")
            if theirs is not None and (mine is None or mine[0] is not theirs[0]) and theirs[1].kind != "download":
                raise _err(f"op {o.name!r}", f"reads {p!r} out of DPU subgraph {theirs[0].name!r}; data leaves "
                           "a DPU subgraph only through a download op")
    for s in m.dpu_subgraphs:
        for t in m.dpu_inputs(s) + m.dpu_outputs(s):
            _check_in_region(s, t, require_ddr=True)
        for c in s.children:
            for n in c.op_names:
                o = m.op(n)
                if c.kind != "download" and "location" in o.output.attrs and o.output.attrs["location"].value == 1:
                    _check_in_region(s, _ddr_tensor(o), require_ddr=True)


def _check_in_region(s: DpuSubgraph, t: DdrTensor, require_ddr: bool) -> None:
    where = f"tensor {t.name!r} (op {t.op!r})"
    if require_ddr and t.location != 1:
        raise _err(where, f"attribute 'location' is {t.location}; a tensor the DPU reads or writes in DDR has 1")
    regs = {r.reg_id: r for r in s.regions}
    if t.reg_id not in regs:
        raise _err(where, f"attribute 'reg_id' is {t.reg_id}, but DPU subgraph {s.name!r} has registers "
                   f"{', '.join(r.name for r in s.regions)}")
    r = regs[t.reg_id]
    if t.ddr_addr < 0 or t.ddr_addr + t.extent > r.size:
        raise _err(where, f"bytes {t.ddr_addr}..{t.ddr_addr + t.extent} lie outside {r.name} "
                   f"({r.size} bytes; attribute 'ddr_addr')")


def from_xgraph(g: XGraph) -> CompiledModel:
    """Check ``g`` against the compiled layout and build its :class:`CompiledModel`."""
    if g.root is None:
        raise CompiledModelError(f"graph {g.name!r} has no subgraph tree (not a compiled xmodel)")
    ops = g.op_map()
    subgraphs: list[HostSubgraph | DpuSubgraph] = []
    for sg in g.root.children:
        dev = sg.attrs.get("device")
        if dev is None:
            raise _err(f"subgraph {sg.name!r}", "a child of the root lacks attribute 'device' (USER, DPU or CPU)")
        _check_kind(f"subgraph {sg.name!r}", "device", dev, "string")
        if dev.value == "DPU":
            subgraphs.append(_dpu(sg, ops))
        elif dev.value in ("USER", "CPU"):
            if sg.children:
                raise _err(f"subgraph {sg.name!r}", f"a {dev.value} subgraph must be a leaf")
            subgraphs.append(HostSubgraph(sg.name, dev.value, sg.op_names,
                                          {k: a for k, a in sg.attrs.items() if k != "device"}))
        else:
            raise _err(f"subgraph {sg.name!r}", f"attribute 'device' is {dev.value!r}, expected USER, DPU or CPU")
    if not g.root.children:
        raise CompiledModelError(f"graph {g.name!r}: the root subgraph has no children")
    m = CompiledModel(g.name, g.ops, subgraphs, g.attrs, g.root.attrs, g.root.name)
    _check_dataflow(m)
    return m


def read_compiled_bytes(data: bytes, name: str = "<bytes>") -> CompiledModel:
    """Decode a compiled .xmodel; every problem is one :class:`XModelError` starting with ``name``."""
    g = read_xmodel_bytes(data, name)
    try:
        return from_xgraph(g)
    except XModelError as e:
        raise CompiledModelError(f"{name}: invalid compiled xmodel: {e.message}") from None


def read_compiled(path: str | os.PathLike[str]) -> CompiledModel:
    """Read a compiled .xmodel file (see :func:`read_compiled_bytes`)."""
    return read_compiled_bytes(read_file_bytes(path), os.fspath(path))


def compiled_bytes(m: CompiledModel, origin: str = "fixflow") -> bytes:
    """Validate ``m`` and serialize it."""
    g = m.to_xgraph()
    from_xgraph(g)
    return xmodel_bytes(g, origin)


def write_compiled(m: CompiledModel, path: str | os.PathLike[str], origin: str = "fixflow") -> bytes:
    """Write ``m`` to ``path``; returns the bytes written."""
    try:
        data = compiled_bytes(m, origin)
    except XModelError as e:
        raise CompiledModelError(f"{os.fspath(path)}: cannot write compiled xmodel: {e.message}") from None
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        raise CompiledModelError(f"{os.fspath(path)}: cannot write: {e.strerror or e}") from None
    return data


def tensor_of(m: CompiledModel, name: str) -> XTensor:
    """The output tensor called ``name`` (tensor names may differ from op names)."""
    for o in m.ops:
        if o.output.name == name:
            return o.output
    raise _err(f"graph {m.name!r}", f"has no tensor {name!r}")
