"""Text views of an xmodel in the formats of AMD's ``xir`` command (amd/xir ``tools/cmd_*.cpp``).

- :func:`subgraph_tree`: ``xir subgraph`` (4-space indent, children in XIR's
  ``children_topological_sort`` order, ``[device=...]`` only where a device is set; a DPU
  subgraph adds ``fingerprint=0x<hex without leading zeros>,DPU=<name>,I=[...],O=[...]``).
  The tensors are printed with the ``xir_tensor{name:(dims), fixpos=N # of elements= M}``
  printer of AMD's ``xir_util.hpp`` (the built tool prints raw pointers there instead).
- :func:`dump_reg`: ``xir dump_reg`` (every DPU subgraph's register maps).
- :func:`graph_attrs`: ``xir graph`` (graph attributes: strings and string maps).
- :func:`dump_txt`: ``xir dump_txt`` (protobuf text format; bytes as size, md5 and the
  xxd-style head/tail of at most 160 bytes; AMD's lines also start with a memory address,
  which is left out here).
- :func:`to_dot`: the Graphviz text ``xir svg``/``xir png`` feed to ``dot`` (ops as boxes
  labelled Name/Type/Tensor/Shape, one cluster per subgraph coloured by device).
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from typing import Any

from .model import GraphIndex, XAttr, XGraph, XModelError, XSubgraph


def children_order(g: XGraph, sg: XSubgraph, index: GraphIndex | None = None) -> list[XSubgraph]:
    """``sg``'s children in the order XIR's ``Subgraph::children_topological_sort`` gives.

    XIR sorts the children by name, adds an edge producer-child -> consumer-child for every
    op input (sorted by op name) and output, and takes the reverse post-order of a
    depth-first search started from each child in name order (boost's topological sort).
    """
    ix = index or g.index()
    kids = sorted(sg.children, key=lambda c: c.name)  # stable, as XIR's insertion sort
    owner: dict[str, int] = {}
    for i, c in enumerate(kids):
        for n in c.all_op_names():
            owner[n] = i
    out_edges: list[list[int]] = [[] for _ in kids]
    for i, c in enumerate(kids):
        ins, outs = [], []
        for n in c.all_op_names():
            if n not in ix.ops:
                continue
            ins += [p for p in ix.ops[n].input_ops() if p in owner and owner[p] != i]
            outs += [q for q in ix.consumers.get(n, []) if q in owner and owner[q] != i]
        for p in sorted(ins):
            out_edges[owner[p]].append(i)
        for q in sorted(outs):
            out_edges[i].append(owner[q])
    state = [0] * len(kids)
    finished: list[int] = []
    for start in range(len(kids)):
        if state[start]:
            continue
        state[start] = 1
        stack = [(start, iter(out_edges[start]))]
        while stack:
            v, it = stack[-1]
            for w in it:
                if state[w] == 1:
                    raise XModelError(f"children of subgraph {sg.name!r} depend on each other cyclically")
                if state[w] == 0:
                    state[w] = 1
                    stack.append((w, iter(out_edges[w])))
                    break
            else:
                stack.pop()
                state[v] = 2
                finished.append(v)
    return [kids[i] for i in reversed(finished)]


def _subgraph_io(g: XGraph, sg: XSubgraph, ix: GraphIndex) -> tuple[list[str], list[str]]:
    """XIR's ``get_input_tensors``/``get_output_tensors`` (as producer op names, in op order)."""
    inside = set(sg.all_op_names())
    ins: dict[str, None] = {}
    outs: dict[str, None] = {}
    for n in sorted(inside & set(ix.ops), key=ix.position.__getitem__):
        for p in ix.ops[n].input_ops():
            if p not in inside:
                ins[p] = None
        users = ix.consumers.get(n, [])
        if not users or any(u not in inside for u in users):
            outs[n] = None
    key = ix.position.__getitem__
    return sorted(ins, key=key), sorted(outs, key=key)


def tensor_text(g: XGraph, op_name: str, ix: GraphIndex | None = None) -> str:
    """``xir_tensor{name:(1,28,28,1), fixpos=6 # of elements= 784}``."""
    ix = ix or g.index()
    t = ix.ops[op_name].output
    fp = t.attr("fix_point")
    return (f"xir_tensor{{{t.name}:({','.join(map(str, t.shape))}), "
            f"fixpos={fp if fp is not None else 'NA'} # of elements= {math.prod(t.shape)}}}")


def _typed(sg: XSubgraph, name: str, kinds: tuple[str, ...], default: Any = None) -> Any:
    """Attribute ``name`` of ``sg``, which must be of one of ``kinds`` (as AMD's ``get_attr<T>`` needs)."""
    a = sg.attrs.get(name)
    if a is None:
        if default is not None:
            return default
        raise XModelError(f"DPU subgraph {sg.name!r} lacks attribute {name!r} ({' or '.join(kinds)})")
    if a.kind not in kinds:
        raise XModelError(f"DPU subgraph {sg.name!r}: attribute {name!r} is {a.kind}, expected {' or '.join(kinds)}")
    return a.value


def subgraph_tree(g: XGraph) -> list[str]:
    """The lines ``xir subgraph`` prints."""
    ix = g.index()
    out: list[str] = []

    def rec(sg: XSubgraph, depth: int) -> None:
        line = "    " * depth + sg.name
        dev = sg.attr("device") if sg.attrs.get("device", XAttr("string", "")).kind == "string" else None
        if isinstance(dev, str) and dev:
            line += f" [device={dev}"
            if dev == "DPU":
                fp = _typed(sg, "dpu_fingerprint", ("uint64",), 0)
                ins, outs = _subgraph_io(g, sg, ix)
                line += (f",fingerprint=0x{fp:x},DPU={_typed(sg, 'dpu_name', ('string',))}"
                         f",I=[{','.join(tensor_text(g, n, ix) for n in ins)}]"
                         f",O=[{','.join(tensor_text(g, n, ix) for n in outs)}]")
            line += "]"
        out.append(line)
        for c in children_order(g, sg, ix):
            rec(c, depth + 1)

    rec(g.root_or_default(), 0)
    return out


_REG_MAPS = (("reg_id_to_context_type", "map_string_2_string"),
             ("reg_id_to_context_type_v2", "map_string_2_string"),
             ("reg_id_to_hw_segment", "map_string_2_string"),
             ("reg_id_to_parameter_value", "map_string_2_bytes"),
             ("reg_id_to_size", "map_string_2_int32"))


def dump_reg(g: XGraph) -> list[str]:
    """The lines ``xir dump_reg`` prints; a DPU subgraph lacking one of its maps is an error."""
    ix = g.index()
    out: list[str] = []

    def rec(sg: XSubgraph, n: int) -> None:
        if sg.attr("device") == "DPU" and sg.attrs["device"].kind == "string":
            out.append("    " * n + sg.name)
            pad = "    " * (n + 1)
            for key, kind in _REG_MAPS:
                a = sg.attrs.get(key)
                if a is None or a.kind != kind:
                    got = "it is missing" if a is None else f"it is {a.kind}"
                    raise XModelError(f"DPU subgraph {sg.name!r}: dump_reg needs attribute {key!r} "
                                      f"({kind}); {got}")
                out.append(f"{pad}{key}:")
                for r, v in sorted(a.value.items()):
                    if kind == "map_string_2_bytes":
                        v = f"{len(v)} bytes md5sum= {hashlib.md5(v).hexdigest()}"
                    out.append(f"{pad}{r} => {v}")
            out.append("")
        for c in children_order(g, sg, ix):
            rec(c, n + 1)

    rec(g.root_or_default(), 0)
    return out


def graph_attrs(g: XGraph) -> list[str]:
    """The lines ``xir graph`` prints: ``"key" = value`` for string and string-map attributes
    (other kinds show ``NA``, as AMD's tool does)."""
    out = []
    for k, a in sorted(g.attrs.items()):
        if a.kind == "string":
            out.append(f'"{k}" = {a.value}')
        elif a.kind == "map_string_2_string":
            body = "".join(f'\n\t"{mk}" = {mv}' for mk, mv in sorted(a.value.items()))
            out += f'"{k}" = {{{body}\n}}'.split("\n")
        else:
            out.append(f'"{k}" = NA')
    return out


def _xxd(data: bytes, pad: str) -> str:
    s = []
    for i in range(len(data)):
        if i % 16 == 0:
            s.append(f"\n{pad}{i:08x}:")
        if i % 2 == 0:
            s.append(" ")
        s.append(f"{data[i]:02x}")
    return "".join(s) + "\n" + pad


def bytes_dump(data: bytes, pad: str) -> str:
    """``bytes = N md5sum = X`` then ``head:``/``tail:`` hex of up to 160 bytes each."""
    n = min(160, len(data))
    return (f"bytes = {len(data)} md5sum = {hashlib.md5(data).hexdigest()}\n{pad}head: "
            + _xxd(data[:n], pad) + "tail: " + _xxd(data[len(data) - n:], pad))


_INTEGRAL_FLOAT = re.compile(r"^(\s*\w+: -?\d+)\.0$", re.M)


def dump_txt(pb: Any) -> str:
    """Protobuf text format of a ``serial_v2.Graph`` message with bytes as :func:`bytes_dump`."""
    from google.protobuf import text_format

    def scalar(msg: Any, name: str) -> str:
        buf = io.StringIO()
        text_format.PrintFieldValue(msg.DESCRIPTOR.fields_by_name[name], getattr(msg, name), buf, as_utf8=False)
        return buf.getvalue()

    def fmt(msg: Any, indent: int, as_one_line: bool) -> str | None:
        pad = " " * indent
        if msg.DESCRIPTOR.GetOptions().map_entry:  # C++ prints key and value even when they are 0 / ""
            vf = msg.DESCRIPTOR.fields_by_name["value"]
            if vf.message_type is None:
                value = f"value: {scalar(msg, 'value')}"
            else:
                inner = text_format.MessageToString(msg.value, indent=indent + 2, message_formatter=fmt,
                                                    as_utf8=False)
                value = "value {\n" + inner + pad + "}"
            return f"key: {scalar(msg, 'key')}\n{pad}{value}"
        if msg.DESCRIPTOR.name != "Bytes" or not msg.value:
            return None
        return "value: " + bytes_dump(msg.value, pad)

    text = text_format.MessageToString(pb, message_formatter=fmt, as_utf8=False)
    return _INTEGRAL_FLOAT.sub(r"\1", text)  # C++ prints 1.0 as 1


def _dot_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _fold(s: str, stride: int = 50) -> str:
    out = []
    for i, ch in enumerate(s):
        out.append(ch)
        if i != 0 and i != len(s) - 1 and i % stride == 0:
            out.append("\n")
    return "".join(out)


_DEVICE_COLOR = {"CPU": "red", "DPU": "blue", "USER": "green"}


def to_dot(g: XGraph) -> str:
    """Graphviz text of the op graph with one cluster per subgraph (as XIR's ``save_to_dot``)."""
    idx = {o.name: i for i, o in enumerate(g.ops)}
    lines = ["digraph G0 {", "node [shape=box, style=rounded];"]
    root = g.root_or_default()
    counter = [0]

    def cluster(sg: XSubgraph, depth: int) -> None:
        pad = "  " * depth
        lines.append(f"{pad}subgraph clustersubgraph{counter[0]} {{")
        counter[0] += 1
        lines.append(f"{pad}  label={_dot_quote(sg.name)};")
        dev = sg.attr("device")
        color = _DEVICE_COLOR.get(dev) if isinstance(dev, str) else None
        lines.append(f"{pad}  node [shape=box, style=rounded" + (f", color={color}" if color else "") + "];")
        for n in sg.all_op_names():
            if n in idx:
                lines.append(f"{pad}  {idx[n]};")
        for c in sorted(sg.children, key=lambda c: c.name):
            cluster(c, depth + 1)
        lines.append(f"{pad}}}")

    for c in sorted(root.children, key=lambda c: c.name):
        cluster(c, 1)
    for o in g.ops:
        t = o.output
        label = (_fold("Name: " + o.name) + "\nType: " + o.type + _fold("\nTensor: " + t.name)
                 + "\nShape: {" + ", ".join(map(str, t.shape)) + "}")
        lines.append(f"{idx[o.name]} [label={_dot_quote(label)}];")
    for o in g.ops:
        for p in o.input_ops():
            if p in idx:
                lines.append(f"{idx[p]}->{idx[o.name]} ;")
    lines.append("}")
    return "\n".join(lines) + "\n"
