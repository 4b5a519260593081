"""The output folder of a compile, as ``vai_c_xir --output_dir DIR --net_name NAME`` leaves it.

``DIR/NAME.xmodel`` (the compiled graph), ``DIR/meta.json`` (read by VART's runner factory:
``lib``, ``filename``, ``kernel`` = the DPU subgraph names, ``target``) and ``DIR/md5sum.txt``
(the md5 of the xmodel as 32 lower-case hex digits and a newline).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .compiled import CompiledModel, CompiledModelError, read_compiled_bytes, write_compiled
from .serial import read_file_bytes

META_LIB = "libvart-dpu-runner.so"


@dataclass(frozen=True)
class CompilerOutputs:
    """The three files of a compile."""

    xmodel: Path
    meta_json: Path
    md5sum_txt: Path


def meta_json(m: CompiledModel, net_name: str) -> dict[str, Any]:
    """The ``meta.json`` object of ``m`` written as ``<net_name>.xmodel``."""
    dpus = m.dpu_subgraphs
    if not dpus:
        raise CompiledModelError(f"graph {m.name!r} has no DPU subgraph; meta.json names the DPU kernels")
    names = {d.dpu_name for d in dpus}
    if len(names) != 1:
        raise CompiledModelError(f"graph {m.name!r}: DPU subgraphs for different targets {sorted(names)}")
    return {"lib": META_LIB, "filename": f"{net_name}.xmodel", "kernel": [d.name for d in dpus],
            "target": names.pop()}


def write_compiler_outputs(m: CompiledModel, output_dir: str | os.PathLike[str], net_name: str,
                           origin: str = "fixflow") -> CompilerOutputs:
    """Write ``NAME.xmodel``, ``meta.json`` and ``md5sum.txt`` into ``output_dir`` (created if needed)."""
    if not net_name or any(c in net_name for c in "/\\\0"):
        raise CompiledModelError(f"net name {net_name!r} must be a non-empty file name without '/'")
    out = Path(output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CompiledModelError(f"{out}: cannot create output directory: {e.strerror or e}") from None
    meta = meta_json(m, net_name)
    paths = CompilerOutputs(out / f"{net_name}.xmodel", out / "meta.json", out / "md5sum.txt")
    data = write_compiled(m, paths.xmodel, origin)
    _write_text(paths.meta_json, json.dumps(meta, indent=4) + "\n")
    _write_text(paths.md5sum_txt, hashlib.md5(data).hexdigest() + "\n")
    return paths


def _write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise CompiledModelError(f"{path}: cannot write: {e.strerror or e}") from None


def read_compiler_outputs(output_dir: str | os.PathLike[str]) -> tuple[CompiledModel, dict[str, Any]]:
    """Read a compile's folder back: checks meta.json against the xmodel and md5sum.txt."""
    out = Path(output_dir)
    meta_path = out / "meta.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except OSError as e:
        raise CompiledModelError(f"{meta_path}: cannot read: {e.strerror or e}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CompiledModelError(f"{meta_path}: not valid JSON: {e}") from None
    if not isinstance(meta, dict):
        raise CompiledModelError(f"{meta_path}: expected a JSON object")
    for k in ("lib", "filename", "kernel", "target"):
        if k not in meta:
            raise CompiledModelError(f"{meta_path}: lacks key {k!r}")
    kernel = meta["kernel"]
    if isinstance(kernel, str):
        kernel = [kernel]
    if not isinstance(meta["filename"], str) or not isinstance(kernel, list) or \
            not all(isinstance(k, str) for k in kernel) or not isinstance(meta["target"], str):
        raise CompiledModelError(f"{meta_path}: 'filename' and 'target' must be strings, "
                                 "'kernel' a string or a list of strings")
    xpath = out / meta["filename"]
    data = read_file_bytes(xpath)
    md5_path = out / "md5sum.txt"
    if md5_path.exists():
        want = md5_path.read_text(encoding="utf-8", errors="replace").split()
        if not want or want[0].lower() != hashlib.md5(data).hexdigest():
            raise CompiledModelError(f"{md5_path}: does not match the md5 of {xpath}")
    m = read_compiled_bytes(data, os.fspath(xpath))
    dpu_names = [d.name for d in m.dpu_subgraphs]
    if kernel != dpu_names:
        raise CompiledModelError(f"{meta_path}: 'kernel' is {kernel}, but {xpath} has DPU subgraphs {dpu_names}")
    if any(d.dpu_name != meta["target"] for d in m.dpu_subgraphs):
        raise CompiledModelError(f"{meta_path}: 'target' {meta['target']!r} differs from the xmodel's dpu_name")
    return m, meta
