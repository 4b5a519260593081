"""Loading a user's model for the command-line tools (the one model loader): `FILE.py:CLASS`
(constructed with no arguments) and its weights (a state dict, a checkpoint holding one, a whole pickled
model of the class, DDP `module.` keys, or `.npz`), and DSL networks (`.ffn`). Errors point at the user's
file and line, and name the fix; none is a raw PyTorch message."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from typing import Any

from .common import ToolError


def split_model_spec(spec: str) -> tuple[str, str] | None:
    """`("net.py", "Net")` for `net.py:Net`, None when `spec` is not of that form (e.g. a zoo name)."""
    path, sep, cls_name = spec.rpartition(":")
    if not sep or not path.endswith(".py") or not cls_name:
        return None
    return path, cls_name


def load_python_file(path: str) -> Any:
    """Execute a user's Python file as a module; errors point at the user's line."""
    if not os.path.isfile(path):
        raise ToolError(f"cannot read '{path}': no such file")
    name = "_fixflow_user_" + "".join(c if c.isalnum() else "_" for c in os.path.abspath(path))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ToolError(f"'{path}' is not a Python file")
    mod = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except SyntaxError as e:
        from fixflow.ir.location import FileLineColLoc
        raise ToolError(f"syntax error in '{path}': {e.msg}",
                        FileLineColLoc(e.filename or path, e.lineno or 1, e.offset or 1)) from None
    except Exception as e:  # noqa: BLE001 - user code failed at import
        raise ToolError(f"importing '{path}' failed: {type(e).__name__}: {e}", user_location(e, path)) from None
    finally:
        if sys.path and sys.path[0] == folder:
            sys.path.pop(0)
    return mod


def user_location(e: BaseException, path: str) -> Any:
    from fixflow.ir.location import FileLineColLoc
    best = None
    tb = e.__traceback__
    target = os.path.abspath(path)
    while tb is not None:
        if os.path.abspath(tb.tb_frame.f_code.co_filename) == target:
            best = FileLineColLoc(tb.tb_frame.f_code.co_filename, tb.tb_lineno, 1)
        tb = tb.tb_next
    return best


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
WEIGHT_SUFFIXES = (".pt", ".pth", ".pkl", ".ckpt", ".bin", ".tar")
#: the keys a training checkpoint keeps its state dict under ({'state_dict': ...}, {'model': ...}, ...)
_CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "module", "ema", "model_ema")


def _plain(text: str) -> str:
    """One line without terminal colour codes (PyTorch decorates some messages)."""
    return " ".join(_ANSI.sub("", text).split())


def module_classes(mod: Any) -> list[str]:
    """The torch.nn.Module classes a loaded user file defines (not the ones it imports)."""
    import torch
    return sorted(k for k, v in vars(mod).items()
                  if isinstance(v, type) and issubclass(v, torch.nn.Module) and v.__module__ == mod.__name__)


def check_model_spec(spec: str, what: str = "--model") -> None:
    """Refuse, with the fix, the forms of a model argument that name a file but not a model: a `.py`
    without `:Class` (the classes in it are listed) and a weights file (`.pt`, ...). `what` is the option
    ("--model"), or "" for a positional argument."""
    flag = f"{what} " if what else ""
    if spec.endswith(".py"):
        if not os.path.isfile(spec):
            raise ToolError(f"{flag}{spec}: cannot read '{spec}': no such file")
        found = module_classes(load_python_file(spec))
        example = f"{spec}:{found[0]}" if found else f"{spec}:ClassName"
        raise ToolError(f"{flag}{spec}: say which class to use, e.g. {flag}{example} "
                        f"(nn.Module classes in {spec}: {', '.join(found) or 'none'})")
    if spec.lower().endswith(WEIGHT_SUFFIXES) and os.path.isfile(spec):
        raise ToolError(f"{flag}{spec} is a weights file: give the model as {flag}FILE.py:CLASS and this file as "
                        f"--weights {spec} (a state dict, a checkpoint holding one, or a whole pickled model of "
                        "that class)")


def _safe_globals_for(weights: str, model: Any) -> list:
    """The classes a whole pickled model needs, if they are all safe to load without running the file's
    code: torch.nn modules and classes of the user's own model file; `ToolError` otherwise."""
    import importlib

    import torch
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(weights)
    except Exception as e:  # noqa: BLE001 - not a zip checkpoint either
        raise ToolError(f"cannot read weights '{weights}': {_plain(str(e)) or type(e).__name__}") from None
    user_mod = sys.modules.get(type(model).__module__) if model is not None else None
    allowed, refused = [], []
    for name in names:
        mod_name, _, attr = name.rpartition(".")
        obj = None
        if user_mod is not None and isinstance(getattr(user_mod, attr, None), type):
            obj = getattr(user_mod, attr)          # net.Net or __main__.Net, pickled by the user's script
        elif mod_name.split(".")[0] == "torch":
            try:
                obj = getattr(importlib.import_module(mod_name), attr)
            except (ImportError, AttributeError):
                obj = None
            if not (isinstance(obj, type) and issubclass(obj, torch.nn.Module)):
                obj = None
        if obj is None:
            refused.append(name)
        else:
            allowed.append((obj, name))
    if refused:
        raise ToolError(f"weights '{weights}' is a pickled object that needs {', '.join(refused)}, which fixflow "
                        "does not load (unpickling it would run code); save a state dict instead: "
                        "torch.save(model.state_dict(), 'weights.pt')")
    return allowed


def _state_dict_of(obj: Any, weights: str, model: Any) -> dict:
    """The state dict inside what torch.load returned: a state dict, a whole model, or a checkpoint
    dict holding one of them (under 'state_dict', 'model', ...)."""
    import torch
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if not isinstance(obj, dict):
        raise ToolError(f"'{weights}' does not hold a state dict (got {type(obj).__name__}); save one with "
                        "torch.save(model.state_dict(), path)")
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    for key in _CHECKPOINT_KEYS:
        inner = obj.get(key)
        if isinstance(inner, torch.nn.Module):
            return inner.state_dict()
        if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            return inner
    keys = ", ".join(map(str, list(obj)[:8])) + (", ..." if len(obj) > 8 else "")
    raise ToolError(f"'{weights}' is a dict without model weights (keys: {keys}); expected a state dict or a "
                    f"checkpoint with one under {', '.join(repr(k) for k in _CHECKPOINT_KEYS[:3])}")


def _strip_prefixes(state: dict, expected: set[str]) -> dict:
    """DDP's `module.` and torch.compile's `_orig_mod.` prefixes, when the model's own keys lack them."""
    for prefix in ("module.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state) and not any(k.startswith(prefix) for k in expected):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def resize_to_pruned(model: Any, shapes: dict[str, tuple[int, ...]], weights: str) -> bool:
    """When `shapes` (state-dict key -> shape) gives some layer weight of `model` another shape (a slim state dict
    of fixflow-prune), resize those layers to it (the layer types fixflow-prune slims: convs, transposed convs,
    batch norms, linears, per-channel PReLU); True when something was resized."""
    own = model.state_dict()
    diff = {k: s for k, s in shapes.items()
            if k.endswith("weight") and k in own and tuple(own[k].shape) != tuple(s)}
    if not diff:
        return False
    from fixflow.quantizer.pruning import PruningError
    from fixflow.quantizer.pruning.slim import resize
    try:
        resize(model, diff)
    except PruningError as e:
        raise ToolError(f"weights '{weights}' do not match {type(model).__name__}: {e.message}") from None
    return True


def load_state_dict(model: Any, weights: str, *, pruned: bool = False) -> None:
    """Load `weights` into `model`: a `.npz`, a state dict (`torch.save(model.state_dict(), f)`), a
    training checkpoint holding one (`{'state_dict': ...}`, `{'model': ...}`), a whole pickled model of
    the user's own class (`torch.save(model, f)`, loaded without running code), DDP `module.` keys.
    With `pruned`, layers whose weights have other shapes are first resized to them (a slim state dict
    of fixflow-prune; a note says so). What cannot be loaded is one `ToolError` naming the fix."""
    if weights.endswith(".npz"):
        from fixflow.ir.diagnostics import FixflowError
        from fixflow.zoo.checkpoint import load_npz, read_npz
        if not os.path.isfile(weights):
            raise ToolError(f"cannot read '{weights}': no such file")
        try:
            if pruned:
                _note_resized(model, resize_to_pruned(model, {k: tuple(v.shape) for k, v in read_npz(weights).items()},
                                                      weights), weights)
            load_npz(model, weights)
        except (FixflowError, OSError):
            raise
        except Exception as e:  # noqa: BLE001 - zipfile/numpy errors of a corrupt or foreign archive
            raise ToolError(f"cannot read weights '{weights}': {type(e).__name__}: {_plain(str(e))} (expected an .npz "
                            "of the model's parameters, saved with np.savez(path, **arrays))") from None
        return
    expected = set(model.state_dict())
    state = _strip_prefixes(read_torch_state_dict(weights, model), expected)
    if pruned:
        _note_resized(model, resize_to_pruned(model, {k: tuple(v.shape) for k, v in state.items()}, weights), weights)
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        def few(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        parts = ([f"missing {few(missing)}"] if missing else []) + ([f"unexpected {few(unexpected)}"] if unexpected else [])
        raise ToolError(f"weights '{weights}' do not match {type(model).__name__}: {'; '.join(parts)} "
                        "(are they the weights of this class?)")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ToolError(f"weights '{weights}' do not match {type(model).__name__}: {_plain(str(e))}") from None


def read_torch_state_dict(weights: str, model: Any = None) -> dict:
    """The state dict in the PyTorch file `weights`: a state dict, a training checkpoint holding one, or a
    whole pickled model (of `model`'s own class or torch.nn classes, loaded without running code)."""
    import torch
    if not os.path.isfile(weights):
        raise ToolError(f"cannot read '{weights}': no such file")
    try:
        obj = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickle/zip errors of all kinds
        if not isinstance(e, __import__("pickle").UnpicklingError):
            raise ToolError(f"cannot read weights '{weights}': {type(e).__name__}: "
                            f"{_plain(str(e).splitlines()[0]) if str(e) else ''} (expected a state dict saved with "
                            "torch.save(model.state_dict(), ...) or a .npz)") from None
        allowed = _safe_globals_for(weights, model)
        try:
            with torch.serialization.safe_globals(allowed):
                obj = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as e2:  # noqa: BLE001
            raise ToolError(f"cannot read weights '{weights}': {type(e2).__name__}: "
                            f"{_plain(str(e2).splitlines()[0]) if str(e2) else ''}; save a state dict instead: "
                            "torch.save(model.state_dict(), 'weights.pt')") from None
    return _state_dict_of(obj, weights, model)


def _note_resized(model: Any, resized: bool, weights: str) -> None:
    if resized:
        print(f"[fixflow] {type(model).__name__}: layers resized to the pruned shapes of '{weights}' (a slim state "
              "dict of fixflow-prune)", file=sys.stderr)


def load_torch_model(path: str, cls_name: str, weights: str | None = None) -> Any:
    """Class `cls_name` of the Python file `path`, constructed with no arguments, optionally loaded with
    `weights`, in eval mode."""
    import torch
    mod = load_python_file(path)
    cls = getattr(mod, cls_name, None)
    if cls is None:
        raise ToolError(f"'{path}' has no class '{cls_name}' (nn.Module classes there: "
                        f"{', '.join(module_classes(mod)) or 'none'})")
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ToolError(f"'{cls_name}' in '{path}' is not a torch.nn.Module class")
    try:
        model = cls()
    except Exception as e:  # noqa: BLE001 - the user's constructor
        raise ToolError(f"cannot construct {cls_name}() with no arguments: {type(e).__name__}: {_plain(str(e))}",
                        user_location(e, path)) from None
    if weights:
        load_state_dict(model, weights)
    return model.eval()


def load_dsl_model(path: str, weights: str | None = None, *, pruned: bool = False) -> Any:
    """A network written in the fixflow DSL (`.ffn`), as graph-dialect IR; `weights` an `.npz` of its
    parameters or a PyTorch state dict whose names are the statements' (seeded-random parameters otherwise,
    as the DSL defines). With `pruned`, conv2d statements take their output channels from a narrower weights
    entry (a slim state dict of fixflow-prune; a note names them)."""
    from fixflow.frontends.dsl import import_dsl
    from .common import read_text
    arrays = None
    if weights:
        arrays = _dsl_arrays(weights)
    resized: list[str] | None = [] if pruned and arrays else None
    module = import_dsl(read_text(path), path, arrays, weights_name=weights, resized=resized)
    if resized:
        print(f"[fixflow] {path}: {', '.join(resized)} resized to the pruned shapes of '{weights}' (conv2d's out "
              "taken from the weights)", file=sys.stderr)
    return module


def _dsl_arrays(weights: str) -> dict:
    """The arrays of a DSL network's weights file: an `.npz`, or a PyTorch state dict / checkpoint (a
    file of another kind is read as PyTorch's when it is a zip or pickle, as `.pt` files are)."""
    import numpy as np
    if not os.path.isfile(weights):
        raise ToolError(f"cannot read '{weights}': no such file")
    if not weights.endswith(".npz") and _is_torch_file(weights):
        state = read_torch_state_dict(weights)
        for prefix in ("module.", "_orig_mod."):   # DDP and torch.compile wrappers
            if state and all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
        return {k: v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v) for k, v in state.items()}
    from fixflow.frontends.dsl.weights import load_npz
    try:
        return load_npz(weights)
    except (OSError, ValueError) as e:
        raise ToolError(f"cannot read weights '{weights}': {e}") from None


def _is_torch_file(path: str) -> bool:
    """A file torch.save wrote: a zip holding `<name>/data.pkl`, or a legacy pickle; an `.npz` is neither."""
    import zipfile
    if path.lower().endswith(WEIGHT_SUFFIXES):
        return True
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                return any(n.endswith("/data.pkl") for n in z.namelist())
        with open(path, "rb") as f:
            return f.read(1) == b"\x80"   # pickle protocol 2+
    except OSError:
        return False


__all__ = ["split_model_spec", "check_model_spec", "module_classes", "load_python_file", "load_state_dict",
           "read_torch_state_dict",
           "load_torch_model", "load_dsl_model", "user_location", "WEIGHT_SUFFIXES"]
