"""The config's bit widths and layer overrides resolved on a traced graph.

`resolve_bit_widths(func, model, config)` matches every `layer_quantize_config` entry to the graph's
ops (by torch layer type, or by node name as quant_info.json and the generated module write it), marks
the layers left in float (`fix.keep_float`) and returns the `BitWidths` calibration uses. A layer
name that matches no node is an error listing the nearest names.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from ..ir.attributes import StringAttr
from ..ir.core import Operation
from ..passes.fix.annotations import CONV_LIKE, KEEP_FLOAT, BitWidths, point_of, quant_points
from .config import LAYER_TYPES, LayerOverride, QuantConfig
from .errors import QuantizerError

__all__ = ["resolve_bit_widths", "layer_ops", "float_layers", "apply_bit_config", "check_quant_info_bits",
           "expected_bits", "unwritable_float_ops"]

_VAI_SEGMENT = re.compile(r"\[([^\]]+)\]")


def _candidates(name: str, model: str) -> list[str]:
    """The node names a user's `layer_name` may mean: as written, without `Model::`, and a vai_q name
    (`Net::Net/Sequential[features]/Conv2d[0]/input.3` -> `features.0`)."""
    out = [name]
    if name.startswith(f"{model}::"):
        out.append(name[len(model) + 2:])
    if "/" in name:
        segs = _VAI_SEGMENT.findall(name)
        if segs:
            out.append(".".join(segs))
    return out


def layer_ops(func: Operation, model: str, ov: LayerOverride, names: dict[Operation, str]) -> list[Operation]:
    """The ops an override applies to (raises when a layer name matches nothing)."""
    ops = [op for op in names]
    if ov.layer_type is not None:
        kinds = LAYER_TYPES[ov.layer_type]
        hit = [op for op in ops if op.name in kinds]
        if not hit:
            present = sorted({t for t, k in LAYER_TYPES.items() for op in ops if op.name in k})
            raise QuantizerError(f"quant config: '{ov.where}.layer_type' torch.nn.{ov.layer_type} matches no layer "
                                 f"of {model} (its layer types: {', '.join('torch.nn.' + t for t in present)})")
        return hit
    wanted = _candidates(ov.layer_name, model)
    hit = [op for op, n in names.items() if n in wanted or n.split("#", 1)[0] in wanted]
    if not hit:
        known = sorted({f"{model}::{n}" for n in names.values()})
        bare = sorted({n for n in names.values()})
        word = wanted[-1].split("::")[-1]
        close = difflib.get_close_matches(word, bare, n=3, cutoff=0.6)   # equally close ones: in name order
        close.sort(key=lambda n: (-difflib.SequenceMatcher(None, word, n).ratio(), n))
        near = [f"{model}::{n}" for n in close]
        hint = f"; did you mean {', '.join(near)}?" if near else f" (its layers: {', '.join(known[:8])}" + (
            ", ...)" if len(known) > 8 else ")")
        raise QuantizerError(f"quant config: '{ov.where}.layer_name' {ov.layer_name!r} names no layer of {model}"
                             f"{hint}")
    return hit


def resolve_bit_widths(func: Operation, model: str, config: QuantConfig,
                       names: dict[Operation, str]) -> BitWidths:
    """Per-op bit widths of `config` on `func` (whose call-site names are `names`); marks float layers.

    Type overrides apply first, then name overrides, each in file order (the later one wins)."""
    bits = BitWidths(config.bits("input"), config.bits("weights"), config.bits("bias"), config.bits("activation"))
    for op in func.walk():
        op.attributes.pop(KEEP_FLOAT, None)
    ordered = [o for o in config.layers if o.layer_type is not None] + [o for o in config.layers
                                                                        if o.layer_type is None]
    for ov in ordered:
        for op in layer_ops(func, model, ov, names):
            if ov.float:
                op.attributes[KEEP_FLOAT] = StringAttr(
                    f"left in float by the quant config ({ov.where}: layer '{model}::{names[op]}')")
                continue
            op.attributes.pop(KEEP_FLOAT, None)
            if isinstance(op, CONV_LIKE):
                bits.weights[op] = ov.bits["weights"]
                bits.bias[op] = ov.bits["bias"]
            p = point_of(op)
            if p is not None:
                bits.activation[p] = ov.bits["activation"]
    return bits


def float_layers(func: Operation, model: str, names: dict[Operation, str]) -> dict[str, str]:
    """`Model::name` -> reason of every op marked to stay in float."""
    out = {}
    for op in func.regions[0].blocks[0].ops:
        a = op.attributes.get(KEEP_FLOAT)
        if a is not None and op in names:
            out[f"{model}::{names[op]}"] = str(a.value)
    return out


def unwritable_float_ops(func: Operation) -> dict[Operation, str]:
    """Layers left in float whose float form the `_int.xmodel` cannot hold -> the graph op kind that stops it:
    the layer itself, or the ReLU6 that stays in float after a conv-like layer left in float."""
    from ..backends.xmodel.fix_xmodel import float_op_refusal
    out = {}
    for op in func.regions[0].blocks[0].ops:
        if KEEP_FLOAT not in op.attributes:
            continue
        ops = [op]
        if isinstance(op, CONV_LIKE) and op.results[0].users:
            ops += [u for u in op.results[0].users if u.name == "graph.relu6"]
        bad = [o.name for o in ops if float_op_refusal(o) is not None]
        if bad:
            out[op] = bad[0]
    return out


def apply_bit_config(q: Any) -> BitWidths:
    """The Quantizer's hook: resolve `q.config` on its prepared graph, log the layers left in float."""
    from .api import call_site_names
    names = call_site_names(q.func)
    bits = resolve_bit_widths(q.func, q.name, q.config, names)
    for name, why in float_layers(q.func, q.name, names).items():
        q._log(f"[fixflow] note: '{name}' stays in float and will run on the CPU: {why}")
    for op, kind in unwritable_float_ops(q.func).items():
        q._log(f"[fixflow] warning: '{q.name}::{names[op]}' left in float: test mode runs it, but the _int.xmodel "
               f"cannot hold a float {kind} yet, so export_xmodel() will refuse the model; quantize this layer to "
               "deploy it")
    c = q.config
    widths = (c.weights_bit_width, c.activation_bit_width, c.bias_bit_width, c.input_bit_width)
    if len(set(widths)) > 1 or any(o.bits for o in c.layers):
        q._log(f"[fixflow] Bit widths: weights {widths[0]}, activations {widths[1]}, biases {widths[2]}, input "
               f"{widths[3]}" + (f"; {len(c.layers)} layer override(s)" if c.layers else ""))
    return bits


def expected_bits(q: Any) -> dict[str, dict[str, int]]:
    """Section -> entry name -> the bit width `q`'s config gives it (quant_info.json's names)."""
    from .api import call_site_names, param_keys
    names = call_site_names(q.func)
    bits = resolve_bit_widths(q.func, q.name, q.config, names)
    param = {}
    for (op, role), key in param_keys(q.func, q.name).items():
        param[key] = bits.of_weights(op) if role == "weight" else bits.of_bias(op)
    output = {f"{q.name}::{names[v.op]}": bits.of_point(v) for v in quant_points(q.func)}
    args = q.func.regions[0].blocks[0].args
    inputs = {f"{q.name}::{a.name_hint or f'input_{i}'}": bits.default_input for i, a in enumerate(args)}
    return {"param": param, "output": output, "input": inputs}


def check_quant_info_bits(q: Any, info: Any) -> None:
    """Test mode: quant_info.json's float layers and bit widths are the ones `q`'s config gives."""
    from .api import call_site_names
    from .quant_files import check_bit_widths, check_float_layers
    exp = expected_bits(q)
    check_float_layers(info, float_layers(q.func, q.name, call_site_names(q.func)))
    for section, e in exp.items():
        check_bit_widths(info, section, e)
