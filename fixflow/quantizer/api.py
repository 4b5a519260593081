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
from ..ir.opdef import Terminator
from ..ir.passes import PassManager, parse_pipeline
from ..passes.fix.annotations import conv_like_ops, fix_attr, quant_points, read_fix_attr
from ..passes.fix.calibrate import FakeQuantRunner
from ..passes.fix.legalize import legalize_fix
from .config import QuantConfig, load_config
from .errors import QuantizerError

__all__ = ["Quantizer", "QuantModel", "param_name", "node_name", "call_site_names", "graph_md5"]

MODES = ("float", "calib", "test")
QUANT_INFO = "quant_info.json"
BIAS_CORR = "bias_corr.npz"
_SUFFIX = re.compile(r"(_bnfold|_cle|_biascorr|_ft)\d*$")


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


def call_site_names(func: Operation) -> dict[Operation, str]:
    """A unique node name per op of the function body (constants and the return excluded).

    An op keeps its `node_name` when no other op has it; a module called several times (a
    torchvision block's `self.relu`, one conv applied to two inputs) or a torch call lowered to several
    ops gives one name per call site: `<name>#1`, `<name>#2`, ... in program order.
    """
    from collections import Counter

    ops = [op for op in func.regions[0].blocks[0].ops
           if not isinstance(op, ConstantOp) and Terminator not in op.TRAITS]
    counts = Counter(node_name(op) for op in ops)
    taken = {n for n, c in counts.items() if c == 1}
    seen: Counter[str] = Counter()
    out = {}
    for op in ops:
        name = base = node_name(op)
        if counts[base] > 1:
            while name == base or name in taken:
                seen[base] += 1
                name = f"{base}#{seen[base]}"
            taken.add(name)
        out[op] = name
    return out


def param_keys(func: Operation, model: str) -> dict[tuple[Operation, str], str]:
    """The quant_info.json / bias_corr.npz key of each conv-like op's `weight` and `bias`.

    A parameter used by one call site is named after it (`Model::layer1.0.conv1.weight`, fixflow's
    rewrite suffixes dropped); a parameter shared by several call sites (one conv applied to two
    inputs) gets one key per call site (`Model::c#2.weight`), since equalization and bias correction
    give each call site its own values.
    """
    from collections import Counter

    sites = call_site_names(func)
    base: dict[tuple[Operation, str], str | None] = {}
    for op in conv_like_ops(func):
        for role in ("weight", "bias"):
            v = getattr(op, role)
            attr = v.op.attributes.get("value") if v is not None and isinstance(v.op, ConstantOp) else None
            base[(op, role)] = param_name(attr.key) if isinstance(attr, DenseResourceElementsAttr) else None
    counts = Counter(b for b in base.values() if b is not None)
    return {(op, role): f"{model}::{b}" if b is not None and counts[b] == 1 else f"{model}::{sites[op]}.{role}"
            for (op, role), b in base.items()}


def _batchless(t: Any, batch: int | None) -> str:
    """A feature map's type with its leading (batch) dimension written `N` (calibration and test may use
    different batch sizes, as vai_q_pytorch's deploy step does with batch 1)."""
    shape = getattr(t, "shape", None)
    if batch is None or not shape or shape[0] != batch:
        return str(t)
    return f"N x {', '.join(map(str, shape[1:]))} x {getattr(t, 'element_type', '')}"


def graph_md5(func: Operation) -> str:
    """md5 of the traced graph's structure: op kinds, node names, operands, shapes (batch dimension
    excluded), attributes (not weights)."""
    args = func.regions[0].blocks[0].args
    names: dict[Value, str] = {a: f"arg{i}" for i, a in enumerate(args)}
    batch = args[0].type.shape[0] if args and getattr(args[0].type, "shape", None) else None
    lines = []
    for i, op in enumerate(func.regions[0].blocks[0].ops):
        for r in op.results:
            names[r] = f"{node_name(op)}#{i}"
        attrs = "" if op.name == "graph.constant" else ",".join(
            f"{k}={v.text()}" for k, v in sorted(op.attributes.items()) if not k.startswith("fix."))
        ins = ",".join(names.get(v, "?") for v in op.operands)
        outs = ",".join(str(r.type) if op.name == "graph.constant" else _batchless(r.type, batch) for r in op.results)
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


def _float_layers_entry(q: "Quantizer") -> dict[str, Any]:
    from .bitwidths import float_layers
    fl = float_layers(q.func, q.name, call_site_names(q.func))
    return {"float_layers": fl} if fl else {}


def __getattr__(name: str) -> Any:
    if name == "QuantModel":   # a torch.nn.Module: loaded with torch, on first use
        from .torch_module import QuantModel
        return QuantModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
                 print_ir_after_all: bool = False, device: Any = None):
        from .torch_module import QuantModel, check_device
        if mode not in MODES:
            raise QuantizerError(f"unknown quant mode {mode!r} (expected one of: {', '.join(MODES)})")
        if target is not None and "DPUCZDX8G" not in str(target).upper():
            raise QuantizerError(f"target {target!r} is not supported (fixflow targets DPUCZDX8G_ISA1_B4096)")
        self.mode = mode
        self.output_dir = Path(output_dir)
        self.config: QuantConfig = load_config(config, bitwidth)
        self._log = log or (lambda s: None)
        self.progress = progress
        self.device = check_device(device, log)   # the CPU (a CUDA device is mapped to it, with a warning)
        if not isinstance(example_inputs, (tuple, list)):
            example_inputs = (example_inputs,)
        graph_ir = isinstance(model, Operation)   # graph-dialect IR (a DSL network, fixflow-translate's output)
        self.name = find_function(model).sym_name if graph_ir else type(model).__name__
        self._module_types = ({n: type(m).__name__ for n, m in model.named_modules() if n}
                              if hasattr(model, "named_modules") else {})   # for vai_q-style names
        self._log(f"[fixflow] Parsing {self.name}...")
        if graph_ir:
            self.module = model.clone()   # prepared in place below: the caller's module stays as it was
        else:
            from ..frontends.torch import import_module
            self.module = import_module(model, tuple(example_inputs), name=self.name)
        self.func = find_function(self.module)
        self.graph_md5 = graph_md5(self.func)
        from .input_checks import InputChecker, read_input_stats
        self._example_tensors = tuple(example_inputs)            # for export_torch_script's trace
        self._inputs = InputChecker(self.func, [_to_numpy(x) for x in example_inputs], log)  # issue 14 item 2
        self._saved_input_stats = read_input_stats(self.output_dir) if mode == "test" else None
        self._report_cpu_ops()
        self._prepare_graph(print_ir_after_all)
        from .bitwidths import apply_bit_config
        self.bit_widths = apply_bit_config(self)   # per-tensor bit widths, layers left in float (bitwidths.py)
        self.runner: FakeQuantRunner | None = None
        self.fix_module: Operation | None = None
        self._ft = None                    # calib: the fast-finetune result (fast_finetune.py)
        self._ft_expected = self._ft_loaded = False   # test: quant_info says fast_finetuned / params loaded
        if mode == "float":
            self.quant_model = QuantModel(lambda xs: run_function(self.func, xs), mode, self._param_arrays(), log)
        elif mode == "calib":
            from ..ir.diagnostics import capture_diagnostics
            with capture_diagnostics() as diags:
                self.runner = FakeQuantRunner(self.module, bit_width=self.config.bit_width, bit_widths=self.bit_widths,
                                              method=self.config.method,
                                              bias_correction=self.config.include_bias_corr)
            for d in diags:
                self._log(f"[fixflow] {d.render()}")
            self._pbar = None
            self.quant_model = QuantModel(self._calib_step, mode, self._param_arrays(), log)
            _mkdir(self.output_dir)          # a bad output directory is reported now, not after calibration
        else:
            self._load_quant_info()
            self._lower()
            self.quant_model = QuantModel(self._test_step, mode, self._param_arrays(), log)
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
        names = call_site_names(self.func)
        return {f"{self.name}::{names[v.op]}": v.op for v in quant_points(self.func)}

    # ---- calib
    def _calib_step(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        self._inputs.calib_batch(xs)
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
        # (a fast finetune froze the calibration earlier)
        corrections = self._freeze_calibration() if self._ft is None else dict(self._ft.corrections)
        info = self._quant_info(bool(corrections))
        info["fast_finetuned"] = self._ft is not None
        _mkdir(self.output_dir)
        path = self.output_dir / QUANT_INFO
        path.write_text(json.dumps(info, indent=2) + "\n")
        self._inputs.save(self.output_dir)
        bc_path = self.output_dir / BIAS_CORR
        if corrections:
            np.savez(bc_path, **corrections)
        elif bc_path.exists():
            bc_path.unlink()
        from .fast_finetune import write_ft_params
        ft_path = write_ft_params(self)
        if ft_path is not None:
            self._log(f"[fixflow] Finetuned parameters exported.({ft_path})")
        self._log(f"[fixflow] Quant config exported.({path})")
        return path

    # ---- fast finetune (fast_finetune.py)
    def fast_finetune(self, run_fn: Callable[..., Any], run_args: Any = (), **options: Any) -> Any:
        """Calib mode: AdaQuant, layer by layer, on the batches `run_fn(*run_args)` feeds to `quant_model`
        (they calibrate first when no batch was run yet). Options: epochs, batch_size, lr, seed, progress.
        Returns a `FastFinetuneReport`; export_quant_config() then writes fast_finetune.npz."""
        from .fast_finetune import fast_finetune
        return fast_finetune(self, run_fn, run_args, **options)

    def load_ft_param(self) -> None:
        """Test mode: use the finetuned parameters (test mode loads them already when quant_info.json says
        fast_finetuned; this checks they are there)."""
        from .fast_finetune import load_ft_param
        load_ft_param(self)

    def _freeze_calibration(self) -> dict[str, np.ndarray]:
        """Write the calibrated fix positions into the graph and legalize them (notes go to the log);
        returns the bias corrections by parameter key."""
        keys = param_keys(self.func, self.name)
        corrections = {}
        for op in conv_like_ops(self.func):
            st = self.runner.bc.get(op)
            if st is not None and np.any(st.correction):
                corrections[keys[(op, "bias")]] = st.correction.astype(np.float32)
        self.runner.write_annotations()
        from ..ir.diagnostics import capture_diagnostics
        with capture_diagnostics() as diags:
            legalize_fix(self.module)
        for d in diags:
            self._log(f"[fixflow] {d.render()}")
        return corrections

    def _quant_info(self, bias_corrected: bool) -> dict[str, Any]:
        param: dict[str, list[list[int]]] = {}
        keys = param_keys(self.func, self.name)
        for op in conv_like_ops(self.func):
            for role, attr in (("weight", "fix.weight"), ("bias", "fix.bias")):
                param[keys[(op, role)]] = [list(read_fix_attr(op, attr))]
        output = {name: [list(read_fix_attr(op, "fix.out"))] for name, op in self._points().items()}
        args = self.func.regions[0].blocks[0].args
        inputs = {f"{self.name}::{a.name_hint or f'input_{i}'}": [[int(x) for x in self.func.attributes["fix.inputs"][i]]]
                  for i, a in enumerate(args)}
        return {"param": param, "output": output, "input": inputs, "fast_finetuned": False,
                "bias_corrected": bias_corrected, "version": f"fixflow {__version__}", "graph_md5": self.graph_md5,
                "fixflow_graph_options": self._graph_options(), **_float_layers_entry(self)}

    def _graph_options(self) -> dict[str, bool]:
        """The config keys that change the prepared graph (so calib and test must agree on them)."""
        return {"include_cle": self.config.include_cle, "convert_relu6_to_relu": self.config.convert_relu6_to_relu}

    # ---- test
    def _load_quant_info(self) -> None:
        """Read quant_info.json (+ bias_corr.npz), validated against their schema and this graph, and
        annotate the graph with them."""
        from .quant_files import check_sections, read_bias_corr, read_quant_info
        path = self.output_dir / QUANT_INFO
        if not path.exists():
            raise QuantizerError(f"{path} not found: run the quantizer in 'calib' mode and export_quant_config() first")
        info = read_quant_info(path, self.config.bit_width)
        from .input_checks import shape_mismatch
        why = shape_mismatch(self._saved_input_stats, self._inputs.example_shapes)
        if why is not None and info.graph_md5 != self.graph_md5:
            raise QuantizerError(f"{path}: {why}")
        self._ft_expected = info.fast_finetuned
        for k, v in self._graph_options().items():
            if k in info.graph_options and info.graph_options[k] != v:
                raise QuantizerError(f"{path}: calibrated with '{k}' = {json.dumps(info.graph_options[k])}, but this "
                                     f"quantizer has '{k}' = {json.dumps(v)}; use the same config in calib and test "
                                     "modes")
        points = self._points()
        keys = param_keys(self.func, self.name)
        params = {k: op for (op, _), k in keys.items()}
        args = self.func.regions[0].blocks[0].args
        in_names = [f"{self.name}::{a.name_hint or f'input_{i}'}" for i, a in enumerate(args)]
        from .bitwidths import check_quant_info_bits
        check_quant_info_bits(self, info)
        check_sections(info, "output", points, "node")
        if info.graph_md5 != self.graph_md5:
            raise QuantizerError(f"{path}: graph_md5 {info.graph_md5} does not match this model's graph "
                                 f"({self.graph_md5}); re-run calibration")
        check_sections(info, "param", params, "parameter")
        check_sections(info, "input", dict.fromkeys(in_names), "input")
        corr = {}
        if info.bias_corrected:
            biases = {keys[(op, "bias")]: (np.asarray(op.bias.op.attributes["value"].array, np.float32),
                                           info.param[keys[(op, "bias")]]) for op in conv_like_ops(self.func)}
            corr = read_bias_corr(self.output_dir / BIAS_CORR, biases)
        used = {op.attributes["value"].key for op in self.func.walk()
                if isinstance(op, ConstantOp) and isinstance(op.attributes["value"], DenseResourceElementsAttr)}
        for op in conv_like_ops(self.func):
            for role, attr in (("weight", "fix.weight"), ("bias", "fix.bias")):
                op.attributes[attr] = fix_attr(*info.param[keys[(op, role)]])
            c = corr.get(keys[(op, "bias")])
            if c is not None:
                self._apply_correction(op, c, used)
        for name, op in points.items():
            op.attributes["fix.out"] = fix_attr(*info.output[name])
        self.func.attributes["fix.inputs"] = ArrayAttr([fix_attr(*info.input[k]) for k in in_names])
        self.module.attributes["fix.bias_corrected"] = BoolAttr(info.bias_corrected)
        if self._ft_expected:        # the finetuned parameters named by quant_info.json (fast_finetune.npz)
            from .fast_finetune import load_ft_param
            load_ft_param(self, explicit=False)

    def _param_arrays(self) -> dict[str, np.ndarray]:
        """The conv-like weights and biases of the prepared graph under their quant_info names (no `Model::`)."""
        out = {}
        for (op, role), key in param_keys(self.func, self.name).items():
            v = getattr(op, role)
            if v is not None and isinstance(v.op, ConstantOp):
                out[key.split("::", 1)[1]] = np.asarray(v.op.attributes["value"].array, np.float32)
        return out

    def _test_step(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        from ..runtime.fix_executor import simulate_quantized
        self._inputs.test_batch(xs, self._saved_input_stats)
        return simulate_quantized(self.fix_module, xs)

    def _apply_correction(self, op: Operation, c: np.ndarray, used: set[str]) -> None:
        old = op.bias.op
        b = np.asarray(old.attributes["value"].array, np.float32)
        base = old.attributes["value"].key + "_biascorr"
        key, n = base, 1
        while key in used:
            n += 1
            key = f"{base}{n}"
        used.add(key)
        new = ConstantOp.from_array(b - c, key, old.location)
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

    def export_xmodel(self, output_dir: str | os.PathLike | None = None, deploy_check: bool = False,
                      names: str = "fixflow") -> Path:
        """Test mode: write `<Model>_int.xmodel` (to output_dir, default the quantizer's). `names="vai_q"` names
        its ops and tensors as vai_q_pytorch does (`Net__Net_Conv2d_conv1__3`; see fixflow/quantizer/vaiq.py)."""
        if self.mode != "test":
            raise QuantizerError(f"export_xmodel() needs mode='test' (this quantizer is in {self.mode!r} mode)")
        if names not in ("fixflow", "vai_q"):
            raise QuantizerError(f"export_xmodel(names={names!r}): expected 'fixflow' or 'vai_q'")
        from ..backends.xmodel.fix_xmodel import write_int_xmodel
        out = Path(output_dir) if output_dir is not None else self.output_dir
        _mkdir(out)
        path = out / f"{self.name}_int.xmodel"
        module = self.fix_module
        if names == "vai_q":
            from .vaiq import renamed_for_vaiq
            module = renamed_for_vaiq(module, self.name, self._module_types)
        write_int_xmodel(module, path, self.name)
        if deploy_check:
            from ..backends.xmodel.fix_xmodel import read_int_xmodel
            read_int_xmodel(path)
        self._log(f"[fixflow] Successfully convert '{self.name}' to xmodel.({path})")
        return path

    # ---- exports beside the xmodel (vai_q_pytorch's names; fixflow/quantizer/exports.py)
    def export_torch_script(self, output_dir: str | os.PathLike | None = None, verbose: bool = False) -> Path:
        """Test mode: `<Model>_int.pt`, TorchScript of the generated module (bit-exact with test mode)."""
        from .exports import export_torch_script
        return export_torch_script(self, output_dir, verbose)

    def export_onnx_model(self, output_dir: str | os.PathLike | None = None, verbose: bool = False,
                          dynamic_batch: bool = False, opset_version: int | None = None) -> Path:
        """Test mode: `<Model>_int.onnx` with QuantizeLinear/DequantizeLinear pairs (power-of-two scales)."""
        from .exports import export_onnx_model
        return export_onnx_model(self, output_dir, verbose, dynamic_batch, opset_version)

    # ---- generated source
    def _generate_source(self) -> None:
        """Test mode: write `<Model>.py` (+ `<Model>_params.npz`), the lowered module as torch code that
        computes what `quant_model` computes, bit for bit."""
        from .codegen import write_quant_module
        _mkdir(self.output_dir)
        path = write_quant_module(self.fix_module, self.name, self.output_dir, self.graph_md5)
        self._log(f"[fixflow] Quantized module is generated.({path})")
