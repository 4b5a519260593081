"""``fixflow-xir``: inspect .xmodel files (modelled on Vitis AI's ``xir`` tool)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


from .common import ArgumentParser, ToolError


class _Parser(ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ToolError(f"{message} (see fixflow-xir --help)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="fixflow-xir", description="Inspect XIR .xmodel files (the commands of AMD's xir tool).")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", required=True, parser_class=_Parser)
    c = sub.add_parser("dump_txt", help="protobuf text dump (bytes shown as size + md5 + head/tail hex)")
    c.add_argument("xmodel")
    c.add_argument("out", nargs="?", help="output file (default: stdout)")
    c = sub.add_parser("subgraph", help="indented subgraph tree")
    c.add_argument("xmodel")
    c = sub.add_parser("dump_bin", help="write <subgraph>.mc, <subgraph>.ac and <REG_n>.bin to DIR")
    c.add_argument("xmodel")
    c.add_argument("dir")
    c = sub.add_parser("dump_reg", help="register maps (reg_id_to_*) of each DPU subgraph")
    c.add_argument("xmodel")
    c = sub.add_parser("graph", help="graph attributes (--ops: the op list with types, shapes and inputs)")
    c.add_argument("xmodel")
    c.add_argument("--ops", action="store_true", help="list the ops instead")
    c = sub.add_parser("check", help="check a compiled xmodel's layout (DPU subgraph attributes, regions, tensors)")
    c.add_argument("xmodel")
    c = sub.add_parser("dot", help="write the op graph with its subgraph clusters as Graphviz dot text")
    c.add_argument("xmodel")
    c.add_argument("out", nargs="?", help="output file (default: the xmodel's path with .dot; '-': stdout)")
    for fmt in ("svg", "png"):
        c = sub.add_parser(fmt, help=f"draw the op graph as {fmt} with Graphviz's dot")
        c.add_argument("xmodel")
        c.add_argument("out", nargs="?", help=f"output file (default: the xmodel's path with .{fmt}; '-': stdout)")
        if fmt == "svg":
            c.add_argument("--no-dot", action="store_true",
                           help="use fixflow's own layered drawing instead of Graphviz")
    return p


def _file_name(name: str) -> str:
    """A subgraph name as a file name: AMD's tool uses it as is; only path separators are replaced."""
    n = name.replace("/", "_").replace("\\", "_").replace("\0", "_")
    return "_" + n if n in ("", ".", "..") else n


def _write(path: str, data: str | bytes) -> None:
    from fixflow.backends.xmodel import XModelError

    try:
        with open(path, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
    except OSError as e:
        raise XModelError(f"{path}: cannot write: {e.strerror or e}") from None


def _dump_txt(path: str, out: str | None) -> None:
    from fixflow.backends.xmodel.amd_views import dump_txt
    from fixflow.backends.xmodel.serial import parse_xmodel_bytes, read_file_bytes

    text = dump_txt(parse_xmodel_bytes(read_file_bytes(path), path))
    if out:
        _write(out, text)
    else:
        sys.stdout.write(text)


def _ac_from_mc(sg_name: str, mc: bytes) -> str:
    """Assembly text of ``mc`` (for subgraphs that store only machine code)."""
    from fixflow.backends.mc import decode, write_ac
    from fixflow.backends.xmodel import XModelError
    from fixflow.ir.diagnostics import FixflowError

    try:
        return write_ac(decode(mc, f"mc_code of subgraph {sg_name!r}"))
    except FixflowError as e:
        raise XModelError(f"subgraph {sg_name!r}: cannot write its .ac: {e.message}") from None


def _dump_bin(g, out_dir: str) -> None:
    """As ``xir dump_bin``: per subgraph (pre-order) ``.mc``, ``.ac`` and non-empty ``REG_n.bin``.
    A subgraph with ``mc_code`` but no ``ac_code`` gets its ``.ac`` by disassembling the machine code."""
    from fixflow.backends.xmodel import XModelError

    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise XModelError(f"{out_dir}: cannot create directory: {e.strerror or e}") from None
    wrote = False
    for sg in g.root_or_default().walk():
        base = os.path.join(out_dir, _file_name(sg.name))
        mc = sg.attr("mc_code") if sg.has_attr("mc_code") and sg.attrs["mc_code"].kind == "bytes" else None
        if mc is not None:
            _write(base + ".mc", mc)
            print(f"dump mc code to {base}.mc")
        if sg.has_attr("ac_code") and sg.attrs["ac_code"].kind == "string_vec":
            ac = "".join(line + "\n" for line in sg.attr("ac_code"))
        elif mc:
            ac = _ac_from_mc(sg.name, mc)
        else:
            ac = None
        if ac is not None:
            _write(base + ".ac", ac)
            print(f"dump ac code to {base}.ac")
        pv = sg.attrs.get("reg_id_to_parameter_value")
        if pv is not None and pv.kind == "map_string_2_bytes":
            for reg, blob in pv.value.items():
                if blob:
                    path = os.path.join(out_dir, _file_name(reg) + ".bin")
                    _write(path, blob)
                    print(f"dump to {path} from subgraph {sg.name}")
        wrote = wrote or mc is not None or ac is not None or bool(pv and pv.value)
    if not wrote:
        print(f"{g.name}: no mc_code, ac_code or parameters in any subgraph")


#: where Graphviz's dot is installed when it is not on PATH (GUI launchers, venvs and cron give short PATHs)
_DOT_PLACES = ("/usr/bin/dot", "/usr/local/bin/dot", "/opt/homebrew/bin/dot", "/opt/local/bin/dot",
               "/snap/bin/dot", "C:/Program Files/Graphviz/bin/dot.exe")


def find_dot() -> str | None:
    """Graphviz's `dot`: $GRAPHVIZ_DOT, then PATH, then the usual install places."""
    import shutil
    env = os.environ.get("GRAPHVIZ_DOT")
    if env and os.path.isfile(env) and os.access(env, os.X_OK):
        return env
    found = shutil.which("dot")
    if found:
        return found
    return next((p for p in _DOT_PLACES if os.path.isfile(p) and os.access(p, os.X_OK)), None)


def _graphviz(dot_text: str, fmt: str, out: str) -> None:
    import subprocess

    from fixflow.backends.xmodel import XModelError

    to_stdout = out == "-"
    if not to_stdout:
        _write(out, b"")  # a bad output path is reported like every other write
    exe = find_dot()
    if exe is None:
        if not to_stdout:
            os.remove(out)
        raise XModelError(f"{fmt} output needs Graphviz's 'dot' command, which is not installed "
                          "(Debian/Ubuntu: apt-get install graphviz; or set GRAPHVIZ_DOT to its path); without it, "
                          "fixflow-xir svg --no-dot X out.svg draws an SVG, fixflow-xir dot X out.dot writes the text")
    r = subprocess.run([exe, f"-T{fmt}"] + ([] if to_stdout else ["-o", out]), input=dot_text.encode(),
                       capture_output=True)
    if r.returncode != 0:
        msg = [line for line in r.stderr.decode(errors="replace").strip().splitlines() if line.strip()]
        text = " ".join(msg)
        hint = ""
        if "not recognized" in text or "No formats found" in text:
            hint = (f" (this Graphviz cannot write {fmt}: run 'dot -c' as root to register its plugins, or install "
                    "the full graphviz package)")
        raise XModelError(f"{out}: Graphviz dot ({exe}) failed: {msg[0] if msg else f'exit {r.returncode}'}{hint}")
    if to_stdout:
        sys.stdout.buffer.write(r.stdout)
        sys.stdout.buffer.flush()


def _write_or_print(out: str, text: str) -> None:
    if out == "-":
        sys.stdout.write(text)
    else:
        _write(out, text)


def _check(path: str) -> None:
    from fixflow.backends.xmodel.compiled import read_compiled

    m = read_compiled(path)
    print(f"{path}: a compiled xmodel with {len(m.subgraphs)} subgraphs "
          f"({', '.join(f'{s.name} {s.device}' for s in m.subgraphs)})")
    for d in m.dpu_subgraphs:
        regs = ", ".join(f"{r.name} {r.context_type_v2} {r.size} B" for r in d.regions)
        print(f"  {d.name}: {d.dpu_name} (fingerprint {d.target.fingerprint_hex}), mc_code {len(d.mc_code)} bytes, "
              f"{len(d.children)} children, regions {regs}")


def _run(args: argparse.Namespace) -> None:
    from fixflow.backends.xmodel import read_xmodel
    from fixflow.backends.xmodel import amd_views, render

    if args.cmd == "dump_txt":
        return _dump_txt(args.xmodel, args.out)
    if args.cmd == "check":
        return _check(args.xmodel)
    g = read_xmodel(args.xmodel)
    if args.cmd == "subgraph":
        print("\n".join(amd_views.subgraph_tree(g)))
    elif args.cmd == "graph":
        lines = render.op_list(g) if args.ops else amd_views.graph_attrs(g)
        if lines:
            print("\n".join(lines))
    elif args.cmd == "dump_bin":
        _dump_bin(g, args.dir)
    elif args.cmd == "dump_reg":
        text = "\n".join(amd_views.dump_reg(g))
        print(text if text else f"{g.name}: no DPU subgraph")
    elif args.cmd in ("dot", "svg", "png"):
        out = args.out or os.path.splitext(args.xmodel)[0] + "." + args.cmd   # next to the xmodel
        if args.cmd == "dot":
            _write_or_print(out, amd_views.to_dot(g))
        elif args.cmd == "svg" and args.no_dot:
            _write_or_print(out, render.to_svg(g))
        else:
            _graphviz(amd_views.to_dot(g), args.cmd, out)
        if out != "-" and not args.out:
            print(f"{args.xmodel}: wrote {out}")


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        _run(args)
    except BrokenPipeError:   # `fixflow-xir ... | head`
        return 0
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fixflow-xir``; returns the process exit code. Errors go through the tools' shared
    path (`run_tool`): one `error: ...` line, exit code 1, never a traceback."""
    from .common import run_tool

    return run_tool(lambda: _main(argv))


if __name__ == "__main__":
    sys.exit(main())
