"""Running AMD's own tools (xir, sim_run) from the opt-in tests: FIXFLOW_AMD_TOOLS names the install."""

from __future__ import annotations

import os
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

TOOLS = os.environ.get("FIXFLOW_AMD_TOOLS")


# ---- running AMD's tools ---------------------------------------------------------------------------
def _tool(name: str) -> Path:
    path = Path(TOOLS or "") / "bin" / name
    if not path.is_file():
        pytest.fail(f"FIXFLOW_AMD_TOOLS={TOOLS}: {path} is missing "
                    "(build it with /work/shared/tools/amd-reference/build.sh)")
    return path


def run_amd(name: str, *args, cwd: Path) -> str:
    """Run AMD tool `name`; fail with its last log lines unless it exits 0. Returns stdout."""
    cmd = [str(_tool(name)), *map(str, args)]
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=900)
    out, err = (s.decode("utf-8", "replace") for s in (p.stdout, p.stderr))
    if p.returncode != 0:
        lines = (err or out).strip().splitlines()
        tail = "\n".join([ln for ln in lines if "FATAL" in ln] or lines[-6:])
        pytest.fail(f"AMD {name} {' '.join(map(str, args))} exited {p.returncode}:\n{tail}")
    return out


def _ops(path: Path):
    from fixflow.backends.xmodel import read_xmodel
    return read_xmodel(path).ops


def check_xir(path: Path, tmp: Path) -> dict[str, str]:
    """AMD's xir subgraph / dump_txt / dump_reg / svg / graph on `path`; returns their outputs."""
    ops = _ops(path)
    out = {"subgraph": run_amd("xir", "subgraph", path, cwd=tmp)}
    assert out["subgraph"].splitlines()[0] == "root"
    # dump_txt: AMD's protobuf text of the file lists our ops, in order, with our types
    txt = tmp / (path.stem + ".txt")
    run_amd("xir", "dump_txt", path, txt, cwd=tmp)
    out["dump_txt"] = txt.read_text(errors="replace")
    dumped = re.findall(r'^  op_name: "(.*)"\n  op_type: "(.*)"$', out["dump_txt"], re.M)
    assert dumped == [(o.name, o.type) for o in ops]
    out["dump_reg"] = run_amd("xir", "dump_reg", path, cwd=tmp)
    # svg: Graphviz drawing of the graph AMD built: a node per op, an edge per argument
    svg = tmp / (path.stem + ".svg")
    run_amd("xir", "svg", path, svg, cwd=tmp)
    classes = [e.get("class") for e in ET.parse(svg).getroot().iter() if e.get("class") in ("node", "edge")]
    assert classes.count("node") == len(ops)
    assert classes.count("edge") == sum(len(v) for o in ops for v in o.inputs.values())
    out["graph"] = run_amd("xir", "graph", path, cwd=tmp)
    return out
