"""The Quantizer: vai_q_pytorch's `torch_quantizer` flow on fixflow's passes.

    q = Quantizer(model, (x,), mode="calib", output_dir="build/quant_model")
    for x, _ in loader: q.quant_model(x)          # calibrates on each batch
    q.export_quant_config()                        # quant_info.json + bias_corr.npz
    q = Quantizer(model, (x,), mode="test", output_dir="build/quant_model")
    y = q.quant_model(x)                           # fix-dialect float simulation (== integer execution)
    q.export_xmodel()                              # <Model>_int.xmodel
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .. import __version__
from ..dialects.graph import ConstantOp
from ..ir.attributes import ArrayAttr, BoolAttr, DenseResourceElementsAttr
from ..ir.core import Operation, Value
from ..ir.interpreter import find_function, run_function
from ..ir.location import NameLoc
from ..ir.passes import PassManager, parse_pipeline
from ..passes.fix.annotations import conv_like_ops, fix_attr, quant_points, read_fix_attr
from ..passes.fix.calibrate import FakeQuantRunner
from ..passes.fix.legalize import legalize_fix
from .config import QuantConfig, load_config
from .errors import QuantizerError

__all__ = ["Quantizer", "QuantModel", "param_name", "node_name", "graph_md5"]

MODES = ("float", "calib", "test")
QUANT_INFO = "quant_info.json"
BIAS_CORR = "bias_corr.npz"
_SUFFIX = re.compile(r"(_bnfold|_cle|_biascorr)\d*$")


def param_name(key: str) -> str:
    """A weight's resource key without fixflow's rewrite suffixes (`x.weight_bnfold_cle` -> `x.weight`)."""
    prev = None
    while prev != key:
        prev, key = key, _SUFFIX.sub("", key)
    return key


def node_name(op: Operation) -> str:
    """The op's node name: its module path (NameLoc) or result name."""
    loc = op.location
    if isinstance(loc, NameLoc):
        return loc.name
    hint = op.results[0].name_hint if op.results else None
    return hint or op.name


def graph_md5(func: Operation) -> str:
    """md5 of the traced graph's structure: op kinds, node names, operands, shapes, attributes (not weights)."""
    names: dict[Value, str] = {a: f"arg{i}" for i, a in enumerate(func.regions[0].blocks[0].args)}
    lines = []
    for i, op in enumerate(func.regions[0].blocks[0].ops):
        for r in op.results:
            names[r] = f"{node_name(op)}#{i}"
        attrs = "" if op.name == "graph.constant" else ",".join(
            f"{k}={v.text()}" for k, v in sorted(op.attributes.items()) if not k.startswith("fix."))
        ins = ",".join(names.get(v, "?") for v in op.operands)
        outs = ",".join(str(r.type) for r in op.results)
        lines.append(f"{op.name}|{node_name(op)}|{ins}|{outs}|{attrs}")
    return hashlib.md5("\n".join(lines).encode()).hexdigest()


def _to_numpy(x: Any) -> np.ndarray:
    try:
        if hasattr(x, "detach"):
            return x.detach().cpu().numpy().astype(np.float32, copy=False)
        return np.asarray(x, dtype=np.float32)
    except (ValueError, TypeError) as e:
        raise QuantizerError(f"quant_model(): inputs must be torch tensors or numeric arrays, got "
                             f"{type(x).__name__} ({e})") from None


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise QuantizerError(f"cannot create output directory '{path}': {e.strerror or e}") from None


class QuantModel:
    """The callable model of a Quantizer: torch tensors (or numpy arrays) in, the same kind out."""

    def __init__(self, fn: Callable[[list[np.ndarray]], list[np.ndarray]], mode: str):
        self._fn = fn
        self.mode = mode

    def __call__(self, *inputs: Any) -> Any:
        as_torch = any(hasattr(x, "detach") for x in inputs)
        outs = self._fn([_to_numpy(x) for x in inputs])
        if as_torch:
            import torch
            outs = [torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)) for y in outs]
        return outs[0] if len(outs) == 1 else tuple(outs)

    forward = __call__


class Quantizer:
    """Post-training quantization of a PyTorch model for the DPU (float | calib | test modes).

    `config` is None, a JSON file or a dict with vai_q_pytorch's keys (see `fixflow.quantizer.config`).
    `log` receives the progress lines (default: print to stdout; pass `None` for silence).
    The graph is prepared by a pass pipeline (`preparation_pipeline()`: fold-bn, remove-dropout,
    relu6-to-relu, equalize, ensure-biases as the config asks), verified after every pass;
    `print_ir_after_all=True` prints the IR after each of its passes to stderr (as fixflow-opt's flag).
    """

    def __init__(self, model: Any, example_inputs: Any, mode: str = "float", output_dir: str | os.PathLike = "quantize_result",
                 config: None | str | os.PathLike | Mapping[str, Any] = None, bitwidth: int = 8, target: str | None = None,
                 *, log: Callable[[str], None] | None = print, progress: bool = True,
                 print_ir_after_all: bool = False):
        if mode not in MODES:
            raise QuantizerError(f"unknown quant mode {mode!r} (expected one of: {', '.join(MODES)})")
        if target is not None and "DPUCZDX8G" not in str(target).upper():
            raise QuantizerError(f"target {target!r} is not supported (fixflow targets DPUCZDX8G_ISA1_B4096)")
        self.mode = mode
        self.output_dir = Path(output_dir)
        self.config: QuantConfig = load_config(config, bitwidth)
        self._log = log or (lambda s: None)
        self.progress = progress
        if not isinstance(example_inputs, (tuple, list)):
            example_inputs = (example_inputs,)
        self.name = type(model).__name__
        self._log(f"[fixflow] Parsing {self.name}...")
        from ..frontends.torch import import_module
        self.module = import_module(model, tuple(example_inputs), name=self.name)
        self.func = find_function(self.module)
        self.graph_md5 = graph_md5(self.func)
        self._report_cpu_ops()
        self._prepare_graph(print_ir_after_all)
        self.runner: FakeQuantRunner | None = None
        self.fix_module: Operation | None = None
        if mode == "float":
            self.quant_model = QuantModel(lambda xs: run_function(self.func, xs), mode)
        elif mode == "calib":
            from ..ir.diagnostics import capture_diagnostics
            with capture_diagnostics() as diags:
                self.runner = FakeQuantRunner(self.module, bit_width=self.config.bit_width,
                                              method=self.config.method,
                                              bias_correction=self.config.include_bias_corr)
            for d in diags:
                self._log(f"[fixflow] {d.render()}")
            self._pbar = None
            self.quant_model = QuantModel(self._calib_step, mode)
            self._generate_source()
        else:
            self._load_quant_info()
            self._lower()
            from ..runtime.fix_executor import simulate_quantized
            self.quant_model = QuantModel(lambda xs: simulate_quantized(self.fix_module, xs), mode)
            self._generate_source()

    # ---- graph preparation (all modes: the same deterministic graph)
    def preparation_pipeline(self) -> str:
        """The pass pipeline that prepares the float graph (the same in every mode)."""
        passes = ["fold-bn", "remove-dropout"]
        if self.config.convert_relu6_to_relu:
            passes.append("relu6-to-relu")
        if self.config.include_cle:
            passes.append("equalize")
        passes.append("ensure-biases")
        return "builtin.module(" + ",".join(passes) + ")"

    def _prepare_graph(self, print_ir_after_all: bool) -> None:
        if self.config.include_cle:
            self._log("[fixflow] Doing weights equalization...")
        PassManager(parse_pipeline(self.preparation_pipeline()), print_after_all=print_ir_after_all).run(self.module)

    def _points(self) -> dict[str, Operation]:
        out = {}
        for v in quant_points(self.func):
            out[f"{self.name}::{node_name(v.op)}"] = v.op
        return out

    # ---- calib
    def _calib_step(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        if self.progress and self._pbar is None:
            from tqdm import tqdm
            self._pbar = tqdm(desc="Calibrating", unit="batch", leave=False, file=sys.stderr)
        try:
            out = self.runner.step(xs)
        except BaseException:
            if self._pbar is not None:
                self._pbar.close()
                self._pbar = None
            raise
        if self._pbar is not None:
            self._pbar.update(1)
        return out

    def export_quant_config(self) -> Path:
        """Calib mode: write quant_info.json (and bias_corr.npz) to output_dir; returns the json path."""
        if self.mode != "calib":
            raise QuantizerError(f"export_quant_config() needs mode='calib' (this quantizer is in {self.mode!r} mode)")
        if self.runner.batches == 0:
            raise QuantizerError("export_quant_config(): no calibration batch was run; call quant_model(x) on "
                                 "calibration data first")
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self._log("[fixflow] Exporting quant config")
        corrections = {}
        for op in conv_like_ops(self.func):
            st = self.runner.bc.get(op)
            if st is not None and np.any(st.correction):
                corrections[f"{self.name}::{param_name(op.bias.op.attributes['value'].key)}"] = \
                    st.correction.astype(np.float32)
        self.runner.write_annotations()
        from ..ir.diagnostics import capture_diagnostics
        with capture_diagnostics() as diags:
            legalize_fix(self.module)
        for d in diags:
            self._log(f"[fixflow] {d.render()}")
        info = self._quant_info(bool(corrections))
        _mkdir(self.output_dir)
        path = self.output_dir / QUANT_INFO
        path.write_text(json.dumps(info, indent=2) + "\n")
        bc_path = self.output_dir / BIAS_CORR
        if corrections:
            np.savez(bc_path, **corrections)
        elif bc_path.exists():
            bc_path.unlink()
        self._log(f"[fixflow] Quant config exported.({path})")
        return path

    def _quant_info(self, bias_corrected: bool) -> dict[str, Any]:
        param: dict[str, list[list[int]]] = {}
        for op in conv_like_ops(self.func):
            for role, attr in (("weight", "fix.weight"), ("bias", "fix.bias")):
                key = getattr(op, role).op.attributes["value"]
                k = param_name(key.key) if isinstance(key, DenseResourceElementsAttr) else f"{node_name(op)}.{role}"
                param[f"{self.name}::{k}"] = [list(read_fix_attr(op, attr))]
        output = {name: [list(read_fix_attr(op, "fix.out"))] for name, op in self._points().items()}
        args = self.func.regions[0].blocks[0].args
        inputs = {f"{self.name}::{a.name_hint or f'input_{i}'}": [[int(x) for x in self.func.attributes["fix.inputs"][i]]]
                  for i, a in enumerate(args)}
        return {"param": param, "output": output, "input": inputs, "fast_finetuned": False,
                "bias_corrected": bias_corrected, "version": f"fixflow {__version__}", "graph_md5": self.graph_md5,
                "fixflow_graph_options": self._graph_options()}

    def _graph_options(self) -> dict[str, bool]:
        """The config keys that change the prepared graph (so calib and test must agree on them)."""
        return {"include_cle": self.config.include_cle, "convert_relu6_to_relu": self.config.convert_relu6_to_relu}

    # ---- test
    def _load_quant_info(self) -> None:
        path = self.output_dir / QUANT_INFO
        if not path.exists():
            raise QuantizerError(f"{path} not found: run the quantizer in 'calib' mode and export_quant_config() first")
        try:
            info = json.loads(path.read_text())
            param, output, inputs = info["param"], info["output"], info["input"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise QuantizerError(f"{path}: not a valid quant_info.json ({type(e).__name__}: {e})") from None
        points = self._points()
        for name in output:
            if name not in points:
                raise QuantizerError(f"{path}: node '{name}' is not in this model's graph (the quant config was "
                                     "exported for a different model)")
        for name in points:
            if name not in output:
                raise QuantizerError(f"{path}: the model's node '{name}' has no entry in the quant config (it was "
                                     "exported for a different model)")
        if info.get("graph_md5") != self.graph_md5:
            raise QuantizerError(f"{path}: graph_md5 {info.get('graph_md5')} does not match this model's graph "
                                 f"({self.graph_md5}); re-run calibration")
        opts = info.get("fixflow_graph_options")
        if isinstance(opts, dict):
            for k, v in self._graph_options().items():
                if k in opts and opts[k] != v:
                    raise QuantizerError(f"{path}: calibrated with '{k}' = {json.dumps(opts[k])}, but this quantizer "
                                         f"has '{k}' = {json.dumps(v)}; use the same config in calib and test modes")
        corr = {}
        bc_path = self.output_dir / BIAS_CORR
        if info.get("bias_corrected"):
            if not bc_path.exists():
                raise QuantizerError(f"{path} says bias_corrected but {bc_path} is missing")
            with np.load(bc_path) as z:
                corr = {k: z[k] for k in z.files}
        for op in conv_like_ops(self.func):
            for role, attr in (("weight", "fix.weight"), ("bias", "fix.bias")):
                k = f"{self.name}::{param_name(getattr(op, role).op.attributes['value'].key)}"
                if k not in param:
                    raise QuantizerError(f"{path}: parameter '{k}' is missing from the quant config")
                op.attributes[attr] = fix_attr(*param[k][0][:2])
            bk = f"{self.name}::{param_name(op.bias.op.attributes['value'].key)}"
            if bk in corr:
                self._apply_correction(op, corr.pop(bk))
        if corr:
            raise QuantizerError(f"{bc_path}: bias correction for unknown parameter '{next(iter(corr))}'")
        for name, op in points.items():
            op.attributes["fix.out"] = fix_attr(*output[name][0])
        args = self.func.regions[0].blocks[0].args
        ins = []
        for i, a in enumerate(args):
            k = f"{self.name}::{a.name_hint or f'input_{i}'}"
            if k not in inputs:
                raise QuantizerError(f"{path}: input '{k}' is missing from the quant config")
            ins.append(fix_attr(*inputs[k][0]))
        self.func.attributes["fix.inputs"] = ArrayAttr(ins)
        self.module.attributes["fix.bias_corrected"] = BoolAttr(bool(info.get("bias_corrected")))

    def _apply_correction(self, op: Operation, c: np.ndarray) -> None:
        old = op.bias.op
        b = np.asarray(old.attributes["value"].array, np.float32)
        if c.shape != b.shape:
            raise QuantizerError(f"bias correction of '{node_name(op)}' has shape {c.shape}, the bias {b.shape}")
        new = ConstantOp.from_array(b - c, old.attributes["value"].key + "_biascorr", old.location)
        op.parent.insert_before(op, new)
        op.set_operand(2, new.result)
        if not old.results[0].uses:
            old.erase()

    def _report_cpu_ops(self) -> None:
        """Say up front which ops will stay on the CPU (the lowering repeats it with the final decision)."""
        from ..ir.diagnostics import format_diagnostic
        from ..passes.fix.quantize import CPU_ONLY
        for op in self.func.walk():
            reason = CPU_ONLY.get(op.name)
            if reason is not None:
                self._log("[fixflow] " + format_diagnostic(
                    "note", f"'{op.name}' will stay on the CPU: {reason}", op.location).splitlines()[0])

    def _lower(self) -> None:
        from ..passes.fix.quantize import quantize_module
        from ..ir.diagnostics import capture_diagnostics
        self.fix_module = self.module.clone()
        with capture_diagnostics() as diags:
            quantize_module(self.fix_module)
        for d in diags:
            self._log(f"[fixflow] {d.render()}")

    def export_xmodel(self, output_dir: str | os.PathLike | None = None, deploy_check: bool = False) -> Path:
        """Test mode: write `<Model>_int.xmodel` (to output_dir, default the quantizer's)."""
        if self.mode != "test":
            raise QuantizerError(f"export_xmodel() needs mode='test' (this quantizer is in {self.mode!r} mode)")
        from ..backends.xmodel.fix_xmodel import write_int_xmodel
        out = Path(output_dir) if output_dir is not None else self.output_dir
        _mkdir(out)
        path = out / f"{self.name}_int.xmodel"
        write_int_xmodel(self.fix_module, path, self.name)
        if deploy_check:
            from ..backends.xmodel.fix_xmodel import read_int_xmodel
            read_int_xmodel(path)
        self._log(f"[fixflow] Successfully convert '{self.name}' to xmodel.({path})")
        return path

    # ---- generated source
    def _generate_source(self) -> None:
        from .codegen import write_quant_module
        _mkdir(self.output_dir)
        path = write_quant_module(self.module, self.name, self.output_dir)
        self._log(f"[fixflow] Quantizable module is generated.({path})")
