"""torch.fx tracing with user source locations, and value propagation on the example inputs.

`trace(model, example_inputs)` symbolically traces a module (specializing shape queries to the example
inputs when plain symbolic tracing cannot follow the model's Python); every node gets `node.meta["fixflow_src"]` (the user's
innermost `(file, line, col)` outside torch and this package) and `node.meta["fixflow_path"]` (the
module path). `propagate(gm, inputs)` runs the traced graph once and records, per node, the output
shape of tensors (`fixflow_shape`) or the Python value of everything else (`fixflow_value`), and the
value of nodes that depend only on parameters and literals (`fixflow_const`).
"""

from __future__ import annotations

import os
import sys
from types import CodeType, FrameType, TracebackType
from typing import Any

import torch
import torch.fx

from fixflow.ir.location import UNKNOWN_LOC, FileLineColLoc, Location, NameLoc

from .errors import FrontendError

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
# the whole fixflow package: a frame in the quantizer or a tool is never "the user's source line"
_HERE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) + os.sep
_ZOO = _HERE + "zoo" + os.sep   # the zoo's models are user code as far as locations go
_AUTOGRAD_FILE = os.path.join(_TORCH_DIR, "autograd", "function.py")
_POSITIONS: dict[CodeType, list] = {}

Src = tuple[str, int, int]


def _internal(filename: str) -> bool:
    return (filename.startswith(_TORCH_DIR) or (filename.startswith(_HERE) and not filename.startswith(_ZOO))
            or filename.startswith("<eval_with_key") or filename.startswith("<frozen"))


def _position(code: CodeType, lasti: int, lineno: int | None) -> Src:
    """(file, line, col) of the instruction at byte offset `lasti` (col is 1-based)."""
    line, col = lineno or code.co_firstlineno, 1
    if hasattr(code, "co_positions") and lasti >= 0:
        pos = _POSITIONS.get(code)
        if pos is None:
            pos = _POSITIONS[code] = list(code.co_positions())
        idx = lasti // 2
        if idx < len(pos):
            pl, _, pc, _ = pos[idx]
            if pl is not None:
                line = pl
            if pc is not None:
                col = pc + 1
    return (code.co_filename, line, col)


def _user_frame(frame: FrameType | None) -> tuple[Src | None, str | None]:
    """The innermost user frame's position, and the custom autograd Function being traced, if any.

    Inside a custom `torch.autograd.Function`, the position is the call site of its `.apply`.
    """
    src: Src | None = None
    autograd_fn = None
    while frame is not None:
        code = frame.f_code
        if code.co_filename == _AUTOGRAD_FILE and code.co_name == "apply" and "cls" in frame.f_locals:
            autograd_fn = getattr(frame.f_locals["cls"], "__qualname__", "autograd.Function")
            src = None
        elif src is None and not _internal(code.co_filename):
            src = _position(code, frame.f_lasti, frame.f_lineno)
        frame = frame.f_back
    return src, autograd_fn


class LocatingTracer(torch.fx.Tracer):
    """A `torch.fx.Tracer` that records the user's source position and module path on every node."""

    def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):  # type: ignore[override]
        node = super().create_node(kind, target, args, kwargs, name, type_expr)
        src, autograd_fn = _user_frame(sys._getframe(1))
        node.meta["fixflow_src"] = src
        if autograd_fn is not None:
            node.meta["fixflow_autograd"] = autograd_fn
        if kind == "call_module":
            path = str(target)
        else:
            stack = node.meta.get("nn_module_stack") or {}
            path = next(reversed(stack.values()))[0] if stack else ""
        node.meta["fixflow_path"] = path
        return node


def location_of(node: torch.fx.Node) -> Location:
    """`NameLoc(path, FileLineColLoc(file, line, col))` for a traced node.

    The name is the module path for module calls, `<enclosing path>.<node name>` for functions and
    methods (just the node name at the top level).
    """
    path = node.meta.get("fixflow_path", "")
    if node.op != "call_module":
        path = f"{path}.{node.name}" if path else node.name
    src = node.meta.get("fixflow_src")
    child = FileLineColLoc(*src) if src else UNKNOWN_LOC
    return NameLoc(path, child)


def traceback_location(tb: TracebackType | None) -> Location:
    """The innermost user frame of an exception's traceback (outside torch and this package)."""
    best = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if not _internal(code.co_filename):
            best = _position(code, tb.tb_lasti, tb.tb_lineno)
        tb = tb.tb_next
    return FileLineColLoc(*best) if best else UNKNOWN_LOC


class _LeafRoot(torch.nn.Module):
    """Holds a bare torch.nn layer given as the whole model, so fx calls it as a module instead of
    tracing torch's own forward (whose Python checks on tensors fx cannot follow)."""

    def __init__(self, name: str, layer: torch.nn.Module):
        super().__init__()
        self.add_module(name, layer)
        self._layer_name = name

    def forward(self, input: Any) -> Any:  # noqa: A002 - torch's name for a layer's input
        return getattr(self, self._layer_name)(input)


def trace(model: torch.nn.Module, example_inputs: tuple | None = None) -> torch.fx.GraphModule:
    """Symbolically trace `model`; tracing failures become `FrontendError` at the user's source line.

    A bare torch.nn layer as the model (`nn.BatchNorm2d(8)`) is traced as one call of that layer,
    named after its class in lower case (`batchnorm2d`, parameters `batchnorm2d.weight`, ...), when
    tracing its own forward fails.

    When plain symbolic tracing fails and `example_inputs` are given, the model is traced again with
    its shapes specialized (`ShapeSpecializingTracer`): `x.shape`, `x.size()`, `x.dim()`, `len(x)` are
    the example inputs' Python ints, so shape arithmetic (`math.ceil`, `max`, `if pad > 0`, TF-style
    "same" padding) runs as ordinary Python and its results enter the graph as constants. The graph
    module is then marked `gm.meta["fixflow_specialized"] = True`."""
    try:
        return _trace(model)
    except FrontendError as plain_error:
        bare_layer = (isinstance(model, torch.nn.Module) and type(model).__module__.startswith("torch.nn.")
                      and torch.fx.Tracer().is_leaf_module(model, ""))
        if not bare_layer:
            if example_inputs is not None:
                return _trace(model, example_inputs)
            raise plain_error from None
    gm = _trace(_LeafRoot(type(model).__name__.lower(), model))
    gm.__class__.__name__ = type(model).__name__
    return gm


def _trace(model: torch.nn.Module, example_inputs: tuple | None = None) -> torch.fx.GraphModule:
    tracer = LocatingTracer() if example_inputs is None else ShapeSpecializingTracer(example_inputs)
    try:
        graph = tracer.trace(model)
    except torch.fx.proxy.TraceError as e:
        msg = str(e)
        if "iterated" in msg or "iterate" in msg:  # fx's iteration message also mentions "control flow"
            msg = ("cannot trace the model: a traced tensor is iterated over (a for loop over a tensor, "
                   "unpacking it as `a, b = x`, or passing it as *args): its length is not known while tracing; "
                   "write the computation without iterating over the tensor")
        elif "control flow" in msg:
            msg = ("data-dependent control flow is not supported: a traced tensor is used in a Python "
                   "condition (if/while/bool/and/or); compute both branches or move the decision out of forward()")
        else:
            msg = f"cannot trace the model: {msg}"
        raise FrontendError(msg, traceback_location(e.__traceback__)) from None
    except FrontendError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure inside the user's forward
        raise FrontendError(f"cannot trace the model with torch.fx: {type(e).__name__}: {e}",
                            traceback_location(e.__traceback__)) from None
    finally:
        if isinstance(tracer, ShapeSpecializingTracer):
            tracer.values.clear()  # the example values of every node: free them now
    name = type(model).__name__
    gm = torch.fx.GraphModule(tracer.root, graph, name)
    if example_inputs is not None:
        gm.meta["fixflow_specialized"] = True
    return gm


# ---- tracing with static shapes ---------------------------------------------------------------------
_STATIC_TENSOR_ATTRS = frozenset({"shape", "ndim", "dtype", "device", "is_cuda", "layout", "is_quantized"})
_STATIC_TENSOR_METHODS = frozenset({"size", "dim", "numel", "nelement", "ndimension", "is_floating_point",
                                    "is_complex", "is_contiguous", "element_size", "get_device"})
_NO_VALUE = object()


class _ShapeProxy(torch.fx.Proxy):
    """A proxy whose tensor's static properties (shape, rank, dtype, ...) are Python values."""

    tracer: "ShapeSpecializingTracer"

    def __getattr__(self, k: str) -> Any:
        if k in _STATIC_TENSOR_ATTRS:
            value = self.tracer.value_of(self)
            if isinstance(value, torch.Tensor):
                return getattr(value, k)
        return super().__getattr__(k)

    def __len__(self) -> int:
        value = self.tracer.value_of(self)
        if isinstance(value, (torch.Tensor, tuple, list, torch.Size)):
            return len(value)
        return super().__len__()

    def __iter__(self) -> Any:
        # the parts of a split/chunk/unbind: their number is known; iterating over a tensor's rows is
        # still refused (it would freeze the example's batch size into the graph)
        value = self.tracer.value_of(self)
        if isinstance(value, (tuple, list)):
            return iter([self[i] for i in range(len(value))])
        return super().__iter__()


class ShapeSpecializingTracer(LocatingTracer):
    """A `LocatingTracer` that runs every traced operation on the example inputs as it records it, and
    answers shape queries with the example's values instead of recording them.

    Shape arithmetic then happens in Python on ints: the graph holds its results as literal arguments
    (`F.pad(x, [0, 1, 0, 1])`), which is exact for inputs of the example's shapes. Conditions on tensor
    values (`if x.sum() > 0`) still fail as data-dependent control flow."""

    def __init__(self, example_inputs: tuple):
        super().__init__()
        self.example_inputs = tuple(example_inputs)
        self.values: dict[torch.fx.Node, Any] = {}
        self._placeholders = 0
        self._evaluating = False  # running an operation on example values: fx's patches step aside

    def call_module(self, m, forward, args, kwargs):  # type: ignore[override]
        if self._evaluating:
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr, attr_val, parameter_proxy_cache):  # type: ignore[override]
        if self._evaluating:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def proxy(self, node: torch.fx.Node) -> torch.fx.Proxy:
        return _ShapeProxy(node, self)

    def value_of(self, proxy: torch.fx.Proxy) -> Any:
        """The example value of a proxy's node (`_NO_VALUE` when unknown)."""
        return self.values.get(proxy.node, _NO_VALUE)

    def _concrete(self, arg: Any) -> Any:
        def one(a: Any) -> Any:
            if isinstance(a, torch.fx.Proxy):
                v = self.values.get(a.node, _NO_VALUE)
                if v is _NO_VALUE:
                    raise _Unknown
                return v
            return a
        return torch.fx.node.map_aggregate(arg, one)

    def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None,  # type: ignore[override]
                     proxy_factory_fn=None):
        if kind == "call_method" and target in _STATIC_TENSOR_METHODS and args:
            try:
                cargs, ckwargs = self._concrete(tuple(args)), self._concrete(dict(kwargs))
            except _Unknown:
                cargs = None
            if cargs is not None and isinstance(cargs[0], torch.Tensor):
                return getattr(cargs[0], target)(*cargs[1:], **ckwargs)
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        if kind != "output":
            self.values[proxy.node] = self._evaluate(kind, target, args, kwargs)
        return proxy

    def _evaluate(self, kind: str, target: Any, args: tuple, kwargs: dict) -> Any:
        if kind == "placeholder":
            i, self._placeholders = self._placeholders, self._placeholders + 1
            if i < len(self.example_inputs):
                return self.example_inputs[i]
            return args[0] if args else _NO_VALUE
        try:
            cargs, ckwargs = self._concrete(tuple(args)), self._concrete(dict(kwargs))
        except _Unknown:
            return _NO_VALUE
        self._evaluating = True
        try:
            return self._run(kind, target, cargs, ckwargs)
        except Exception as e:  # noqa: BLE001 - the model itself fails on the example inputs
            src, _ = _user_frame(sys._getframe())
            raise FrontendError(f"running the model on the example inputs failed: {type(e).__name__}: {e}",
                                FileLineColLoc(*src) if src else UNKNOWN_LOC) from None
        finally:
            self._evaluating = False

    def _run(self, kind: str, target: Any, cargs: tuple, ckwargs: dict) -> Any:
        with torch.no_grad():
            if kind == "get_attr":
                return _raw_attr(self.root, str(target))
            if kind == "call_function":
                return target(*cargs, **ckwargs)
            if kind == "call_method":
                return getattr(cargs[0], target)(*cargs[1:], **ckwargs)
            if kind == "call_module":
                return self.root.get_submodule(target)(*cargs, **ckwargs)  # via call_module above
        return _NO_VALUE


def _raw_attr(root: torch.nn.Module, path: str) -> Any:
    """`root.<path>` without going through `nn.Module.__getattr__` (which fx patches while tracing)."""
    obj: Any = root
    for part in path.split("."):
        if isinstance(obj, torch.nn.Module):
            for store in (obj._parameters, obj._buffers, obj._modules, obj.__dict__):
                if part in store:
                    obj = store[part]
                    break
            else:
                obj = object.__getattribute__(obj, part)
        else:
            obj = getattr(obj, part)
    return obj


class _Unknown(Exception):
    """An argument without an example value (internal control flow of `ShapeSpecializingTracer`)."""


_SHAPE_METHODS = frozenset({"size", "dim", "numel", "nelement", "ndimension"})
_SHAPE_ATTRS = frozenset({"shape", "ndim", "dtype", "device", "is_cuda"})


def _node_inputs(node: torch.fx.Node) -> list[torch.fx.Node]:
    return list(node.all_input_nodes)


def is_shape_query(node: torch.fx.Node) -> bool:
    """`x.size()`, `x.shape`, `x.dim()`, ...: a static property of a tensor, not a data dependence."""
    if node.op == "call_method" and node.target in _SHAPE_METHODS:
        return True
    if node.op == "call_function" and node.target is getattr and len(node.args) > 1:
        return node.args[1] in _SHAPE_ATTRS
    if node.op == "call_function" and node.target is len:
        return True
    return False


class _Propagator(torch.fx.Interpreter):
    """Runs the graph once, recording shapes of tensors and values of static/constant nodes."""

    def __init__(self, gm: torch.fx.GraphModule):
        super().__init__(gm)
        self.const: set[torch.fx.Node] = set()
        self.static: set[torch.fx.Node] = set()

    def run_node(self, n: torch.fx.Node) -> Any:
        versions = {i: v._version for i in n.all_input_nodes
                    if isinstance(v := self.env.get(i), torch.Tensor)}
        try:
            value = super().run_node(n)
        except FrontendError:
            raise
        except Exception as e:  # noqa: BLE001
            raise FrontendError(f"running the traced model on the example inputs failed at "
                                f"'{n.format_node()}': {type(e).__name__}: {e}", location_of(n)) from None
        mutated = [i for i, ver in versions.items() if self.env[i]._version != ver]
        if mutated:
            self._record_aliases(n, mutated)
        ins = _node_inputs(n)
        if n.op == "get_attr" or (n.op in ("call_function", "call_method", "call_module")
                                  and all(i in self.const for i in ins)):
            self.const.add(n)
            n.meta["fixflow_const"] = value
        if isinstance(value, torch.Tensor):
            n.meta["fixflow_shape"] = tuple(value.shape)
            n.meta["fixflow_dtype"] = value.dtype
        elif n.op != "output":
            if is_shape_query(n) or all(i in self.static or i in self.const for i in ins):
                self.static.add(n)
            n.meta["fixflow_value"] = value
        return value


    def _record_aliases(self, n: torch.fx.Node, mutated: list[torch.fx.Node]) -> None:
        """For an in-place node: the mutated inputs, and the other live nodes sharing their memory.

        `fixflow_mutated`: the input nodes whose tensors `n` updated in place; `fixflow_aliases`: live
        nodes (used after `n`) holding the same view of that memory (they see the update);
        `fixflow_view_aliases`: live nodes holding another view of it (a reshaped or permuted alias).
        """
        dying = set(self.user_to_last_uses.get(n, ()))
        same: list[torch.fx.Node] = []
        other: list[torch.fx.Node] = []
        for a in mutated:
            t = self.env[a]
            key = (t.data_ptr(), tuple(t.shape), t.stride())
            ptr = t.untyped_storage().data_ptr()
            for m, v in self.env.items():
                if m is a or m is n or m in dying or m in mutated or not isinstance(v, torch.Tensor):
                    continue
                if v.untyped_storage().data_ptr() == ptr and v.untyped_storage().nbytes() > 0:
                    (same if (v.data_ptr(), tuple(v.shape), v.stride()) == key else other).append(m)
        n.meta["fixflow_mutated"] = mutated
        n.meta["fixflow_aliases"] = same
        n.meta["fixflow_view_aliases"] = other


def propagate(gm: torch.fx.GraphModule, inputs: tuple) -> tuple[set, set, Any]:
    """Run `gm` on `inputs` (no grad); returns (constant nodes, static nodes, the outputs)."""
    prop = _Propagator(gm)
    with torch.no_grad():
        out = prop.run(*inputs)
    return prop.const, prop.static, out
