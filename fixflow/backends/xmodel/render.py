"""Human-readable views of an xmodel: text dump, subgraph tree, op list, dot and SVG."""

from __future__ import annotations

import hashlib
from html import escape
from typing import Any

from .model import GraphIndex, XAttr, XGraph, XSubgraph


def bytes_summary(b: bytes, edge: int = 16) -> str:
    """``<N bytes md5=... head=.. tail=..>``: never the whole blob."""
    s = f"<{len(b)} bytes md5={hashlib.md5(b).hexdigest()}"
    if b:
        s += f" head={b[:edge].hex(' ')}"
    if len(b) > edge:
        s += f" tail={b[-min(edge, len(b) - edge):].hex(' ')}"
    return s + ">"


def _scalar_text(field: Any, value: Any) -> str:
    from google.protobuf.descriptor import FieldDescriptor as FD

    if field.type == FD.TYPE_BYTES:
        return bytes_summary(value)
    if field.type == FD.TYPE_STRING:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if field.type == FD.TYPE_ENUM:
        ev = field.enum_type.values_by_number.get(value)
        return ev.name if ev else str(value)
    if field.type == FD.TYPE_BOOL:
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _is_repeated(field: Any) -> bool:
    rep = getattr(field, "is_repeated", None)  # protobuf >= 6; ``label`` before
    return bool(rep) if rep is not None else field.label == 3


def message_text(msg: Any, indent: int = 0) -> list[str]:
    """Protobuf text format of ``msg``, except bytes fields are summarised."""
    pad = "  " * indent
    out: list[str] = []
    for field, value in msg.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            vfield = field.message_type.fields_by_name["value"]
            for k in sorted(value):
                out.append(f"{pad}{field.name} {{")
                out.append(f"{pad}  key: {_scalar_text(field.message_type.fields_by_name['key'], k)}")
                if vfield.message_type is not None:
                    out.append(f"{pad}  value {{")
                    out += message_text(value[k], indent + 2)
                    out.append(f"{pad}  }}")
                else:
                    out.append(f"{pad}  value: {_scalar_text(vfield, value[k])}")
                out.append(f"{pad}}}")
            continue
        if _is_repeated(field) and field.message_type is None:
            out.append(f"{pad}{field.name}: [{', '.join(_scalar_text(field, x) for x in value)}]")
            continue
        items = value if _is_repeated(field) else [value]
        for item in items:
            if field.message_type is not None:
                out.append(f"{pad}{field.name} {{")
                out += message_text(item, indent + 1)
                out.append(f"{pad}}}")
            else:
                out.append(f"{pad}{field.name}: {_scalar_text(field, item)}")
    return out


def attr_text(a: XAttr) -> str:
    """Compact text of an attribute value (bytes summarised)."""
    v = a.value
    if a.kind == "bytes":
        return bytes_summary(v)
    if a.kind == "bytes_vec":
        return "[" + ", ".join(bytes_summary(x) for x in v) + "]"
    if a.kind == "uint64" and v > 0xFFFFFFFF:
        return f"0x{v:016x}"
    if a.kind.startswith("map_string_2_"):
        fmt = bytes_summary if a.kind == "map_string_2_bytes" else repr
        return "{" + ", ".join(f"{k}: {fmt(x)}" for k, x in v.items()) + "}"
    return repr(v)


def _tensor_text(ix: GraphIndex, op_name: str) -> str:
    t = ix.ops[op_name].output
    return f"{t.name}:{t.data_type}[{','.join(map(str, t.shape))}]"


def subgraph_line(g: XGraph, sg: XSubgraph, index: GraphIndex | None = None) -> str:
    """``name [device=DPU,fingerprint=0x...,DPU=...,I=[...],O=[...]]`` (as far as known)."""
    items = []
    if sg.has_attr("device"):
        items.append(f"device={sg.attr('device')}")
    if sg.has_attr("dpu_fingerprint"):
        items.append(f"fingerprint=0x{int(sg.attr('dpu_fingerprint')):016x}")
    if sg.has_attr("dpu_name"):
        items.append(f"DPU={sg.attr('dpu_name')}")
    ix = index or g.index()
    ins = ",".join(_tensor_text(ix, n) for n in g.subgraph_inputs(sg, ix))
    outs = ",".join(_tensor_text(ix, n) for n in g.subgraph_outputs(sg, ix))
    items += [f"I=[{ins}]", f"O=[{outs}]"]
    return f"{sg.name} [{','.join(items)}]"


def subgraph_tree(g: XGraph) -> list[str]:
    """Indented subgraph tree, children in topological order."""
    out: list[str] = []
    ix = g.index()

    def rec(sg: XSubgraph, depth: int) -> None:
        out.append("  " * depth + subgraph_line(g, sg, ix))
        if sg.children:
            for c in g.toposort_children(sg, ix):
                rec(c, depth + 1)

    rec(g.root_or_default(), 0)
    return out


def op_list(g: XGraph) -> list[str]:
    """One line per op: name, type, output type and shape, inputs."""
    rows = []
    for o in g.ops:
        t = o.output
        ins = "; ".join(f"{k}={','.join(v)}" for k, v in o.inputs.items())
        rows.append((o.name, o.type, f"{t.data_type}[{','.join(map(str, t.shape))}]", ins))
    widths = [max(len(r[i]) for r in rows + [("op", "type", "output", "")]) for i in range(3)]
    head = [f"{'op':<{widths[0]}}  {'type':<{widths[1]}}  {'output':<{widths[2]}}  inputs"]
    return head + [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}".rstrip()
                   for a, b, c, d in rows]


def _layers(g: XGraph) -> dict[str, int]:
    depth: dict[str, int] = {}
    for o in g.ops:  # ops are in topological order
        depth[o.name] = 1 + max((depth[p] for p in o.input_ops() if p in depth), default=-1)
    return depth


def to_dot(g: XGraph) -> str:
    """Graphviz dot text of the op graph."""
    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace('"', '\\"')

    def q(s: str) -> str:
        return f'"{esc(s)}"'

    lines = [f"digraph {q(g.name or 'xmodel')} {{", "  node [shape=box, style=rounded];"]
    for o in g.ops:
        t = o.output
        parts = (o.name, o.type, f"{t.data_type}[{','.join(map(str, t.shape))}]")
        label = "\\n".join(map(esc, parts))
        lines.append(f'  {q(o.name)} [label="{label}"];')
    for o in g.ops:
        for arg, ps in o.inputs.items():
            for p in ps:
                lines.append(f"  {q(p)} -> {q(o.name)} [label={q(arg)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_svg(g: XGraph) -> str:
    """A self-contained SVG of the op graph with a simple layered (top-down) layout."""
    depth = _layers(g)
    layers: dict[int, list[str]] = {}
    for o in g.ops:
        layers.setdefault(depth[o.name], []).append(o.name)
    ops = g.op_map()
    texts = {n: (n, ops[n].type, f"{ops[n].output.data_type}[{','.join(map(str, ops[n].output.shape))}]")
             for n in ops}
    box_w = max(120, 7 * max(len(s) for t in texts.values() for s in t) + 16)
    box_h, gap_x, gap_y, margin = 54, 24, 40, 20
    width = margin * 2 + max(len(v) for v in layers.values()) * (box_w + gap_x) - gap_x
    pos: dict[str, tuple[float, float]] = {}
    for d, names in layers.items():
        row_w = len(names) * (box_w + gap_x) - gap_x
        x0 = (width - row_w) / 2
        for i, n in enumerate(names):
            pos[n] = (x0 + i * (box_w + gap_x), margin + d * (box_h + gap_y))
    height = margin * 2 + len(layers) * (box_h + gap_y) - gap_y
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="monospace" font-size="11">',
           f"<title>{escape(g.name)}</title>",
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
           'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>']
    for o in g.ops:
        x1, y1 = pos[o.name]
        for p in o.input_ops():
            x0, y0 = pos[p]
            out.append(f'<line x1="{x0 + box_w / 2:.1f}" y1="{y0 + box_h:.1f}" x2="{x1 + box_w / 2:.1f}" '
                       f'y2="{y1:.1f}" stroke="#555" marker-end="url(#arrow)"/>')
    for n, (x, y) in pos.items():
        fill = "#dbeafe" if ops[n].type in ("data", "data-fix") else \
            "#e5e7eb" if ops[n].type in ("const", "const-fix") else "#fef3c7"
        out.append(f'<g><title>{escape(n)}</title><rect x="{x:.1f}" y="{y:.1f}" width="{box_w}" '
                   f'height="{box_h}" rx="6" fill="{fill}" stroke="#333"/>')
        for i, s in enumerate(texts[n]):
            weight = ' font-weight="bold"' if i == 1 else ""
            out.append(f'<text x="{x + box_w / 2:.1f}" y="{y + 16 + 14 * i:.1f}" '
                       f'text-anchor="middle"{weight}>{escape(s)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
