"""vai_q_pytorch compatibility: `torch_quantizer` (its signature, a thin alias of `Quantizer`) and vai_q-style
xmodel op/tensor names.

    from fixflow.quantizer import torch_quantizer     # was: from pytorch_nndct.apis import torch_quantizer
    quantizer = torch_quantizer(quant_mode, model, (x,), output_dir="quantize_result", device=device)
    quant_model = quantizer.quant_model
    ...
    quantizer.export_quant_config()            # calib
    quantizer.export_xmodel(deploy_check=True) # test

Names (docs/migrating-from-vitis-ai.md): vai_q names an op after its module scope,
`<Model>/<Type>[<attr>]/.../<value id>` with every non-alphanumeric character replaced by `_`, e.g.
`Net__Net_Conv2d_conv1__168`; network inputs are `<Model>__input_<i>`. The trailing value id is
TorchScript's (it changes between vai_q versions); fixflow numbers ops in program order instead.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..dialects.fix import ops as Q
from ..ir.core import Operation
from ..ir.interpreter import find_function
from ..ir.location import NameLoc
from ..ir.opdef import Terminator
from .errors import QuantizerError

__all__ = ["torch_quantizer", "vaiq_scope", "vaiq_xname", "vaiq_names", "renamed_for_vaiq", "dump_xmodel"]

_MODES = {0: "float", 1: "calib", 2: "test", "float": "float", "calib": "calib", "test": "test"}


def vaiq_scope(model_name: str, path: str, module_types: Mapping[str, str]) -> str:
    """vai_q's scope of a module path: `layer1.0.conv1` -> `ResNet/Sequential[layer1]/BasicBlock[0]/Conv2d[conv1]`.
    A path that is no submodule (a functional call in forward, `layer1.0.add`) gets its enclosing module's."""
    parts = path.split(".") if path else []
    while parts and ".".join(parts) not in module_types:
        parts.pop()
    scope = [model_name]
    for i in range(len(parts)):
        scope.append(f"{module_types['.'.join(parts[:i + 1])]}[{parts[i]}]")
    return "/".join(scope)


def vaiq_xname(model_name: str, scope: str, value_id: int | str) -> str:
    """The xmodel name vai_q derives from `<Model>::<scope>/<value id>`: `::` and `]/` become `__`, `[`, `/`
    and `.` become `_` (`Net::Net/Conv2d[conv1]/168` -> `Net__Net_Conv2d_conv1__168`)."""
    raw = f"{model_name}::{scope}/{value_id}"
    raw = raw.replace("::", "__").replace("]/", "__").replace("[", "_").replace("]", "_")
    return re.sub(r"[^0-9A-Za-z_]", "_", raw)


def vaiq_names(fix_module: Operation, model_name: str, module_types: Mapping[str, str]) -> dict[Any, str]:
    """A vai_q-style name for every value of the lowered function (inputs `<Model>__input_<i>`; ops
    `<Model>__<scope>__<index>`, the index in program order where vai_q has a TorchScript value id;
    weights and biases `<op name>_weight` / `_bias`)."""
    func = find_function(fix_module)
    block = func.regions[0].blocks[0]
    names: dict[Any, str] = {}
    for k, op in enumerate(block.ops):
        if Terminator in op.TRAITS or not op.results:
            continue
        if isinstance(op, Q.DataOp):
            idx = op.input.index if hasattr(op.input, "index") else 0
            names[op.results[0]] = names[op.input] = f"{model_name}__input_{idx}"
            continue
        if isinstance(op, Q.ConstOp):
            continue
        loc = op.location
        path = loc.name if isinstance(loc, NameLoc) else (op.results[0].name_hint or "")
        name = vaiq_xname(model_name, vaiq_scope(model_name, path.split("#")[0], module_types), k)
        names[op.results[0]] = name
        for role, v in (("weight", getattr(op, "weights", None)), ("bias", getattr(op, "bias", None))):
            if v is not None and isinstance(getattr(v, "op", None), Q.ConstOp) and v not in names:
                names[v] = f"{name}_{role}"
    return names


def renamed_for_vaiq(fix_module: Operation, model_name: str, module_types: Mapping[str, str]) -> Operation:
    """A copy of the lowered module whose values carry vai_q-style names (the xmodel's op and tensor names)."""
    clone = fix_module.clone()
    for v, name in vaiq_names(clone, model_name, module_types).items():
        v.name_hint = name
    return clone


class torch_quantizer:  # noqa: N801 - vai_q_pytorch's name
    """vai_q_pytorch's `torch_quantizer`, same signature, on fixflow's `Quantizer`.

    Differences (all reported, none silent): `device` defaults to the CPU (a CUDA device is mapped to it
    with a warning); `lstm`, `qat_proc`, `mix_bit`, `custom_quant_ops` and `app_deploy="NLP"` are refused
    with the fixflow way to proceed; `target` must be a DPUCZDX8G. `export_xmodel` names ops as vai_q does.
    """

    def __init__(self, quant_mode: str | int, module: Any, input_args: Any = None, state_dict_file: str | None = None,
                 output_dir: str = "quantize_result", bitwidth: int | None = None, mix_bit: bool = False,
                 device: Any = None, lstm: bool = False, app_deploy: str = "CV", qat_proc: bool = False,
                 custom_quant_ops: Sequence[str] | None = None, quant_config_file: str | None = None,
                 target: str | None = None, **fixflow_options: Any):
        from .api import Quantizer
        mode = _MODES.get(quant_mode)
        if mode is None:
            raise QuantizerError(f"torch_quantizer: unknown quant_mode {quant_mode!r} (expected 'calib', 'test' or "
                                 "'float')")
        for flag, value, how in (("lstm", lstm, "fixflow quantizes CNNs for DPUCZDX8G"),
                                 ("qat_proc", qat_proc, "see docs/quantization.md for quantization-aware training"),
                                 ("mix_bit", mix_bit, "give per-layer bit widths in the config file instead"),
                                 ("custom_quant_ops", bool(custom_quant_ops), "unsupported ops stay on the CPU")):
            if value:
                raise QuantizerError(f"torch_quantizer: {flag}=... is not supported ({how})")
        if app_deploy != "CV":
            raise QuantizerError(f"torch_quantizer: app_deploy={app_deploy!r} is not supported (only 'CV')")
        if isinstance(module, (list, tuple)):
            raise QuantizerError("torch_quantizer: a list of modules is not supported; quantize one module")
        if state_dict_file is not None:
            _load_state_dict(module, state_dict_file)
        if input_args is None:
            raise QuantizerError("torch_quantizer: input_args is required (an example input of the real shape)")
        self._module = module
        self.quantizer = Quantizer(module, input_args, mode=mode, output_dir=output_dir, config=quant_config_file,
                                   bitwidth=8 if bitwidth is None else bitwidth, target=target, device=device,
                                   **fixflow_options)
        self.quantizer._module_types = {n: type(m).__name__ for n, m in module.named_modules() if n}

    @property
    def quant_model(self) -> Any:
        """The quantized model (a `torch.nn.Module`)."""
        return self.quantizer.quant_model

    @property
    def deploy_model(self) -> None:
        """vai_q: only quantization-aware training has a deployable model."""
        return None

    def export_quant_config(self) -> Path:
        return self.quantizer.export_quant_config()

    def export_xmodel(self, output_dir: str = "quantize_result", deploy_check: bool = False,
                      dynamic_batch: bool = False) -> Path:
        """`<Model>_int.xmodel` with vai_q-style op names (`dynamic_batch` is accepted: batch is free at run time)."""
        return self.quantizer.export_xmodel(output_dir, deploy_check, names="vai_q")

    def export_onnx_model(self, output_dir: str = "quantize_result", verbose: bool = False, dynamic_batch: bool = False,
                          opset_version: int | None = None) -> Path:
        return self.quantizer.export_onnx_model(output_dir, verbose, dynamic_batch, opset_version)

    def export_torch_script(self, output_dir: str = "quantize_result", verbose: bool = False) -> Path:
        return self.quantizer.export_torch_script(output_dir, verbose)

    def fast_finetune(self, run_fn: Any, run_args: Any) -> Any:
        return self.quantizer.fast_finetune(run_fn, run_args)

    def load_ft_param(self) -> None:
        self.quantizer.load_ft_param()


def _load_state_dict(module: Any, path: str | os.PathLike) -> None:
    import torch
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as e:
        raise QuantizerError(f"torch_quantizer: cannot load state_dict_file '{path}': {e}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError) as e:
        raise QuantizerError(f"torch_quantizer: state_dict_file '{path}' does not fit the module: "
                             f"{str(e).splitlines()[0]}") from None


def dump_xmodel(output_dir: str = "quantize_result", deploy_check: bool = False) -> None:
    """vai_q 1.2's `dump_xmodel()` has no fixflow form: the xmodel comes from the test-mode quantizer."""
    raise QuantizerError("dump_xmodel() is not supported: call export_xmodel() on the test-mode quantizer")
