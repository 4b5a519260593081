"""Reading the quantizer's own output files back: `quant_info.json` and `bias_corr.npz`.

Both are validated before anything is taken from them, first against their schema, then against the
traced graph of the model being quantized; every failure is one `QuantizerError` naming the file and
the entry. Nothing is clamped, defaulted or dropped.

quant_info.json (vai_q_pytorch's layout):

    {"param":  {"<Model>::<param key>":  [[bit_width, fix_pos]], ...},
     "output": {"<Model>::<call site>":  [[bit_width, fix_pos]], ...},
     "input":  {"<Model>::<input name>": [[bit_width, fix_pos]], ...},
     "fast_finetuned": false, "bias_corrected": bool, "version": str, "graph_md5": str,
     "fixflow_graph_options": {"include_cle": bool, "convert_relu6_to_relu": bool},
     "float_layers": {"<Model>::<call site>": "<why>", ...}}      (optional: layers left in float)

`bit_width` is that tensor's bit width (in [2, 16]; the config's, per tensor type and layer: W4A8 has
4-bit weights and 8-bit outputs); `fix_pos` an integer in `[FIX_POS_MIN, fix_pos_cap(bit_width)]` (the
range calibration can choose from float32 data). A layer left in float has no "param" entries.
bias_corr.npz: one finite float array per corrected bias, keyed like the bias in "param", of the
bias's shape; the corrected bias must fit the bias format of quant_info.json (calibration lowers the
bias fix_pos until it does).
fast_finetune.npz (when quant_info.json says "fast_finetuned": true): one float array per weight and bias
of "param", keyed the same, of the parameter's shape, every element on the parameter's grid: `v * 2^fix_pos`
an integer in `[-2^(bw-1), 2^(bw-1) - 1]` (the finetuned parameters are stored already quantized).
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping

import attrs
import numpy as np

from ..dialects.fix.numerics import fix_pos_cap
from .errors import QuantizerError

__all__ = ["QuantInfo", "read_quant_info", "check_sections", "check_bit_widths", "check_float_layers", "read_bias_corr",
           "read_ft_params", "FIX_POS_MIN", "SECTIONS", "BIT_WIDTH_MIN", "BIT_WIDTH_MAX"]

#: the smallest fix_pos calibration can choose (float32 values up to 3.4e38 at 8 bits give about -122)
FIX_POS_MIN = -128
BIT_WIDTH_MIN, BIT_WIDTH_MAX = 2, 16
SECTIONS = ("param", "output", "input")
_KEYS = {"param": dict, "output": dict, "input": dict, "fast_finetuned": bool, "bias_corrected": bool,
         "version": str, "graph_md5": str, "fixflow_graph_options": dict, "float_layers": dict}
_REQUIRED = ("param", "output", "input", "bias_corrected", "graph_md5")
_GRAPH_OPTIONS = ("include_cle", "convert_relu6_to_relu")
_JSON_TYPES = {dict: "an object", bool: "true or false", str: "a string", list: "a list"}


@attrs.define
class QuantInfo:
    """A schema-valid quant_info.json: per section, entry name -> (bit_width, fix_pos)."""

    path: Path
    param: dict[str, tuple[int, int]]
    output: dict[str, tuple[int, int]]
    input: dict[str, tuple[int, int]]
    bias_corrected: bool
    graph_md5: str
    graph_options: dict[str, bool]
    #: the parameters were fast-finetuned (they are in fast_finetune.npz next to the file)
    fast_finetuned: bool = False
    #: layers left in float: name -> why
    float_layers: dict[str, str] = attrs.field(factory=dict)


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return json.dumps(v)
    if isinstance(v, (int, float)):
        return f"the number {json.dumps(v)}"
    return {dict: "an object", list: "a list", str: "a string"}.get(type(v), type(v).__name__)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"'{name}' is not a JSON number")


def read_quant_info(path: Path, bit_width: int | None = None) -> QuantInfo:
    """Read and schema-check quant_info.json (bit widths in [2, 16]; that each is the one the config gives
    is `check_bit_widths`'s job; `bit_width` is accepted for older callers and unused)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise QuantizerError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise QuantizerError(f"{path}: not a UTF-8 JSON file ({e.reason} at byte {e.start})") from None
    try:
        info = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise QuantizerError(f"{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    except (ValueError, RecursionError) as e:
        msg = str(e) if isinstance(e, ValueError) else "nesting too deep"
        raise QuantizerError(f"{path}: invalid JSON: {msg}") from None
    if not isinstance(info, dict):
        raise QuantizerError(f"{path}: the quant config must be a JSON object, got {_kind(info)}")
    for key, value in info.items():
        want = _KEYS.get(key)
        if want is None:
            raise QuantizerError(f"{path}: unknown key '{key}' (a quant_info.json has: {', '.join(_KEYS)})")
        if not isinstance(value, want) or (want is not bool and isinstance(value, bool)):
            raise QuantizerError(f"{path}: '{key}' must be {_JSON_TYPES[want]}, got {_kind(value)}")
    for key in _REQUIRED:
        if key not in info:
            raise QuantizerError(f"{path}: '{key}' is missing")
    opts = info.get("fixflow_graph_options", {})
    for k, v in opts.items():
        if k not in _GRAPH_OPTIONS:
            raise QuantizerError(f"{path}: unknown key 'fixflow_graph_options.{k}' (known: "
                                 f"{', '.join(_GRAPH_OPTIONS)})")
        if not isinstance(v, bool):
            raise QuantizerError(f"{path}: 'fixflow_graph_options.{k}' must be true or false, got {_kind(v)}")
    floats = info.get("float_layers", {})
    for k, v in floats.items():
        if not isinstance(v, str):
            raise QuantizerError(f"{path}: 'float_layers' entry '{k}' must be a string (why the layer is left in "
                                 f"float), got {_kind(v)}")
    sections = {s: _section(path, s, info[s]) for s in SECTIONS}
    return QuantInfo(path, sections["param"], sections["output"], sections["input"], info["bias_corrected"],
                     info["graph_md5"], dict(opts), bool(info.get("fast_finetuned", False)),
                     float_layers=dict(floats))


def _section(path: Path, section: str, entries: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    out = {}
    for name, value in entries.items():
        where = f"{path}: '{section}' entry '{name}'"
        if not (isinstance(value, list) and len(value) == 1 and isinstance(value[0], list)):
            raise QuantizerError(f"{where} must be [[bit_width, fix_pos]], got {_kind(value)} "
                                 f"{json.dumps(value)[:60]}")
        fmt = value[0]
        if len(fmt) != 2:
            raise QuantizerError(f"{where} must be [[bit_width, fix_pos]] (two integers), got {json.dumps(fmt)[:60]}")
        bw, fp = fmt
        for what, v in (("bit_width", bw), ("fix_pos", fp)):
            if not _is_int(v):
                extra = " (fix positions are integers)" if isinstance(v, float) and what == "fix_pos" else ""
                raise QuantizerError(f"{where}: {what} must be an integer, got {_kind(v)}{extra}")
        if not BIT_WIDTH_MIN <= bw <= BIT_WIDTH_MAX:
            raise QuantizerError(f"{where}: bit_width {bw} is outside [{BIT_WIDTH_MIN}, {BIT_WIDTH_MAX}]")
        cap = fix_pos_cap(bw)
        if not FIX_POS_MIN <= fp <= cap:
            raise QuantizerError(f"{where}: fix_pos {fp} is outside [{FIX_POS_MIN}, {cap}], the positions "
                                 f"calibration chooses for {bw}-bit values")
        out[name] = (bw, fp)
    return out


def check_sections(info: QuantInfo, section: str, expected: Mapping[str, Any], what: str) -> None:
    """The entries of `section` are exactly `expected`'s keys (the traced graph's names)."""
    got = getattr(info, section)
    for name in got:
        if name not in expected:
            raise QuantizerError(f"{info.path}: '{section}' entry: {what} '{name}' is not in this model's graph "
                                 "(the quant config was exported for a different model or edited)")
    for name in expected:
        if name not in got:
            raise QuantizerError(f"{info.path}: the model's {what} '{name}' has no '{section}' entry in the quant "
                                 "config (it was exported for a different model or edited)")


def check_bit_widths(info: QuantInfo, section: str, expected: Mapping[str, int]) -> None:
    """Each entry of `section` present in `expected` has the bit width the quantizer's config gives it."""
    got = getattr(info, section)
    for name, bw in expected.items():
        if name in got and got[name][0] != bw:
            raise QuantizerError(f"{info.path}: '{section}' entry '{name}': bit_width {got[name][0]}, but this "
                                 f"quantizer's config gives it {bw} bits (calibrate and test with the same bitwidth "
                                 "and config)")


def check_float_layers(info: QuantInfo, expected: Mapping[str, str]) -> None:
    """The layers left in float are the ones the quantizer's config leaves in float."""
    for name in info.float_layers:
        if name not in expected:
            raise QuantizerError(f"{info.path}: 'float_layers' lists '{name}', but this quantizer's config "
                                 "quantizes it (calibrate and test with the same config)")
    for name in expected:
        if name not in info.float_layers:
            raise QuantizerError(f"{info.path}: this quantizer's config leaves '{name}' in float, but the quant "
                                 "config was calibrated with it quantized (calibrate and test with the same config)")


def _read_npz_entries(path: Path, known: Mapping[str, Any], what: str,
                      check: Callable[[str, np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:
    """The entries of an .npz written next to quant_info.json, each a key of `known` and passed through
    `check`; every failure is one QuantizerError naming the file (and the entry)."""
    out = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise QuantizerError(f"{path}: not an .npz archive")
            for key in z.files:
                if key not in known:
                    raise QuantizerError(f"{path}: entry '{key}' is not {what} of this model's graph (known: "
                                         f"{', '.join(list(known)[:4])}{', ...' if len(known) > 4 else ''})")
                try:
                    arr = z[key]
                except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
                    raise QuantizerError(f"{path}: entry '{key}' cannot be read ({e})") from None
                out[key] = check(key, arr)
    except QuantizerError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise QuantizerError(f"{path}: not a readable .npz archive ({e})") from None
    return out


def read_bias_corr(path: Path, biases: Mapping[str, tuple[np.ndarray, tuple[int, int]]]) -> dict[str, np.ndarray]:
    """Read bias_corr.npz; `biases`: bias key -> (the bias, its (bit_width, fix_pos) from quant_info).

    Returns key -> correction (float32, subtracted from the bias)."""
    if not path.exists():
        raise QuantizerError(f"{path} is missing, but quant_info.json says bias_corrected")
    out = _read_npz_entries(path, biases, "a bias", lambda key, arr: _check_correction(path, key, arr, *biases[key]))
    if not out:
        raise QuantizerError(f"{path} holds no corrections, but quant_info.json says bias_corrected")
    return out


def _check_correction(path: Path, key: str, arr: np.ndarray, bias: np.ndarray, fmt: tuple[int, int]) -> np.ndarray:
    where = f"{path}: entry '{key}'"
    if arr.dtype.kind != "f":
        raise QuantizerError(f"{where}: expected float values, got dtype {arr.dtype}")
    if arr.shape != bias.shape:
        raise QuantizerError(f"{where}: shape {arr.shape}, but the bias has shape {bias.shape}")
    if not np.isfinite(arr).all():
        i = int(np.flatnonzero(~np.isfinite(arr.ravel()))[0])
        raise QuantizerError(f"{where}: element {i} is {arr.ravel()[i]} (corrections must be finite)")
    corrected = bias.astype(np.float64) - arr.astype(np.float64)
    bw, fp = fmt
    step = math.ldexp(1.0, -fp)
    lo, hi = (-(2 ** (bw - 1)) - 0.5) * step, (2 ** (bw - 1) - 0.5) * step
    bad = np.flatnonzero((corrected < lo * (1 + 1e-6)) | (corrected > hi * (1 + 1e-6)))
    if bad.size:
        i = int(bad[0])
        raise QuantizerError(f"{where}: element {i} ({arr.ravel()[i]:.6g}) makes the corrected bias "
                             f"{corrected.ravel()[i]:.6g}, outside the bias format [{bw}, {fp}] of quant_info.json "
                             f"([{lo:.6g}, {hi:.6g}]); calibration never writes such a correction")
    return arr.astype(np.float32)


def read_ft_params(path: Path, expected: Mapping[str, tuple[tuple[int, ...], tuple[int, int]]]) -> dict[str, np.ndarray]:
    """Read fast_finetune.npz; `expected`: parameter key -> (shape, its (bit_width, fix_pos) from quant_info).

    Every expected key must be there, nothing else, each of its shape, finite and on its fix grid."""
    if not path.exists():
        raise QuantizerError(f"{path} is missing, but quant_info.json says fast_finetuned (export_quant_config() "
                             "writes both)")
    out = _read_npz_entries(path, expected, "a parameter", lambda key, arr: _check_ft_param(path, key, arr, *expected[key]))
    for key in expected:
        if key not in out:
            raise QuantizerError(f"{path}: the model's parameter '{key}' has no entry (the file was written for a "
                                 "different model or edited)")
    return out


def _check_ft_param(path: Path, key: str, arr: np.ndarray, shape: tuple[int, ...], fmt: tuple[int, int]) -> np.ndarray:
    where = f"{path}: entry '{key}'"
    if arr.dtype.kind != "f":
        raise QuantizerError(f"{where}: expected float values, got dtype {arr.dtype}")
    if tuple(arr.shape) != tuple(shape):
        raise QuantizerError(f"{where}: shape {tuple(arr.shape)}, but the parameter has shape {tuple(shape)}")
    flat = arr.astype(np.float64).ravel()
    if not np.isfinite(flat).all():
        i = int(np.flatnonzero(~np.isfinite(flat))[0])
        raise QuantizerError(f"{where}: element {i} is {flat[i]} (finetuned parameters must be finite)")
    bw, fp = fmt
    scaled = flat * math.ldexp(1.0, fp)
    lo, hi = -(2 ** (bw - 1)), 2 ** (bw - 1) - 1
    bad = np.flatnonzero((scaled != np.round(scaled)) | (scaled < lo) | (scaled > hi))
    if bad.size:
        i = int(bad[0])
        raise QuantizerError(f"{where}: element {i} ({flat[i]:.9g}) is not a value of the parameter's format "
                             f"[{bw}, {fp}] of quant_info.json (an integer multiple of 2^-{fp} in "
                             f"[{lo}, {hi}] steps); fast_finetune writes quantized values only")
    return arr.astype(np.float32)
