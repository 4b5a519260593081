"""Loading a user's model for the command-line tools: `FILE.py:CLASS` (constructed with no arguments)
and a state dict (`.pt` saved with torch.save, or `.npz`). Errors point at the user's file and line."""

from __future__ import annotations

import importlib.util
import os
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


def load_state_dict(model: Any, weights: str) -> None:
    import torch
    if weights.endswith(".npz"):
        from fixflow.zoo.checkpoint import load_npz
        load_npz(model, weights)
        return
    if not os.path.isfile(weights):
        raise ToolError(f"cannot read '{weights}': no such file")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickle/zip errors of all kinds
        raise ToolError(f"cannot read weights '{weights}': {type(e).__name__}: {str(e).splitlines()[0]} "
                        "(expected a state dict saved with torch.save(model.state_dict(), ...) or a .npz)") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ToolError(f"'{weights}' does not hold a state dict (got {type(state).__name__})")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        msg = " ".join(str(e).split())
        raise ToolError(f"weights '{weights}' do not match {type(model).__name__}: {msg}") from None


def load_torch_model(path: str, cls_name: str, weights: str | None = None) -> Any:
    """Class `cls_name` of the Python file `path`, constructed with no arguments, optionally loaded with
    `weights`, in eval mode."""
    import torch
    mod = load_python_file(path)
    cls = getattr(mod, cls_name, None)
    if cls is None:
        found = sorted(k for k, v in vars(mod).items()
                       if isinstance(v, type) and issubclass(v, torch.nn.Module) and v.__module__ == mod.__name__)
        raise ToolError(f"'{path}' has no class '{cls_name}' (nn.Module classes there: {', '.join(found) or 'none'})")
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ToolError(f"'{cls_name}' in '{path}' is not a torch.nn.Module class")
    try:
        model = cls()
    except Exception as e:  # noqa: BLE001 - the user's constructor
        raise ToolError(f"cannot construct {cls_name}() with no arguments: {type(e).__name__}: {e}",
                        user_location(e, path)) from None
    if weights:
        load_state_dict(model, weights)
    return model.eval()


__all__ = ["split_model_spec", "load_python_file", "load_state_dict", "load_torch_model", "user_location"]
