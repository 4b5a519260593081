"""``fixflow-xir``: inspect .xmodel files (modelled on Vitis AI's ``xir`` tool)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{message} (see fixflow-xir --help)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="fixflow-xir", description="Inspect XIR .xmodel files.")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", required=True, parser_class=_Parser)
    c = sub.add_parser("dump_txt", help="text dump (bytes shown as size + md5 + head/tail hex)")
    c.add_argument("xmodel")
    c.add_argument("out", nargs="?", help="output file (default: stdout)")
    c = sub.add_parser("subgraph", help="indented subgraph tree")
    c.add_argument("xmodel")
    c = sub.add_parser("dump_bin", help="write <subgraph>.mc, <subgraph>.ac and <REG_n>.bin to DIR")
    c.add_argument("xmodel")
    c.add_argument("dir")
    c = sub.add_parser("dump_reg", help="register maps (reg_id_to_*) of each DPU subgraph")
    c.add_argument("xmodel")
    c = sub.add_parser("graph", help="op list with types, shapes and inputs")
    c.add_argument("xmodel")
    for fmt in ("svg", "dot", "png"):
        c = sub.add_parser(fmt, help=f"draw the op graph as {fmt}"
                           + (" (not supported: use svg)" if fmt == "png" else ""))
        c.add_argument("xmodel")
        c.add_argument("out")
    return p


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "_"


def _write(path: str, data: str | bytes) -> None:
    from fixflow.backends.xmodel import XModelError

    try:
        with open(path, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
    except OSError as e:
        raise XModelError(f"{path}: cannot write: {e.strerror or e}") from None


def _dump_txt(path: str, out: str | None) -> None:
    from fixflow.backends.xmodel.render import message_text
    from fixflow.backends.xmodel.serial import parse_xmodel_bytes, read_file_bytes

    pb = parse_xmodel_bytes(read_file_bytes(path), path)
    text = "\n".join(message_text(pb)) + "\n"
    if out:
        _write(out, text)
    else:
        sys.stdout.write(text)


def _dump_bin(g, out_dir: str) -> None:
    from fixflow.backends.xmodel import XModelError

    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise XModelError(f"{out_dir}: cannot create directory: {e.strerror or e}") from None
    files: list[tuple[str, bytes]] = []
    regs: list[tuple[str, str, bytes]] = []
    for sg in g.root_or_default().walk():
        if sg.has_attr("mc_code"):
            files.append((f"{_safe(sg.name)}.mc", sg.attr("mc_code")))
        if sg.has_attr("ac_code"):
            files.append((f"{_safe(sg.name)}.ac", "".join(l + "\n" for l in sg.attr("ac_code")).encode()))
        for reg, blob in (sg.attr("reg_id_to_parameter_value") or {}).items():
            regs.append((sg.name, reg, blob))
    names = [r for _, r, _ in regs]
    for sg_name, reg, blob in regs:
        fname = f"{_safe(reg)}.bin" if names.count(reg) == 1 else f"{_safe(sg_name)}_{_safe(reg)}.bin"
        files.append((fname, blob))
    if not files:
        print(f"{g.name}: no mc_code, ac_code or parameters in any subgraph")
    for fname, data in files:
        _write(os.path.join(out_dir, fname), data)
        print(f"{os.path.join(out_dir, fname)} ({len(data)} bytes)")


def _dump_reg(g) -> None:
    from fixflow.backends.xmodel.render import bytes_summary

    dpus = [s for s in g.root_or_default().walk() if str(s.attr("device", "")).upper() == "DPU"]
    if not dpus:
        print(f"{g.name}: no DPU subgraph")
    for sg in dpus:
        print(f"{sg.name}:")
        maps = {k: sg.attr(k) or {} for k in ("reg_id_to_context_type", "reg_id_to_context_type_v2",
                                              "reg_id_to_size", "reg_id_to_parameter_value")}
        regs = sorted(set().union(*maps.values()),
                      key=lambda r: (int(m.group(1)) if (m := re.search(r"(\d+)$", r)) else 1 << 30, r))
        for r in regs:
            items = []
            if r in maps["reg_id_to_context_type"]:
                items.append(f"context_type={maps['reg_id_to_context_type'][r]}")
            if r in maps["reg_id_to_context_type_v2"]:
                items.append(f"context_type_v2={maps['reg_id_to_context_type_v2'][r]}")
            if r in maps["reg_id_to_size"]:
                items.append(f"size={maps['reg_id_to_size'][r]}")
            if r in maps["reg_id_to_parameter_value"]:
                items.append(f"parameter={bytes_summary(maps['reg_id_to_parameter_value'][r])}")
            print(f"  {r}: " + " ".join(items))


def _run(args: argparse.Namespace) -> None:
    from fixflow.backends.xmodel import XModelError, read_xmodel
    from fixflow.backends.xmodel import render

    if args.cmd == "dump_txt":
        return _dump_txt(args.xmodel, args.out)
    if args.cmd == "png":
        raise XModelError("png output needs Graphviz, which fixflow does not use; "
                          f"write an SVG instead: fixflow-xir svg {args.xmodel} out.svg")
    g = read_xmodel(args.xmodel)
    if args.cmd == "subgraph":
        print("\n".join(render.subgraph_tree(g)))
    elif args.cmd == "graph":
        print("\n".join(render.op_list(g)))
    elif args.cmd == "dump_bin":
        _dump_bin(g, args.dir)
    elif args.cmd == "dump_reg":
        _dump_reg(g)
    elif args.cmd == "svg":
        _write(args.out, render.to_svg(g))
    elif args.cmd == "dot":
        _write(args.out, render.to_dot(g))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fixflow-xir``; returns the process exit code."""
    from fixflow.ir.diagnostics import FixflowError

    try:
        args = _parser().parse_args(argv)
        _run(args)
    except _UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except FixflowError as e:
        print(e.render(), file=sys.stderr)
        return 1
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
