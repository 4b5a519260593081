"""Conversion of a traced torch.fx graph to the `graph` dialect.

Handlers are registered per nn.Module type, per function and per tensor-method name; each takes the
converter, the fx node (and the module for module calls) and returns the result `Value`. Nodes whose
value is not a tensor (shape queries such as `x.size(0)`) are static Python values; nodes that depend
only on parameters and literals are folded to constants.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from fixflow.dialects._geometry import conv_pads, pad4, pair
from fixflow.dialects.builtin import FuncOp, ModuleOp, ReturnOp
from fixflow.dialects.graph import (SLICE_END, AdaptiveAvgPool2dOp, AddOp, AmaxOp, AminOp, AvgPool2dOp,
                                    BatchNormOp, ConcatOp, ConstantOp, Conv2dOp, ConvTranspose2dOp, DropoutOp,
                                    ExpandOp, FlattenOp, GeluOp, GroupNormOp, HardSigmoidOp, HardSwishOp, IdentityOp,
                                    LayerNormOp, LeakyReluOp, LinearOp, MatmulOp, MaxPool2dOp, MeanOp, MishOp, MulOp,
                                    PadOp, PreluOp, Relu6Op, ReluOp, ReshapeOp, RollOp, SigmoidOp, SiluOp, SliceOp,
                                    SoftmaxOp, SubOp, SumOp, TanhOp, TileOp, TransposeOp, UpsampleOp, NormalizeOp)
from fixflow.ir.attributes import DenseElementsAttr
from fixflow.ir.builder import Builder
from fixflow.ir.core import Value
from fixflow.ir.location import NameLoc
from fixflow.ir.types import TensorType, f32

from .errors import FrontendError
from .tracing import location_of

Handler = Callable[..., Value]
_MODULES: dict[type, Handler] = {}
_FUNCTIONS: dict[Any, Handler] = {}
_METHODS: dict[str, Handler] = {}
#: handlers of nodes whose value is a tuple of tensors (split, chunk, MultiheadAttention, max(dim), ...): they
#: return one callable per element, called (once) when that element is used
_MULTI_MODULES: dict[type, Handler] = {}
_MULTI_FUNCTIONS: dict[Any, Handler] = {}
_MULTI_METHODS: dict[str, Handler] = {}
#: Python functions known by (module, name), for libraries imported only by the user (torchvision)
_NAMED_FUNCTIONS: dict[tuple[str, str], Handler] = {}
_MISSING = object()
_INPLACE_OPERATORS = frozenset({operator.iadd, operator.isub, operator.imul, operator.itruediv})
#: folded constants up to this many elements are printed inline (`dense<...>`), larger ones as resources
_INLINE_MAX = 16


def _on_module(*types: type) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for t in types:
            _MODULES[t] = fn
        return fn
    return deco


def _on_function(*fns: Any) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for f in fns:
            if f is not None:
                _FUNCTIONS[f] = fn
        return fn
    return deco


def _on_method(*names: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for n in names:
            _METHODS[n] = fn
        return fn
    return deco


def _on_multi(modules: tuple = (), functions: tuple = (), methods: tuple = ()) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for t in modules:
            _MULTI_MODULES[t] = fn
        for f in functions:
            if f is not None:
                _MULTI_FUNCTIONS[f] = fn
        for n in methods:
            _MULTI_METHODS[n] = fn
        return fn
    return deco


def _on_named_function(module: str, name: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        _NAMED_FUNCTIONS[(module, name)] = fn
        return fn
    return deco


def _named(target: Any) -> Handler | None:
    if not callable(target):
        return None
    return _NAMED_FUNCTIONS.get((getattr(target, "__module__", None), getattr(target, "__name__", None)))


def _arg(node: torch.fx.Node, i: int, name: str, default: Any = _MISSING) -> Any:
    """Argument `i` (positional) or `name` (keyword) of an fx node."""
    if i < len(node.args):
        return node.args[i]
    if name in node.kwargs:
        return node.kwargs[name]
    if default is _MISSING:
        raise FrontendError(f"'{node.target}' is missing its argument '{name}'", location_of(node))
    return default


def _qualified(obj: Any) -> str:
    """A readable name of a torch callable or module class: `torch.topk`, `torch.nn.GRU`, `F.gelu`."""
    mod = getattr(obj, "__module__", None) or ""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)
    if "<locals>" in name:  # e.g. F.adaptive_max_pool2d, made by torch's boolean_dispatch
        name = getattr(obj, "__name__", name)
    if isinstance(obj, type) and mod.startswith("torch.nn.modules"):
        return f"torch.nn.{name}"
    if mod in ("torch._C._nn", "torch.nn.functional"):
        return f"torch.nn.functional.{name}"
    short = getattr(obj, "__name__", name)
    if mod.startswith("torch._C") or name.startswith("_VariableFunctionsClass.") or not mod:
        return f"torch.{short}" if hasattr(torch, short) else short
    if mod == "_operator":
        return f"operator.{name}"
    return f"{mod}.{name}"


def _display_name(fn: Any) -> str | None:
    """`F.relu`, `torch.cat`, `operator.add`: the public name of a registered function (None for aliases
    of private or in-place variants)."""
    for prefix, ns in (("F", F), ("torch", torch), ("operator", operator)):
        for name, value in vars(ns).items():
            inplace_op = ns is operator and name.startswith("i") and name[1:] in vars(operator)
            if value is fn and not name.startswith("_") and not name.endswith("_") and not inplace_op:
                return f"{prefix}.{name}"
    return None


def supported_ops() -> dict[str, list[str]]:
    """The supported modules, functions and tensor methods (for error messages and docs)."""
    mods = sorted({_qualified(t).replace("torch.nn.", "") for t in (*_MODULES, *_MULTI_MODULES)})
    fns = sorted({n for n in map(_display_name, (*_FUNCTIONS, *_MULTI_FUNCTIONS)) if n}
                 | {f"{m}.{n}" for m, n in _NAMED_FUNCTIONS})
    methods = sorted({m for m in (*_METHODS, *_MULTI_METHODS) if not m.endswith("_")})
    return {"modules": mods, "functions": fns, "methods": methods}


def _supported_text() -> str:
    s = supported_ops()
    return ("supported modules: " + ", ".join(s["modules"]) + "; functions: " + ", ".join(s["functions"])
            + "; tensor methods: " + ", ".join(s["methods"]))


def _where(node: torch.fx.Node, model_name: str) -> str:
    path = node.meta.get("fixflow_path", "")
    return f"module '{path}'" if path else f"{model_name}.forward"


class _Piece:
    """Element `index` of the tuple-valued node `node` (a model output)."""

    def __init__(self, node: torch.fx.Node, index: int):
        self.node, self.index = node, index


class Converter:
    """Builds one `func.func` from a traced GraphModule whose nodes carry shapes and values."""

    def __init__(self, gm: torch.fx.GraphModule, const: set, static: set, name: str):
        self.gm = gm
        self.const = const
        self.static = static
        self.name = name
        self.modules = dict(gm.named_modules())
        self.env: dict[torch.fx.Node, Value] = {}
        #: tuple-valued nodes: one callable per element (see `piece`)
        self.multi: dict[torch.fx.Node, list[Callable[[], Value | None]]] = {}
        self._pieces: dict[tuple[torch.fx.Node, int], Value | None] = {}
        self.params: dict[str, Value] = {}
        self.builder: Builder | None = None
        self.node: torch.fx.Node | None = None
        self.loc = None

    # ---- errors ---------------------------------------------------------------------------------
    def error(self, message: str, node: torch.fx.Node | None = None) -> FrontendError:
        node = node or self.node
        return FrontendError(message, location_of(node) if node is not None else None)

    def unsupported(self, what: str, detail: str = "") -> FrontendError:
        node = self.node
        msg = f"unsupported operation {what} in {_where(node, self.name)}"
        if detail:
            msg += f": {detail}"
        return self.error(f"{msg} ({_supported_text()})")

    # ---- values ---------------------------------------------------------------------------------
    def static_value(self, arg: Any) -> Any:
        """The Python value of an argument (literal, shape query, constant), recursively for lists."""
        if isinstance(arg, torch.fx.Node):
            if arg in self.static or arg in self.const:
                return arg.meta["fixflow_const"] if "fixflow_const" in arg.meta else arg.meta.get("fixflow_value")
            raise self.error(f"'{self.node.target}' needs a value known at import time for this argument, "
                             f"but '{arg.name}' is computed from the input")
        if isinstance(arg, (list, tuple)):
            return type(arg)(self.static_value(a) for a in arg)
        if isinstance(arg, slice):
            return slice(self.static_value(arg.start), self.static_value(arg.stop), self.static_value(arg.step))
        return arg

    def piece(self, node: torch.fx.Node, i: int) -> Value | None:
        """Element `i` of a tuple-valued node (built on first use)."""
        key = (node, i)
        if key not in self._pieces:
            pieces = self.multi[node]
            if not -len(pieces) <= i < len(pieces):
                raise self.error(f"index {i} is out of range for the {len(pieces)} results of '{node.name}'")
            saved = self.node, self.loc
            self.node, self.loc = node, location_of(node)   # built at the tuple node's location
            try:
                self._pieces[key] = pieces[i]()
            finally:
                self.node, self.loc = saved
        return self._pieces[key]

    def tensors(self, arg: Any) -> list[Value]:
        """The IR values of a list of tensors, or of all elements of a tuple-valued node (`x.chunk(2)`)."""
        if isinstance(arg, torch.fx.Node) and arg in self.multi:
            return [self.piece(arg, i) for i in range(len(self.multi[arg]))]
        if isinstance(arg, torch.fx.Node):
            raise self.error(f"'{self.node.target}' takes a list of tensors, got '{arg.name}'")
        return [self.x(t) for t in arg]

    def _batch_broadcast(self, node: torch.fx.Node) -> bool:
        """A constant broadcast to the batch in a shape-specialized trace (`token.expand(x.shape[0], -1, -1)`
        with the batch a literal): converted as an op so that it follows the batch."""
        if not (node.op == "call_method" and node.target in ("expand", "broadcast_to")
                or node.op == "call_function" and node.target is torch.broadcast_to):
            return False
        src = node.args[0]
        shape = node.meta.get("fixflow_shape")
        if not shape or not isinstance(src, torch.fx.Node) or "fixflow_shape" not in src.meta:
            return False
        in_shape = src.meta["fixflow_shape"]
        return len(in_shape) == len(shape) and in_shape[0] == 1 and \
            self.specialized_batch_input(shape[0]) is not None and shape[0] != 1

    def specialized_batch_input(self, size: int) -> torch.fx.Node | None:
        """In a shape-specialized trace (sizes are literals), the first model input when `size` is the batch
        of every input: a size-1 dimension grown to it follows the batch."""
        if not self.gm.meta.get("fixflow_specialized"):
            return None
        inputs = [n for n in self.gm.graph.nodes if n.op == "placeholder" and "fixflow_shape" in n.meta
                  and n.meta["fixflow_shape"]]
        if inputs and all(n.meta["fixflow_shape"][0] == size for n in inputs):
            return inputs[0]
        return None

    def is_tensor(self, arg: Any) -> bool:
        return isinstance(arg, torch.fx.Node) and "fixflow_shape" in arg.meta

    def shape(self, arg: torch.fx.Node) -> tuple[int, ...]:
        return arg.meta["fixflow_shape"]

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.node.meta["fixflow_shape"]

    def x(self, arg: Any) -> Value:
        """The IR value of a tensor argument; literals and constant nodes become `graph.constant`s."""
        if isinstance(arg, torch.fx.Node):
            v = self.env.get(arg)
            if v is not None:
                return v
            if arg in self.const or arg in self.static:
                value = arg.meta.get("fixflow_const", arg.meta.get("fixflow_value"))
                if isinstance(value, torch.Tensor):
                    key = str(arg.target) if arg.op == "get_attr" else None
                    if key is None and value.numel() > _INLINE_MAX:
                        key = location_of(arg).name
                    v = self.constant(value, key, hint=arg.name)
                    self.env[arg] = v
                    return v
                return self.scalar(value)
            if arg in self.multi:
                raise self.error(f"'{self.node.target}' takes a tensor, but '{arg.name}' is a tuple of tensors "
                                 "(index it or unpack it first)")
            raise self.error(f"internal error: '{arg.name}' used before it was converted", arg)
        if isinstance(arg, (bool, int, float)):
            return self.scalar(arg)
        raise self.error(f"'{self.node.target}': expected a tensor operand, got {type(arg).__name__} {arg!r}")

    def scalar(self, value: Any) -> Value:
        """A rank-0 float32 constant."""
        arr = np.asarray(float(value), dtype=np.float32)
        op = ConstantOp.build(value=DenseElementsAttr(TensorType((), f32), arr), location=self.loc)
        self.builder.insert(op)
        op.result.name_hint = f"{self.node.name}_c"
        return op.result

    def constant(self, tensor: torch.Tensor, key: str | None, hint: str | None = None) -> Value:
        """A float32 constant: a `dense_resource<key>` when keyed (cached per key), else inline."""
        if key is not None and key in self.params:
            return self.params[key]
        arr = tensor.detach().to(torch.float32).contiguous().numpy()
        loc = NameLoc(key, self.loc.child) if key is not None else self.loc
        op = ConstantOp.from_array(arr, key=key, location=loc)
        self.builder.insert(op)
        op.result.name_hint = (key or hint or "cst").replace(".", "_")
        if key is not None:
            self.params[key] = op.result
        return op.result

    def param(self, module: nn.Module, attr: str) -> Value | None:
        """A parameter/buffer of the current module call as a constant keyed `<module path>.<attr>`."""
        t = getattr(module, attr, None)
        if t is None:
            return None
        return self.constant(t, f"{self.node.target}.{attr}")

    def emit(self, cls: type, *operands: Any, suffix: str | None = None, **attrs: Any) -> Value:
        """Build `cls` at the current node's location and append it; returns its result."""
        name = self.node.name if suffix is None else f"{self.node.name}_{suffix}"
        return self.builder.emit(cls, *operands, name=name, location=self.loc, verify=False, **attrs)

    # ---- driver ---------------------------------------------------------------------------------
    def convert(self) -> ModuleOp:
        graph = self.gm.graph
        placeholders = [n for n in graph.nodes if n.op == "placeholder" and not self._static_input(n)]
        in_types = []
        for n in placeholders:
            if str(n.target).startswith("*"):
                raise self.error(f"forward() takes its inputs as '{n.target}'; fixflow needs one named parameter "
                                 "per tensor input (forward(self, x, y))", n)
            if "fixflow_shape" not in n.meta:
                raise self.error(f"input '{n.name}' must be a tensor (got {type(n.meta.get('fixflow_value')).__name__})",
                                 n)
            self._check_dtype(n)
            in_types.append(TensorType(n.meta["fixflow_shape"], f32))
        module = ModuleOp.empty()
        func = FuncOp.create_function(self.name, in_types, [])
        module.body.append(func)
        self.builder = Builder.at_end(func.body)
        for n, arg in zip(placeholders, func.args):
            arg.name_hint = n.name
            self.env[n] = arg
        results: list[Value] = []
        for node in graph.nodes:
            self.node = node
            self.loc = location_of(node)
            if node.op == "placeholder":
                continue
            if node.op == "output":
                results = [self.piece(a.node, a.index) if isinstance(a, _Piece) else self.x(a)
                           for a in self._flatten_outputs(node.args[0])]
                continue
            if (node in self.static or node in self.const) and not self._batch_broadcast(node):
                continue  # a Python value or a constant, materialized where a tensor is needed
            self._convert_node(node)
        self.node = None
        self.builder.insert(ReturnOp.build(results, location=func.location))
        func.update_function_type()
        return module

    def _static_input(self, n: torch.fx.Node) -> bool:
        """A forward() parameter left at its non-tensor default, or empty unused *args/**kwargs: a Python value."""
        if "fixflow_shape" in n.meta:
            return False
        value = n.meta.get("fixflow_value")
        if str(n.target).startswith("*"):
            return isinstance(value, (list, tuple, dict)) and not value
        return bool(n.args)  # fx keeps the default value as the placeholder's argument

    def _flatten_outputs(self, out: Any) -> list[Any]:
        if isinstance(out, (list, tuple)):
            return [x for o in out for x in self._flatten_outputs(o)]
        if isinstance(out, torch.fx.Node) and out in self.multi:
            return [_Piece(out, i) for i in range(len(self.multi[out]))]
        if isinstance(out, torch.fx.Node) and "fixflow_shape" not in out.meta:
            value = out.meta.get("fixflow_value")
            raise self.error(f"the model returns '{out.name}', a Python {type(value).__name__} ({value!r}) computed "
                             "while tracing (e.g. x.shape[0]), not a tensor: fixflow would freeze it to its value for "
                             "the example inputs; return tensors only", out)
        if isinstance(out, torch.fx.Node) or isinstance(out, (int, float)):
            return [out]
        raise self.error(f"the model must return a tensor or a tuple/list of tensors, got {type(out).__name__}")

    def _check_dtype(self, node: torch.fx.Node) -> None:
        dt = node.meta.get("fixflow_dtype")
        if dt is not None and dt != torch.float32:
            what = "input" if node.op == "placeholder" else f"'{node.name}'"
            raise self.error(f"{what} has dtype {dt}; fixflow imports float32 models "
                             "(call model.float() and pass float32 example inputs)", node)

    def _convert_node(self, node: torch.fx.Node) -> None:
        autograd_fn = node.meta.get("fixflow_autograd")
        if autograd_fn is not None:
            raise self.unsupported(f"custom autograd function '{autograd_fn}'",
                                   "its forward would be traced without its backward and any code outside torch")
        if self._convert_multi(node):
            return
        if node.op == "call_module":
            known = type(self.modules[node.target]) in _MODULES
        elif node.op == "call_function":
            known = node.target in _FUNCTIONS or _named(node.target) is not None
        else:
            known = node.target in _METHODS
        if not known:
            raise self.unsupported(self._describe(node))
        if "fixflow_shape" not in node.meta:
            kind = type(node.meta.get("fixflow_value")).__name__
            raise self.unsupported(self._describe(node), f"this use returns a {kind}, not a tensor")
        self._check_dtype(node)
        if node.op == "call_module":
            mod = self.modules[node.target]
            handler = _MODULES.get(type(mod))
            if handler is None:
                raise self.unsupported(self._describe(node))
            value = handler(self, node, mod)
            inplace = bool(getattr(mod, "inplace", False))
        elif node.op == "call_function":
            handler = _FUNCTIONS.get(node.target) or _named(node.target)
            if handler is None:
                raise self.unsupported(self._describe(node))
            value = handler(self, node)
            name = getattr(node.target, "__name__", "")
            inplace = bool(node.kwargs.get("inplace")) or (name.endswith("_") and not name.endswith("__")) \
                or node.target in _INPLACE_OPERATORS
        elif node.op == "call_method":
            handler = _METHODS.get(node.target)
            if handler is None:
                raise self.unsupported(self._describe(node))
            value = handler(self, node)
            inplace = node.target.endswith("_") and not node.target.endswith("__")
        else:  # pragma: no cover - get_attr nodes are constants
            raise self.unsupported(self._describe(node))
        got = value.type.shape if isinstance(value.type, TensorType) else None
        if got != tuple(self.out_shape):
            raise self.error(f"internal error converting {self._describe(node)}: the IR shape {got} differs "
                             f"from PyTorch's {tuple(self.out_shape)}")
        self.env[node] = value
        self._update_aliases(node, value, inplace)

    def _convert_multi(self, node: torch.fx.Node) -> bool:
        """A tuple-valued node with a multi handler (recorded in `multi`), or an unused element of one: True."""
        if node.target is operator.getitem and node.args and node.args[0] in self.multi \
                and "fixflow_shape" not in node.meta and not node.users:
            return True  # an unused non-tensor element (MultiheadAttention's weights when need_weights=False)
        if node.target is operator.getitem and node.args and node.args[0] in self.multi \
                and isinstance(node.args[1], slice):
            src = node.args[0]
            picked = range(len(self.multi[src]))[self.static_value(node.args[1])]
            self.multi[node] = [lambda j=j: self.piece(src, j) for j in picked]
            return True
        value = node.meta.get("fixflow_value")
        if not isinstance(value, (tuple, list)) or not value or not all(
                v is None or isinstance(v, torch.Tensor) for v in value):
            return False
        if node.op == "call_module":
            mod = self.modules[node.target]
            handler = _MULTI_MODULES.get(type(mod))
            args: tuple = (mod,)
        elif node.op == "call_function":
            handler, args = _MULTI_FUNCTIONS.get(node.target), ()
        else:
            handler, args = _MULTI_METHODS.get(node.target), ()
        if handler is None:
            return False
        for v in value:
            if isinstance(v, torch.Tensor) and v.dtype != torch.float32 and v.dtype != torch.int64:
                raise self.error(f"'{node.name}' has a result of dtype {v.dtype}; fixflow imports float32 models")
        self.multi[node] = handler(self, node, *args)
        return True

    def _update_aliases(self, node: torch.fx.Node, value: Value, inplace: bool) -> None:
        """After an in-place op, later uses of the mutated tensor and of its live aliases see `value`."""
        mutated = node.meta.get("fixflow_mutated", [])
        target = node.args[0] if node.args and isinstance(node.args[0], torch.fx.Node) else None
        if any(m is not target for m in mutated):
            other = next(m for m in mutated if m is not target)
            raise self.error(f"{self._describe(node)} in {_where(node, self.name)} updates '{other.name}' in place, "
                             "which is not its first argument; write it out of place")
        views = node.meta.get("fixflow_view_aliases", [])
        if views:
            raise self.error(f"{self._describe(node)} in {_where(node, self.name)} updates '{target.name}' in place, "
                             f"which also changes '{views[0].name}' (another view of the same memory, used later); "
                             "write it out of place (y = y + 1 rather than y += 1)")
        if (inplace or mutated) and target is not None:
            self.env[target] = value  # later uses of the mutated tensor see the result
            for alias in node.meta.get("fixflow_aliases", []):
                self.env[alias] = value

    def _describe(self, node: torch.fx.Node) -> str:
        if node.op == "call_module":
            return f"'{_qualified(type(self.modules[node.target]))}'"
        if node.op == "call_method":
            return f"'Tensor.{node.target}'"
        if node.target is operator.getitem:
            return "'operator.getitem' (tensor indexing/slicing)"
        return f"'{_qualified(node.target)}'"


# ======================= handlers ===================================================================
# ---- convolution and linear ------------------------------------------------------------------------
@_on_module(nn.Conv2d)
def _conv2d_module(cv: Converter, node: torch.fx.Node, m: nn.Conv2d) -> Value:
    x = cv.x(node.args[0])
    if m.padding_mode != "zeros":
        if m.padding_mode not in ("reflect", "replicate"):
            raise cv.unsupported("'torch.nn.Conv2d'", f"padding_mode='{m.padding_mode}' (use zeros, reflect "
                                 "or replicate)")
        x = cv.emit(PadOp, x, suffix="pad", pads=tuple(m._reversed_padding_repeated_twice), mode=m.padding_mode)
        pads = (0, 0, 0, 0)
    else:
        pads = conv_pads(m.padding, m.kernel_size, m.dilation)
    return cv.emit(Conv2dOp, x, cv.param(m, "weight"), cv.param(m, "bias"), stride=pair(m.stride),
                   padding=pads, dilation=pair(m.dilation), groups=m.groups)


@_on_function(F.conv2d, torch.conv2d)
def _conv2d_fn(cv: Converter, node: torch.fx.Node) -> Value:
    x, w = cv.x(_arg(node, 0, "input")), cv.x(_arg(node, 1, "weight"))
    b = _arg(node, 2, "bias", None)
    stride = cv.static_value(_arg(node, 3, "stride", 1))
    padding = cv.static_value(_arg(node, 4, "padding", 0))
    dilation = cv.static_value(_arg(node, 5, "dilation", 1))
    groups = cv.static_value(_arg(node, 6, "groups", 1))
    kernel = w.type.shape[2:]
    return cv.emit(Conv2dOp, x, w, None if b is None else cv.x(b), stride=pair(stride),
                   padding=conv_pads(padding, kernel, dilation), dilation=pair(dilation), groups=groups)


@_on_module(nn.ConvTranspose2d)
def _conv_transpose2d_module(cv: Converter, node: torch.fx.Node, m: nn.ConvTranspose2d) -> Value:
    if _arg(node, 1, "output_size", None) is not None:
        raise cv.unsupported("'torch.nn.ConvTranspose2d'", "the output_size argument (set output_padding instead)")
    if m.padding_mode != "zeros":
        raise cv.unsupported("'torch.nn.ConvTranspose2d'", f"padding_mode='{m.padding_mode}'")
    return cv.emit(ConvTranspose2dOp, cv.x(node.args[0]), cv.param(m, "weight"), cv.param(m, "bias"),
                   stride=pair(m.stride), padding=pad4(m.padding), output_padding=pair(m.output_padding),
                   dilation=pair(m.dilation), groups=m.groups)


@_on_function(F.conv_transpose2d, torch.conv_transpose2d)
def _conv_transpose2d_fn(cv: Converter, node: torch.fx.Node) -> Value:
    x, w = cv.x(_arg(node, 0, "input")), cv.x(_arg(node, 1, "weight"))
    b = _arg(node, 2, "bias", None)
    sv = cv.static_value
    return cv.emit(ConvTranspose2dOp, x, w, None if b is None else cv.x(b),
                   stride=pair(sv(_arg(node, 3, "stride", 1))), padding=pad4(sv(_arg(node, 4, "padding", 0))),
                   output_padding=pair(sv(_arg(node, 5, "output_padding", 0))),
                   groups=sv(_arg(node, 6, "groups", 1)), dilation=pair(sv(_arg(node, 7, "dilation", 1))))


@_on_module(nn.Linear)
def _linear_module(cv: Converter, node: torch.fx.Node, m: nn.Linear) -> Value:
    return cv.emit(LinearOp, cv.x(node.args[0]), cv.param(m, "weight"), cv.param(m, "bias"))


@_on_function(F.linear)
def _linear_fn(cv: Converter, node: torch.fx.Node) -> Value:
    b = _arg(node, 2, "bias", None)
    return cv.emit(LinearOp, cv.x(_arg(node, 0, "input")), cv.x(_arg(node, 1, "weight")),
                   None if b is None else cv.x(b))


@_on_function(torch.matmul, operator.matmul, torch.mm, torch.bmm)
@_on_method("matmul", "mm", "bmm")
def _matmul(cv: Converter, node: torch.fx.Node) -> Value:
    rhs = node.args[1] if len(node.args) > 1 else node.kwargs.get("other", node.kwargs.get("mat2"))
    return cv.emit(MatmulOp, cv.x(_arg(node, 0, "input")), cv.x(rhs))


# ---- normalization ------------------------------------------------------------------------------
@_on_module(nn.BatchNorm1d, nn.BatchNorm2d)
def _batch_norm_module(cv: Converter, node: torch.fx.Node, m: nn.modules.batchnorm._BatchNorm) -> Value:
    if m.running_mean is None or m.running_var is None:
        raise cv.unsupported(f"'{_qualified(type(m))}'", "track_running_stats=False normalizes with the "
                             "statistics of each batch, which has no inference form")
    c = m.num_features
    gamma = cv.param(m, "weight") if m.affine else cv.constant(torch.ones(c), None, hint=f"{node.name}_gamma")
    beta = cv.param(m, "bias") if m.affine else cv.constant(torch.zeros(c), None, hint=f"{node.name}_beta")
    return cv.emit(BatchNormOp, cv.x(node.args[0]), cv.param(m, "running_mean"), cv.param(m, "running_var"),
                   gamma, beta, eps=float(m.eps))


@_on_function(F.batch_norm)
def _batch_norm_fn(cv: Converter, node: torch.fx.Node) -> Value:
    x = _arg(node, 0, "input")
    if cv.static_value(_arg(node, 5, "training", False)):
        raise cv.unsupported("'torch.nn.functional.batch_norm'", "training=True uses batch statistics")
    c = cv.shape(x)[1]
    w, b = _arg(node, 3, "weight", None), _arg(node, 4, "bias", None)
    gamma = cv.x(w) if w is not None else cv.constant(torch.ones(c), None, hint=f"{node.name}_gamma")
    beta = cv.x(b) if b is not None else cv.constant(torch.zeros(c), None, hint=f"{node.name}_beta")
    return cv.emit(BatchNormOp, cv.x(x), cv.x(_arg(node, 1, "running_mean")), cv.x(_arg(node, 2, "running_var")),
                   gamma, beta, eps=float(cv.static_value(_arg(node, 7, "eps", 1e-5))))


# ---- activations --------------------------------------------------------------------------------
_UNARY_MODULES = {nn.ReLU: ReluOp, nn.ReLU6: Relu6Op, nn.Sigmoid: SigmoidOp, nn.Tanh: TanhOp, nn.SiLU: SiluOp,
                  nn.Hardsigmoid: HardSigmoidOp, nn.Hardswish: HardSwishOp}
_UNARY_FUNCTIONS = {F.relu: ReluOp, torch.relu: ReluOp, F.relu_: ReluOp, torch.relu_: ReluOp, F.relu6: Relu6Op,
                    torch.sigmoid: SigmoidOp, F.sigmoid: SigmoidOp, torch.tanh: TanhOp, F.tanh: TanhOp,
                    F.silu: SiluOp, F.hardsigmoid: HardSigmoidOp, F.hardswish: HardSwishOp}
_UNARY_METHODS = {"relu": ReluOp, "relu_": ReluOp, "sigmoid": SigmoidOp, "sigmoid_": SigmoidOp, "tanh": TanhOp,
                  "tanh_": TanhOp}


@_on_module(*_UNARY_MODULES)
def _unary_module(cv: Converter, node: torch.fx.Node, m: nn.Module) -> Value:
    return cv.emit(_UNARY_MODULES[type(m)], cv.x(node.args[0]))


@_on_function(*_UNARY_FUNCTIONS)
def _unary_fn(cv: Converter, node: torch.fx.Node) -> Value:
    return cv.emit(_UNARY_FUNCTIONS[node.target], cv.x(_arg(node, 0, "input")))


@_on_method(*_UNARY_METHODS)
def _unary_method(cv: Converter, node: torch.fx.Node) -> Value:
    return cv.emit(_UNARY_METHODS[node.target], cv.x(node.args[0]))


def _clamp_to_op(cv: Converter, what: str, lo: Any, hi: Any, x: Any) -> Value:
    if lo == 0 and hi is None:
        return cv.emit(ReluOp, cv.x(x))
    if lo == 0 and hi == 6:
        return cv.emit(Relu6Op, cv.x(x))
    raise cv.unsupported(what, f"only the ranges [0, inf) (relu) and [0, 6] (relu6) are supported, got [{lo}, {hi}]")


@_on_module(nn.Hardtanh)
def _hardtanh_module(cv: Converter, node: torch.fx.Node, m: nn.Hardtanh) -> Value:
    return _clamp_to_op(cv, f"'{_qualified(type(m))}'", m.min_val, m.max_val, node.args[0])


@_on_function(F.hardtanh)
def _hardtanh_fn(cv: Converter, node: torch.fx.Node) -> Value:
    sv = cv.static_value
    return _clamp_to_op(cv, "'torch.nn.functional.hardtanh'", sv(_arg(node, 1, "min_val", -1.0)),
                        sv(_arg(node, 2, "max_val", 1.0)), _arg(node, 0, "input"))


@_on_function(torch.clamp, torch.clip)
@_on_method("clamp", "clip", "clamp_")
def _clamp(cv: Converter, node: torch.fx.Node) -> Value:
    sv = cv.static_value
    return _clamp_to_op(cv, f"'{node.target if isinstance(node.target, str) else 'torch.clamp'}'",
                        sv(_arg(node, 1, "min", None)), sv(_arg(node, 2, "max", None)), _arg(node, 0, "input"))


@_on_module(nn.LeakyReLU)
def _leaky_relu_module(cv: Converter, node: torch.fx.Node, m: nn.LeakyReLU) -> Value:
    return cv.emit(LeakyReluOp, cv.x(node.args[0]), alpha=float(m.negative_slope))


@_on_function(F.leaky_relu)
def _leaky_relu_fn(cv: Converter, node: torch.fx.Node) -> Value:
    return cv.emit(LeakyReluOp, cv.x(_arg(node, 0, "input")),
                   alpha=float(cv.static_value(_arg(node, 1, "negative_slope", 0.01))))


@_on_module(nn.PReLU)
def _prelu_module(cv: Converter, node: torch.fx.Node, m: nn.PReLU) -> Value:
    return cv.emit(PreluOp, cv.x(node.args[0]), cv.param(m, "weight"))


@_on_function(F.prelu, torch.prelu)
def _prelu_fn(cv: Converter, node: torch.fx.Node) -> Value:
    return cv.emit(PreluOp, cv.x(_arg(node, 0, "input")), cv.x(_arg(node, 1, "weight")))


# ---- pooling --------------------------------------------------------------------------------------
def _max_pool(cv: Converter, x: Any, kernel: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: Any,
              return_indices: Any) -> Value:
    if return_indices:
        raise cv.unsupported("'max_pool2d'", "return_indices=True")
    return cv.emit(MaxPool2dOp, cv.x(x), kernel=pair(kernel), stride=pair(stride or kernel),
                   padding=pad4(padding), dilation=pair(dilation), ceil_mode=bool(ceil_mode))


@_on_module(nn.MaxPool2d)
def _max_pool_module(cv: Converter, node: torch.fx.Node, m: nn.MaxPool2d) -> Value:
    return _max_pool(cv, node.args[0], m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode,
                     m.return_indices)


@_on_function(F.max_pool2d, getattr(F, "_max_pool2d", None), torch.max_pool2d)
def _max_pool_fn(cv: Converter, node: torch.fx.Node) -> Value:
    sv = cv.static_value
    return _max_pool(cv, _arg(node, 0, "input"), sv(_arg(node, 1, "kernel_size")), sv(_arg(node, 2, "stride", None)),
                     sv(_arg(node, 3, "padding", 0)), sv(_arg(node, 4, "dilation", 1)),
                     sv(_arg(node, 5, "ceil_mode", False)), sv(_arg(node, 6, "return_indices", False)))


def _avg_pool(cv: Converter, x: Any, kernel: Any, stride: Any, padding: Any, ceil_mode: Any, include_pad: Any,
              divisor: Any) -> Value:
    return cv.emit(AvgPool2dOp, cv.x(x), kernel=pair(kernel), stride=pair(stride or kernel), padding=pad4(padding),
                   ceil_mode=bool(ceil_mode), count_include_pad=bool(include_pad),
                   divisor_override=None if divisor is None else int(divisor))


@_on_module(nn.AvgPool2d)
def _avg_pool_module(cv: Converter, node: torch.fx.Node, m: nn.AvgPool2d) -> Value:
    return _avg_pool(cv, node.args[0], m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad,
                     m.divisor_override)


@_on_function(F.avg_pool2d, torch.avg_pool2d if hasattr(torch, "avg_pool2d") else None)
def _avg_pool_fn(cv: Converter, node: torch.fx.Node) -> Value:
    sv = cv.static_value
    return _avg_pool(cv, _arg(node, 0, "input"), sv(_arg(node, 1, "kernel_size")), sv(_arg(node, 2, "stride", None)),
                     sv(_arg(node, 3, "padding", 0)), sv(_arg(node, 4, "ceil_mode", False)),
                     sv(_arg(node, 5, "count_include_pad", True)), sv(_arg(node, 6, "divisor_override", None)))


@_on_module(nn.AdaptiveAvgPool2d)
def _adaptive_avg_module(cv: Converter, node: torch.fx.Node, m: nn.Module) -> Value:
    return cv.emit(AdaptiveAvgPool2dOp, cv.x(node.args[0]), output_size=tuple(cv.out_shape[-2:]))


@_on_function(F.adaptive_avg_pool2d)
def _adaptive_avg_fn(cv: Converter, node: torch.fx.Node) -> Value:
    return cv.emit(AdaptiveAvgPool2dOp, cv.x(_arg(node, 0, "input")), output_size=tuple(cv.out_shape[-2:]))


# ---- no-ops -----------------------------------------------------------------------------------------
@_on_module(nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)
def _dropout_module(cv: Converter, node: torch.fx.Node, m: nn.Module) -> Value:
    return cv.emit(DropoutOp, cv.x(node.args[0]), p=float(m.p))


@_on_function(F.dropout, F.dropout2d, F.dropout1d)
def _dropout_fn(cv: Converter, node: torch.fx.Node) -> Value:
    if cv.static_value(_arg(node, 2, "training", True)):
        raise cv.unsupported(f"'{_qualified(node.target)}'", "training=True drops values at random even in "
                             "eval mode; pass training=self.training")
    return cv.emit(DropoutOp, cv.x(_arg(node, 0, "input")), p=float(cv.static_value(_arg(node, 1, "p", 0.5))))


@_on_module(nn.Identity)
def _identity_module(cv: Converter, node: torch.fx.Node, m: nn.Module) -> Value:
    return cv.emit(IdentityOp, cv.x(node.args[0]))


@_on_method("contiguous", "clone", "detach", "float", "to", "type_as", "cpu")
@_on_function(torch.clone)
def _alias(cv: Converter, node: torch.fx.Node) -> Value:
    # dtype changes other than to float32 are caught by the dtype check of the node's result
    return cv.x(node.args[0])


# ---- shapes -------------------------------------------------------------------------------------------
def _reshape(cv: Converter, x: Any, requested: Any = None) -> Value:
    """Reshape to the traced output shape, with 0 for a kept batch dim and -1 where the user wrote it."""
    in_shape, out = cv.shape(x), list(cv.out_shape)
    req = list(requested) if isinstance(requested, (list, tuple)) and len(requested) == len(out) else None
    shape = list(out)
    if req is not None and -1 in req:
        shape[req.index(-1)] = -1
    if in_shape and out and out[0] == in_shape[0] and shape[0] != -1:
        shape[0] = 0
    return cv.emit(ReshapeOp, cv.x(x), shape=tuple(shape))


def _shape_args(cv: Converter, node: torch.fx.Node, start: int, kw: str) -> Any:
    args = node.args[start:]
    if len(args) == 1 and isinstance(args[0], (list, tuple, torch.fx.Node)):
        args = args[0]
    elif not args:
        args = node.kwargs.get(kw, ())
    value = cv.static_value(args)
    return tuple(value) if isinstance(value, (list, tuple, torch.Size)) else (value,)


@_on_method("view", "reshape")
def _view_method(cv: Converter, node: torch.fx.Node) -> Value:
    return _reshape(cv, node.args[0], _shape_args(cv, node, 1, "shape" if node.target == "reshape" else "size"))


@_on_function(torch.reshape)
def _reshape_fn(cv: Converter, node: torch.fx.Node) -> Value:
    return _reshape(cv, _arg(node, 0, "input"), cv.static_value(_arg(node, 1, "shape")))


@_on_function(torch.squeeze, torch.unsqueeze)
@_on_method("squeeze", "unsqueeze")
def _squeeze(cv: Converter, node: torch.fx.Node) -> Value:
    return _reshape(cv, node.args[0])


@_on_module(nn.Unflatten)
def _unflatten_module(cv: Converter, node: torch.fx.Node, m: nn.Module) -> Value:
    return _reshape(cv, node.args[0])


@_on_module(nn.Flatten)
def _flatten_module(cv: Converter, node: torch.fx.Node, m: nn.Flatten) -> Value:
    return cv.emit(FlattenOp, cv.x(node.args[0]), start_dim=m.start_dim, end_dim=m.end_dim)


@_on_function(torch.flatten)
@_on_method("flatten")
def _flatten(cv: Converter, node: torch.fx.Node) -> Value:
    sv = cv.static_value
    return cv.emit(FlattenOp, cv.x(_arg(node, 0, "input")), start_dim=sv(_arg(node, 1, "start_dim", 0)),
                   end_dim=sv(_arg(node, 2, "end_dim", -1)))


@_on_function(torch.permute)
@_on_method("permute")
def _permute(cv: Converter, node: torch.fx.Node) -> Value:
    x = node.args[0]
    rank = len(cv.shape(x))
    dims = _shape_args(cv, node, 1, "dims")
    return cv.emit(TransposeOp, cv.x(x), perm=tuple(d % rank for d in dims))


@_on_function(torch.transpose)
@_on_method("transpose")
def _transpose(cv: Converter, node: torch.fx.Node) -> Value:
    x = node.args[0]
    rank = len(cv.shape(x))
    d0 = cv.static_value(_arg(node, 1, "dim0")) % rank
    d1 = cv.static_value(_arg(node, 2, "dim1")) % rank
    perm = list(range(rank))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return cv.emit(TransposeOp, cv.x(x), perm=tuple(perm))


@_on_function(torch.t)
@_on_method("t")
def _t(cv: Converter, node: torch.fx.Node) -> Value:
    x = node.args[0]
    if len(cv.shape(x)) < 2:
        return cv.x(x)
    return cv.emit(TransposeOp, cv.x(x), perm=(1, 0))


@_on_function(torch.cat, torch.concat, getattr(torch, "concatenate", None))
def _cat(cv: Converter, node: torch.fx.Node) -> Value:
    tensors = _arg(node, 0, "tensors")
    dim = cv.static_value(node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", node.kwargs.get("axis", 0)))
    rank = len(cv.out_shape)
    return cv.emit(ConcatOp, cv.tensors(tensors), axis=dim % rank)


@_on_function(torch.mean)
@_on_method("mean")
def _mean(cv: Converter, node: torch.fx.Node) -> Value:
    x = node.args[0]
    rank = len(cv.shape(x))
    dim = cv.static_value(_arg(node, 1, "dim", None))
    keepdim = bool(cv.static_value(_arg(node, 2, "keepdim", False)))
    if node.kwargs.get("dtype") not in (None, torch.float32):
        raise cv.unsupported("'mean'", "dtype other than float32")
    axes = tuple(range(rank)) if dim is None else ((dim,) if isinstance(dim, int) else tuple(dim))
    return cv.emit(MeanOp, cv.x(x), axes=tuple(sorted(a % rank for a in axes)), keepdim=keepdim)


def _softmax_dim(dim: Any, rank: int) -> int:
    if dim is None:  # PyTorch's legacy implicit dimension
        dim = 0 if rank in (0, 1, 3) else 1
    return int(dim) % rank


@_on_module(nn.Softmax)
def _softmax_module(cv: Converter, node: torch.fx.Node, m: nn.Softmax) -> Value:
    return cv.emit(SoftmaxOp, cv.x(node.args[0]), axis=_softmax_dim(m.dim, len(cv.out_shape)))


@_on_function(F.softmax, torch.softmax)
@_on_method("softmax")
def _softmax(cv: Converter, node: torch.fx.Node) -> Value:
    if _arg(node, 3 if node.target is F.softmax else 2, "dtype", None) not in (None, torch.float32):
        raise cv.unsupported("'softmax'", "dtype other than float32")
    dim = cv.static_value(_arg(node, 1, "dim", None))
    return cv.emit(SoftmaxOp, cv.x(node.args[0]), axis=_softmax_dim(dim, len(cv.out_shape)))


# ---- padding and resizing -------------------------------------------------------------------------------
_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "replicate"}


@_on_module(nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d)
def _pad_module(cv: Converter, node: torch.fx.Node, m: nn.Module) -> Value:
    mode = {nn.ReflectionPad2d: "reflect", nn.ReplicationPad2d: "replicate"}.get(type(m), "constant")
    value = float(getattr(m, "value", 0.0) or 0.0)
    return cv.emit(PadOp, cv.x(node.args[0]), pads=tuple(m.padding), mode=mode, value=value)


@_on_function(F.pad)
def _pad_fn(cv: Converter, node: torch.fx.Node) -> Value:
    sv = cv.static_value
    mode = sv(_arg(node, 2, "mode", "constant"))
    if mode not in _PAD_MODES:
        raise cv.unsupported("'torch.nn.functional.pad'", f"mode='{mode}' (use constant, reflect or replicate)")
    value = sv(_arg(node, 3, "value", None))
    return cv.emit(PadOp, cv.x(_arg(node, 0, "input")), pads=tuple(sv(_arg(node, 1, "pad"))), mode=mode,
                   value=float(value or 0.0))


def _upsample(cv: Converter, what: str, x: Any, scale_factor: Any, mode: str, align_corners: Any,
              recompute: Any = None, antialias: Any = False) -> Value:
    if mode not in ("nearest", "bilinear"):
        raise cv.unsupported(what, f"mode='{mode}' (use nearest or bilinear)")
    if antialias:
        raise cv.unsupported(what, "antialias=True")
    rank = len(cv.shape(x))
    if rank != 4:
        raise cv.unsupported(what, f"a rank-{rank} input (NCHW images only)")
    sf = None
    if scale_factor is not None and not recompute:
        sf = tuple(float(s) for s in (scale_factor if isinstance(scale_factor, (list, tuple))
                                      else (scale_factor, scale_factor)))
    return cv.emit(UpsampleOp, cv.x(x), mode=mode, size=tuple(cv.out_shape[2:]),
                   align_corners=bool(align_corners) if mode == "bilinear" else False, scale_factor=sf)


@_on_module(nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d)
def _upsample_module(cv: Converter, node: torch.fx.Node, m: nn.Upsample) -> Value:
    return _upsample(cv, f"'{_qualified(type(m))}'", node.args[0], m.scale_factor, m.mode,
                     m.align_corners, getattr(m, "recompute_scale_factor", None))


@_on_function(F.interpolate, F.upsample)
def _interpolate(cv: Converter, node: torch.fx.Node) -> Value:
    sv = cv.static_value
    return _upsample(cv, f"'{_qualified(node.target)}'", _arg(node, 0, "input"),
                     sv(_arg(node, 2, "scale_factor", None)), sv(_arg(node, 3, "mode", "nearest")),
                     sv(_arg(node, 4, "align_corners", None)), sv(_arg(node, 5, "recompute_scale_factor", None)),
                     sv(node.kwargs.get("antialias", False)))


@_on_function(F.upsample_nearest)
def _upsample_nearest(cv: Converter, node: torch.fx.Node) -> Value:
    return _upsample(cv, "'upsample_nearest'", node.args[0], cv.static_value(_arg(node, 2, "scale_factor", None)),
                     "nearest", None)


@_on_function(F.upsample_bilinear)
def _upsample_bilinear(cv: Converter, node: torch.fx.Node) -> Value:
    return _upsample(cv, "'upsample_bilinear'", node.args[0], cv.static_value(_arg(node, 2, "scale_factor", None)),
                     "bilinear", True)


# ---- elementwise arithmetic ------------------------------------------------------------------------------
_BINARY = {operator.add: AddOp, operator.iadd: AddOp, torch.add: AddOp, operator.sub: SubOp, operator.isub: SubOp,
           torch.sub: SubOp, torch.subtract: SubOp, operator.mul: MulOp, operator.imul: MulOp, torch.mul: MulOp,
           torch.multiply: MulOp, "add": AddOp, "add_": AddOp, "sub": SubOp, "sub_": SubOp, "mul": MulOp,
           "mul_": MulOp}


@_on_function(*(k for k in _BINARY if not isinstance(k, str)))
@_on_method(*(k for k in _BINARY if isinstance(k, str)))
def _binary(cv: Converter, node: torch.fx.Node) -> Value:
    cls = _BINARY[node.target]
    lhs, rhs = cv.x(node.args[0]), _arg(node, 1, "other")
    alpha = node.kwargs.get("alpha", 1)
    rhs_v = cv.x(rhs)
    if cv.static_value(alpha) != 1:
        rhs_v = cv.emit(MulOp, rhs_v, cv.scalar(cv.static_value(alpha)), suffix="alpha")
    return cv.emit(cls, lhs, rhs_v)


@_on_function(operator.truediv, operator.itruediv, torch.div, torch.true_divide)
@_on_method("div", "div_", "true_divide")
def _div(cv: Converter, node: torch.fx.Node) -> Value:
    divisor = _arg(node, 1, "other")
    if node.kwargs.get("rounding_mode") is not None:
        raise cv.unsupported("'div'", "rounding_mode")
    if cv.is_tensor(divisor) and divisor not in cv.const:
        raise cv.unsupported("'div'", "division by a tensor computed from the input (divide by a constant)")
    if cv.is_tensor(divisor):
        recip = 1.0 / divisor.meta["fixflow_const"]
        key = f"{cv.loc.name}.recip" if recip.numel() > _INLINE_MAX else None
        return cv.emit(MulOp, cv.x(node.args[0]), cv.constant(recip, key, hint=f"{node.name}_recip"))
    return cv.emit(MulOp, cv.x(node.args[0]), cv.scalar(1.0 / float(cv.static_value(divisor))))


@_on_function(operator.neg, torch.neg)
@_on_method("neg")
def _neg(cv: Converter, node: torch.fx.Node) -> Value:
    return cv.emit(MulOp, cv.x(node.args[0]), cv.scalar(-1.0))


# ======================= issue 15: slicing, splitting, broadcasting, reductions, norms, attention ==========
def _reshape_value(cv: Converter, v: Value, in_shape: tuple[int, ...], out: tuple[int, ...],
                   suffix: str | None = None) -> Value:
    """Reshape an IR value to `out`, keeping a leading batch dimension as 0 (any batch size runs)."""
    if tuple(in_shape) == tuple(out):
        return v
    shape = list(out)
    if in_shape and out and out[0] == in_shape[0]:
        shape[0] = 0
    elif in_shape and len(out) > 1 and out[0] == 1 and out[1] == in_shape[0]:
        shape[1] = -1  # a new leading axis in front of the batch (torch.stack(..., dim=0))
    return cv.emit(ReshapeOp, v, shape=tuple(shape), suffix=suffix)


def _slice_value(cv: Converter, v: Value, shape: tuple[int, ...], bounds: dict[int, tuple[int, int, int]],
                 suffix: str | None = None) -> Value:
    """A `graph.slice` of `v` with (start, end, step) per axis; whole axes are left out (none: `v`)."""
    axes, starts, ends, steps = [], [], [], []
    for ax in sorted(bounds):
        start, end, step = bounds[ax]
        if ax != 0:  # a static dimension: concrete, clamped bounds
            start, end, step = slice(start, end, step).indices(shape[ax])
            end = max(end, start)
            if start == 0 and end >= shape[ax] and step == 1:
                continue
        elif (start in (None, 0)) and end is None and step in (None, 1):
            continue
        axes.append(ax)
        starts.append(0 if start is None else start)
        ends.append(SLICE_END if end is None else end)
        steps.append(1 if step is None else step)
    if not axes:
        return v
    return cv.emit(SliceOp, v, axes=tuple(axes), starts=tuple(starts), ends=tuple(ends),
                   steps=tuple(steps) if any(s != 1 for s in steps) else None, suffix=suffix)


@_on_function(operator.getitem)
def _getitem(cv: Converter, node: torch.fx.Node) -> Value:
    src, index = node.args[0], node.args[1]
    if isinstance(src, torch.fx.Node) and src in cv.multi:
        i = cv.static_value(index)
        if not isinstance(i, int):
            raise cv.unsupported("'operator.getitem'", f"indexing the results of '{src.name}' with {i!r}")
        v = cv.piece(src, i)
        if v is None:
            raise cv.unsupported("'operator.getitem'", f"result {i} of '{src.name}' is not a tensor")
        return v
    if not cv.is_tensor(src):
        raise cv.unsupported("'operator.getitem' (tensor indexing/slicing)", "indexing a non-tensor value")
    shape = cv.shape(src)
    items = index if isinstance(index, tuple) else (index,)
    for it in items:
        if isinstance(it, torch.fx.Node) and cv.is_tensor(it) or isinstance(it, (torch.Tensor, list)):
            raise cv.unsupported("'operator.getitem' (tensor indexing/slicing)",
                                 "indexing with a tensor or a list (a gather or a boolean mask: data-dependent); "
                                 "only integers, slices, None and ... index a tensor")
    items = tuple(cv.static_value(it) for it in items)
    for it in items:
        if not (it is None or it is Ellipsis or isinstance(it, (int, slice))) or isinstance(it, bool):
            raise cv.unsupported("'operator.getitem' (tensor indexing/slicing)", f"the index {it!r}")
        if isinstance(it, slice) and not all(b is None or isinstance(b, int) for b in (it.start, it.stop, it.step)):
            raise cv.unsupported("'operator.getitem' (tensor indexing/slicing)", f"the slice bounds of {it!r}")
        if isinstance(it, slice) and it.step is not None and it.step < 1:
            raise cv.unsupported("'operator.getitem' (tensor indexing/slicing)", f"step {it.step} (torch needs "
                                 "positive slice steps)")
    n_real = sum(1 for it in items if it is not None and it is not Ellipsis)
    if sum(1 for it in items if it is Ellipsis) > 1:
        raise cv.unsupported("'operator.getitem' (tensor indexing/slicing)", "more than one '...'")
    expanded: list[Any] = []
    for it in items:
        if it is Ellipsis:
            expanded += [slice(None)] * (len(shape) - n_real)
        else:
            expanded.append(it)
    bounds: dict[int, tuple] = {}
    ax = 0
    for it in expanded:
        if it is None:
            continue
        if isinstance(it, int):
            if not -shape[ax] <= it < shape[ax]:
                raise cv.error(f"index {it} is out of range for dimension {ax} of size {shape[ax]}")
            bounds[ax] = (it, it + 1 if it != -1 else None, 1)
        else:
            bounds[ax] = (it.start, it.stop, it.step)
        ax += 1
    v = _slice_value(cv, cv.x(src), shape, bounds, suffix="slice")
    sliced = v.type.shape
    return _reshape_value(cv, v, sliced, tuple(cv.out_shape)) if sliced != tuple(cv.out_shape) else v


def _split_pieces(cv: Converter, node: torch.fx.Node, x: Any, dim: int, squeeze: bool = False) -> list:
    """The pieces of `x` along `dim` as the traced results cut it (split, chunk, tensor_split, unbind)."""
    shape = cv.shape(x)
    rank = len(shape)
    dim = int(dim) % rank
    sizes = [t.shape[dim] if not squeeze else 1 for t in node.meta["fixflow_value"]]
    offsets = np.cumsum([0] + sizes).tolist()

    def make(i: int) -> Callable[[], Value]:
        def build() -> Value:
            v = _slice_value(cv, cv.x(x), shape, {dim: (offsets[i], offsets[i + 1], 1)}, suffix=str(i))
            if squeeze:
                out = shape[:dim] + shape[dim + 1:]
                v = _reshape_value(cv, v, v.type.shape, out, suffix=f"{i}_squeeze")
            return v
        return build
    return [make(i) for i in range(len(sizes))]


@_on_multi(functions=(torch.split, torch.chunk, torch.tensor_split), methods=("split", "chunk", "tensor_split"))
def _split(cv: Converter, node: torch.fx.Node) -> list:
    """The pieces are cut as the traced results are; their sizes must not depend on the input's values."""
    name = node.target if isinstance(node.target, str) else node.target.__name__
    sizes = node.args[1] if len(node.args) > 1 else next(
        (node.kwargs[k] for k in ("split_size", "split_size_or_sections", "chunks", "indices_or_sections",
                                  "sections", "indices") if k in node.kwargs), None)
    if cv.is_tensor(sizes) and sizes not in cv.const:
        raise cv.unsupported(f"'{name}'", "split sizes given as a tensor computed from the input")
    if not cv.is_tensor(sizes):
        cv.static_value(sizes)
    return _split_pieces(cv, node, node.args[0], cv.static_value(_arg(node, 2, "dim", 0)))


@_on_multi(functions=(torch.unbind,), methods=("unbind",))
def _unbind(cv: Converter, node: torch.fx.Node) -> list:
    return _split_pieces(cv, node, node.args[0], cv.static_value(_arg(node, 1, "dim", 0)), squeeze=True)


def _dim_source(cv: Converter, arg: Any) -> tuple[torch.fx.Node, int] | None:
    """(tensor node, dim) when `arg` is `t.shape[d]`, `t.size(d)` or `t.size()[d]` of a tensor `t`."""
    if not isinstance(arg, torch.fx.Node):
        return None
    if arg.op == "call_method" and arg.target == "size" and len(arg.args) > 1:
        t, d = arg.args[0], arg.args[1]
    elif arg.op == "call_function" and arg.target is operator.getitem and isinstance(arg.args[0], torch.fx.Node):
        q = arg.args[0]
        is_shape = (q.op == "call_function" and q.target is getattr and q.args[1] == "shape") or \
                   (q.op == "call_method" and q.target == "size" and len(q.args) == 1)
        if not is_shape:
            return None
        t, d = q.args[0], arg.args[1]
    else:
        return None
    if not cv.is_tensor(t) or not isinstance(d, int):
        return None
    return t, d % len(cv.shape(t))


def _shape_source(cv: Converter, arg: Any) -> torch.fx.Node | None:
    """The tensor `t` when `arg` is its whole shape (`t.shape`, `t.size()`)."""
    if not isinstance(arg, torch.fx.Node):
        return None
    if arg.op == "call_function" and arg.target is getattr and arg.args[1] == "shape":
        t = arg.args[0]
    elif arg.op == "call_method" and arg.target == "size" and len(arg.args) == 1 and not arg.kwargs:
        t = arg.args[0]
    else:
        return None
    return t if cv.is_tensor(t) else None


def _expand(cv: Converter, x: Any, sizes: tuple, like: Any = None) -> Value:
    """`x.expand(sizes)`: a batch size taken from another tensor's shape stays that tensor's batch."""
    out = tuple(cv.out_shape)
    in_shape = cv.shape(x)
    lead = len(out) - len(in_shape)
    target = []
    like_node = like
    for i, d in enumerate(out):
        src = in_shape[i - lead] if i >= lead else None
        origin = _dim_source(cv, sizes[i]) if i < len(sizes) else None
        if i == 0 and like is not None and len(cv.shape(like)) == len(out):
            target.append(0)
        elif i == 0 and origin is not None and origin[1] == 0 and like_node is None:
            like_node = origin[0]
            target.append(0)
        elif i == 0 and like_node is None and src == 1 and d != 1 and cv.specialized_batch_input(d) is not None:
            like_node = cv.specialized_batch_input(d)  # a shape-specialized trace: x.shape[0] became an int
            target.append(0)
        elif src == d:
            target.append(-1)
        else:
            target.append(d)
    if 0 not in target:
        like_node = None
    if all(t == -1 for t in target) and lead == 0:
        return cv.x(x)
    return cv.emit(ExpandOp, cv.x(x), None if like_node is None else cv.x(like_node), shape=tuple(target))


@_on_method("expand")
def _expand_method(cv: Converter, node: torch.fx.Node) -> Value:
    sizes = node.args[1:]
    if len(sizes) == 1 and isinstance(sizes[0], (list, tuple)):
        sizes = tuple(sizes[0])
    elif not sizes:
        sizes = tuple(node.kwargs.get("size", ()))
    cv.static_value(sizes)  # a data-dependent size is an error here
    if len(sizes) == 1 and _shape_source(cv, sizes[0]) is not None:   # x.expand(t.shape): t's batch too
        return _expand(cv, node.args[0], tuple(cv.out_shape), like=_shape_source(cv, sizes[0]))
    return _expand(cv, node.args[0], tuple(sizes))


@_on_method("expand_as")
def _expand_as(cv: Converter, node: torch.fx.Node) -> Value:
    other = _arg(node, 1, "other")
    return _expand(cv, node.args[0], tuple(cv.out_shape), like=other if cv.is_tensor(other) else None)


@_on_function(torch.broadcast_to)
@_on_method("broadcast_to")
def _broadcast_to(cv: Converter, node: torch.fx.Node) -> Value:
    sizes = _arg(node, 1, "size")
    cv.static_value(sizes)
    if _shape_source(cv, sizes) is not None:   # broadcast_to(p, t.shape): t's batch too
        return _expand(cv, node.args[0], tuple(cv.out_shape), like=_shape_source(cv, sizes))
    return _expand(cv, node.args[0], tuple(sizes) if isinstance(sizes, (list, tuple)) else ())


@_on_method("repeat")
def _repeat(cv: Converter, node: torch.fx.Node) -> Value:
    reps = tuple(int(r) for r in _shape_args(cv, node, 1, "repeats"))
    raw = node.args[1:]
    if len(raw) == 1 and isinstance(raw[0], (list, tuple)):
        raw = tuple(raw[0])
    x = node.args[0]
    lifted = (1,) * (len(reps) - len(cv.shape(x))) + tuple(cv.shape(x))
    origin = _dim_source(cv, raw[0]) if raw and len(raw) == len(reps) else None
    if origin is not None and origin[1] == 0 and lifted and lifted[0] == 1 and reps[0] != 1:
        # p.repeat(x.shape[0], ...) of a batch-1 tensor: the repeated batch is x's batch at run time
        y = cv.x(x)
        rest = (1,) + reps[1:]
        if any(r != 1 for r in rest) or len(rest) != len(cv.shape(x)):
            y = cv.emit(TileOp, y, repeats=rest, suffix="tile")
        return cv.emit(ExpandOp, y, cv.x(origin[0]), shape=(0,) + (-1,) * (len(reps) - 1))
    return cv.emit(TileOp, cv.x(x), repeats=reps)


@_on_function(torch.stack)
def _stack(cv: Converter, node: torch.fx.Node) -> Value:
    dim = cv.static_value(_arg(node, 1, "dim", 0)) % len(cv.out_shape)
    parts = []
    for i, v in enumerate(cv.tensors(_arg(node, 0, "tensors"))):
        s = v.type.shape
        parts.append(_reshape_value(cv, v, s, s[:dim] + (1,) + s[dim:], suffix=f"unsqueeze{i}"))
    return cv.emit(ConcatOp, parts, axis=dim)


# ---- reductions -------------------------------------------------------------------------------------------
def _dims(cv: Converter, node: torch.fx.Node, rank: int) -> tuple[int, ...]:
    dim = cv.static_value(_arg(node, 1, "dim", None))
    if dim is None or (isinstance(dim, (list, tuple)) and not dim):
        return tuple(range(rank))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    return tuple(sorted(d % rank for d in dims))


_REDUCTIONS = {torch.sum: SumOp, "sum": SumOp, torch.amax: AmaxOp, "amax": AmaxOp, torch.amin: AminOp,
               "amin": AminOp}


@_on_function(torch.sum, torch.amax, torch.amin)
@_on_method("sum", "amax", "amin")
def _reduce(cv: Converter, node: torch.fx.Node) -> Value:
    x = node.args[0]
    if node.kwargs.get("dtype") not in (None, torch.float32):
        raise cv.unsupported(f"'{_qualified(node.target) if not isinstance(node.target, str) else node.target}'",
                             "dtype other than float32")
    rank = len(cv.shape(x))
    keepdim = bool(cv.static_value(_arg(node, 2, "keepdim", False)))
    return cv.emit(_REDUCTIONS[node.target], cv.x(x), axes=_dims(cv, node, rank), keepdim=keepdim)


@_on_function(torch.max, torch.min)
@_on_method("max", "min")
def _max_all(cv: Converter, node: torch.fx.Node) -> Value:
    x = node.args[0]
    other = _arg(node, 1, "dim", _arg(node, 1, "other", None))
    name = node.target if isinstance(node.target, str) else node.target.__name__
    if other is not None and cv.is_tensor(other):
        raise cv.unsupported(f"'{name}'", "the elementwise maximum/minimum of two tensors")
    cls = AmaxOp if name == "max" else AminOp
    return cv.emit(cls, cv.x(x), axes=tuple(range(len(cv.shape(x)))), keepdim=False)


@_on_multi(functions=(torch.max, torch.min), methods=("max", "min"))
def _max_dim(cv: Converter, node: torch.fx.Node) -> list:
    x = node.args[0]
    name = node.target if isinstance(node.target, str) else node.target.__name__
    rank = len(cv.shape(x))
    dim = cv.static_value(_arg(node, 1, "dim")) % rank
    keepdim = bool(cv.static_value(_arg(node, 2, "keepdim", False)))
    cls = AmaxOp if name == "max" else AminOp

    def indices() -> Value:
        raise cv.unsupported(f"'{name}'", "the indices of the maximum/minimum (an integer tensor)")
    return [lambda: cv.emit(cls, cv.x(x), axes=(dim,), keepdim=keepdim, suffix="values"), indices]


# ---- normalization ----------------------------------------------------------------------------------------
def _ones_or(cv: Converter, w: Any, shape: tuple[int, ...], fill: float, hint: str) -> Value:
    if w is not None:
        return cv.x(w) if not isinstance(w, Value) else w
    return cv.constant(torch.full(shape, fill), None, hint=f"{cv.node.name}_{hint}")


@_on_module(nn.LayerNorm)
def _layer_norm_module(cv: Converter, node: torch.fx.Node, m: nn.LayerNorm) -> Value:
    ns = tuple(m.normalized_shape)
    w = cv.param(m, "weight") if m.weight is not None else None
    b = cv.param(m, "bias") if getattr(m, "bias", None) is not None else None
    return cv.emit(LayerNormOp, cv.x(node.args[0]), _ones_or(cv, w, ns, 1.0, "weight"),
                   _ones_or(cv, b, ns, 0.0, "bias"), normalized_shape=ns, eps=float(m.eps))


@_on_function(F.layer_norm, torch.layer_norm)
def _layer_norm_fn(cv: Converter, node: torch.fx.Node) -> Value:
    ns = cv.static_value(_arg(node, 1, "normalized_shape"))
    ns = (ns,) if isinstance(ns, int) else tuple(ns)
    return cv.emit(LayerNormOp, cv.x(_arg(node, 0, "input")),
                   _ones_or(cv, _arg(node, 2, "weight", None), ns, 1.0, "weight"),
                   _ones_or(cv, _arg(node, 3, "bias", None), ns, 0.0, "bias"),
                   normalized_shape=ns, eps=float(cv.static_value(_arg(node, 4, "eps", 1e-5))))


@_on_module(nn.GroupNorm)
def _group_norm_module(cv: Converter, node: torch.fx.Node, m: nn.GroupNorm) -> Value:
    c = m.num_channels
    w = cv.param(m, "weight") if m.affine else None
    b = cv.param(m, "bias") if m.affine else None
    return cv.emit(GroupNormOp, cv.x(node.args[0]), _ones_or(cv, w, (c,), 1.0, "weight"),
                   _ones_or(cv, b, (c,), 0.0, "bias"), groups=int(m.num_groups), eps=float(m.eps))


@_on_function(F.group_norm, torch.group_norm)
def _group_norm_fn(cv: Converter, node: torch.fx.Node) -> Value:
    x = _arg(node, 0, "input")
    c = cv.shape(x)[1]
    return cv.emit(GroupNormOp, cv.x(x), _ones_or(cv, _arg(node, 2, "weight", None), (c,), 1.0, "weight"),
                   _ones_or(cv, _arg(node, 3, "bias", None), (c,), 0.0, "bias"),
                   groups=int(cv.static_value(_arg(node, 1, "num_groups"))),
                   eps=float(cv.static_value(_arg(node, 4, "eps", 1e-5))))


@_on_module(nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
def _instance_norm_module(cv: Converter, node: torch.fx.Node, m: nn.modules.instancenorm._InstanceNorm) -> Value:
    x = node.args[0]
    c = cv.shape(x)[1]
    w = cv.param(m, "weight") if m.affine else None
    b = cv.param(m, "bias") if m.affine else None
    gamma, beta = _ones_or(cv, w, (c,), 1.0, "weight"), _ones_or(cv, b, (c,), 0.0, "bias")
    if m.track_running_stats and m.running_mean is not None:  # eval mode normalizes with the running statistics
        return cv.emit(BatchNormOp, cv.x(x), cv.param(m, "running_mean"), cv.param(m, "running_var"), gamma, beta,
                       eps=float(m.eps))
    return cv.emit(GroupNormOp, cv.x(x), gamma, beta, groups=c, eps=float(m.eps))


@_on_function(F.instance_norm, torch.instance_norm)
def _instance_norm_fn(cv: Converter, node: torch.fx.Node) -> Value:
    sv = cv.static_value
    x = _arg(node, 0, "input")
    c = cv.shape(x)[1]
    gamma = _ones_or(cv, _arg(node, 3, "weight", None), (c,), 1.0, "weight")
    beta = _ones_or(cv, _arg(node, 4, "bias", None), (c,), 0.0, "bias")
    eps = float(sv(_arg(node, 7, "eps", 1e-5)))
    mean, var = _arg(node, 1, "running_mean", None), _arg(node, 2, "running_var", None)
    if not sv(_arg(node, 5, "use_input_stats", True)):
        if mean is None or var is None:
            raise cv.unsupported("'torch.nn.functional.instance_norm'", "use_input_stats=False without running stats")
        return cv.emit(BatchNormOp, cv.x(x), cv.x(mean), cv.x(var), gamma, beta, eps=eps)
    return cv.emit(GroupNormOp, cv.x(x), gamma, beta, groups=c, eps=eps)


# ---- activations ------------------------------------------------------------------------------------------
@_on_module(nn.GELU)
def _gelu_module(cv: Converter, node: torch.fx.Node, m: nn.GELU) -> Value:
    return cv.emit(GeluOp, cv.x(node.args[0]), approximate=m.approximate)


@_on_function(F.gelu)
def _gelu_fn(cv: Converter, node: torch.fx.Node) -> Value:
    approximate = cv.static_value(_arg(node, 1, "approximate", "none"))
    if approximate not in ("none", "tanh"):
        raise cv.unsupported("'torch.nn.functional.gelu'", f"approximate={approximate!r}")
    return cv.emit(GeluOp, cv.x(_arg(node, 0, "input")), approximate=approximate)


@_on_module(nn.Mish)
def _mish_module(cv: Converter, node: torch.fx.Node, m: nn.Module) -> Value:
    return cv.emit(MishOp, cv.x(node.args[0]))


@_on_function(F.mish)
def _mish_fn(cv: Converter, node: torch.fx.Node) -> Value:
    return cv.emit(MishOp, cv.x(_arg(node, 0, "input")))


# ---- train-only ops: identities in eval mode ---------------------------------------------------------------
@_on_module(nn.Dropout3d, nn.FeatureAlphaDropout)
def _dropout_module_more(cv: Converter, node: torch.fx.Node, m: nn.Module) -> Value:
    return cv.emit(DropoutOp, cv.x(node.args[0]), p=float(m.p))


@_on_function(F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout)
def _dropout_fn_more(cv: Converter, node: torch.fx.Node) -> Value:
    return _dropout_fn(cv, node)


@_on_named_function("torchvision.ops.stochastic_depth", "stochastic_depth")
def _stochastic_depth(cv: Converter, node: torch.fx.Node) -> Value:
    """torchvision's stochastic depth: the identity in eval mode (`training=False`)."""
    if cv.static_value(_arg(node, 3, "training", True)):
        raise cv.unsupported("'torchvision.ops.stochastic_depth'", "training=True drops rows at random; import the "
                             "model in eval mode (StochasticDepth passes self.training)")
    return cv.emit(DropoutOp, cv.x(_arg(node, 0, "input")), p=float(cv.static_value(_arg(node, 1, "p", 0.0))))


@_on_function(getattr)
def _getattr(cv: Converter, node: torch.fx.Node) -> Value:
    src, name = node.args[0], node.args[1]
    if isinstance(src, torch.fx.Node) and src in cv.multi and name in ("values", "indices"):
        v = cv.piece(src, 0 if name == "values" else 1)
        return v
    if cv.is_tensor(src) and name in ("T", "mT"):
        rank = len(cv.shape(src))
        perm = list(range(rank))[::-1] if name == "T" else list(range(rank - 2)) + [rank - 1, rank - 2]
        return cv.emit(TransposeOp, cv.x(src), perm=tuple(perm)) if rank > 1 else cv.x(src)
    raise cv.unsupported(f"attribute '.{name}'")


# ---- attention ---------------------------------------------------------------------------------------------
def _additive_mask(cv: Converter, mask: Any, what: str, true_means_masked: bool) -> Value | None:
    """An attention mask as a float tensor to add to the scores: float masks as they are, boolean masks
    (constants only) as 0 / -inf."""
    if mask is None:
        return None
    dt = mask.meta.get("fixflow_dtype") if isinstance(mask, torch.fx.Node) else None
    if isinstance(mask, torch.fx.Node) and mask in cv.const:
        dt = mask.meta["fixflow_const"].dtype
    if dt == torch.bool:
        if not (isinstance(mask, torch.fx.Node) and mask in cv.const):
            raise cv.unsupported(what, "a boolean attention mask computed from the input (give a constant mask)")
        m = mask.meta["fixflow_const"]
        blocked = m if true_means_masked else ~m
        add = torch.zeros(m.shape).masked_fill(blocked, float("-inf"))
        key = f"{cv.loc.name}.mask" if add.numel() > _INLINE_MAX else None
        return cv.constant(add, key, hint=f"{cv.node.name}_mask")
    return cv.x(mask)


def _causal_mask(cv: Converter, length: int, source: int) -> Value:
    add = torch.zeros(length, source).masked_fill(~torch.ones(length, source, dtype=torch.bool).tril(), float("-inf"))
    key = f"{cv.loc.name}.causal_mask" if add.numel() > _INLINE_MAX else None
    return cv.constant(add, key, hint=f"{cv.node.name}_causal")


def _attention(cv: Converter, q: Value, k_t: Value, v: Value, scale: float, mask: Value | None,
               suffix: str = "") -> tuple[Value, Value]:
    """softmax(q @ k_t * scale + mask) @ v, and the attention probabilities."""
    scores = cv.emit(MatmulOp, q, k_t, suffix=f"{suffix}scores")
    scores = cv.emit(MulOp, scores, cv.scalar(scale), suffix=f"{suffix}scaled")
    if mask is not None:
        scores = cv.emit(AddOp, scores, mask, suffix=f"{suffix}masked")
    probs = cv.emit(SoftmaxOp, scores, axis=len(scores.type.shape) - 1, suffix=f"{suffix}probs")
    return cv.emit(MatmulOp, probs, v, suffix=f"{suffix}out"), probs


def _swap_last(cv: Converter, v: Value, suffix: str) -> Value:
    rank = len(v.type.shape)
    perm = list(range(rank))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    return cv.emit(TransposeOp, v, perm=tuple(perm), suffix=suffix)


@_on_function(getattr(F, "scaled_dot_product_attention", None))
def _sdpa(cv: Converter, node: torch.fx.Node) -> Value:
    """`F.scaled_dot_product_attention` as matmul, scale, mask, softmax, matmul."""
    what = "'torch.nn.functional.scaled_dot_product_attention'"
    sv = cv.static_value
    q, k, v = _arg(node, 0, "query"), _arg(node, 1, "key"), _arg(node, 2, "value")
    if sv(_arg(node, 4, "dropout_p", 0.0)):
        raise cv.unsupported(what, "dropout_p > 0 drops attention weights at random even in eval mode; pass "
                             "dropout_p=(p if self.training else 0.0)")
    if sv(node.kwargs.get("enable_gqa", False)):
        raise cv.unsupported(what, "enable_gqa=True")
    qs, ks = cv.shape(q), cv.shape(k)
    scale = sv(_arg(node, 6, "scale", None))
    scale = 1.0 / math.sqrt(qs[-1]) if scale is None else float(scale)
    mask = _additive_mask(cv, _arg(node, 3, "attn_mask", None), what, true_means_masked=False)
    if sv(_arg(node, 5, "is_causal", False)):
        if mask is not None:
            raise cv.unsupported(what, "is_causal=True together with attn_mask")
        mask = _causal_mask(cv, qs[-2], ks[-2])
    out, _ = _attention(cv, cv.x(q), _swap_last(cv, cv.x(k), "key_t"), cv.x(v), scale, mask)
    return out


@_on_multi(modules=(nn.MultiheadAttention,))
def _multihead_attention(cv: Converter, node: torch.fx.Node, m: nn.MultiheadAttention) -> list:
    """`nn.MultiheadAttention` (inference) as linear projections, per-head attention and the output projection:
    element 0 the attention output, element 1 the attention weights (None when need_weights=False)."""
    what = "'torch.nn.MultiheadAttention'"
    sv = cv.static_value
    query, key, value = _arg(node, 0, "query"), _arg(node, 1, "key"), _arg(node, 2, "value")
    if _arg(node, 3, "key_padding_mask", None) is not None:
        raise cv.unsupported(what, "key_padding_mask (fold the padding into a constant attn_mask)")
    need_weights = bool(sv(_arg(node, 4, "need_weights", True)))
    attn_mask = _arg(node, 5, "attn_mask", None)
    average = bool(sv(_arg(node, 6, "average_attn_weights", True)))
    is_causal = bool(sv(_arg(node, 7, "is_causal", False)))
    if m.bias_k is not None or m.add_zero_attn:
        raise cv.unsupported(what, "add_bias_kv / add_zero_attn")
    for t in (query, key, value):
        if len(cv.shape(t)) != 3:
            raise cv.unsupported(what, f"a rank-{len(cv.shape(t))} input (batched 3-D inputs only)")
    e, h = m.embed_dim, m.num_heads
    hd = e // h
    path = str(node.target)
    if m._qkv_same_embed_dim:
        w = m.in_proj_weight.detach()
        ws = [w[:e], w[e:2 * e], w[2 * e:]]
    else:
        ws = [m.q_proj_weight.detach(), m.k_proj_weight.detach(), m.v_proj_weight.detach()]
    bs = [None] * 3 if m.in_proj_bias is None else [m.in_proj_bias.detach()[i * e:(i + 1) * e] for i in range(3)]
    done: dict[str, Value] = {}

    def build() -> dict[str, Value]:
        if done:
            return done
        ins = []
        for name, t in (("query", query), ("key", key), ("value", value)):
            x = cv.x(t)
            if not m.batch_first:
                x = cv.emit(TransposeOp, x, perm=(1, 0, 2), suffix=f"{name}_bf")
            ins.append(x)
        heads = []
        for i, (name, x) in enumerate(zip("qkv", ins)):
            w_ = cv.constant(ws[i], f"{path}.{name}_proj.weight")
            b_ = None if bs[i] is None else cv.constant(bs[i], f"{path}.{name}_proj.bias")
            y = cv.emit(LinearOp, x, w_, b_, suffix=f"{name}_proj")
            y = cv.emit(ReshapeOp, y, shape=(0, -1, h, hd), suffix=f"{name}_heads")
            heads.append(cv.emit(TransposeOp, y, perm=(0, 2, 3, 1) if name == "k" else (0, 2, 1, 3),
                                 suffix=f"{name}_t"))
        length, source = heads[0].type.shape[2], heads[2].type.shape[2]
        mask = _additive_mask(cv, attn_mask, what, true_means_masked=True)
        if mask is not None and len(mask.type.shape) == 3:  # (N * heads, L, S)
            mask = cv.emit(ReshapeOp, mask, shape=(-1, h, length, source), suffix="mask_heads")
        if is_causal and mask is None:
            mask = _causal_mask(cv, length, source)
        out, probs = _attention(cv, heads[0], heads[1], heads[2], 1.0 / math.sqrt(hd), mask)
        out = cv.emit(TransposeOp, out, perm=(0, 2, 1, 3), suffix="merge_t")
        out = cv.emit(ReshapeOp, out, shape=(0, -1, e), suffix="merge")
        ow = cv.constant(m.out_proj.weight, f"{path}.out_proj.weight")
        ob = None if m.out_proj.bias is None else cv.constant(m.out_proj.bias, f"{path}.out_proj.bias")
        out = cv.emit(LinearOp, out, ow, ob, suffix="out_proj")
        if not m.batch_first:
            out = cv.emit(TransposeOp, out, perm=(1, 0, 2), suffix="out_sf")
        done["out"], done["probs"] = out, probs
        return done

    def weights() -> Value | None:
        if not need_weights:
            return None
        probs = build()["probs"]
        if average:
            return cv.emit(MeanOp, probs, axes=(1,), keepdim=False, suffix="weights")
        return probs
    return [lambda: build()["out"], weights]


# ---- einsum -------------------------------------------------------------------------------------------------
@_on_function(torch.einsum)
def _einsum(cv: Converter, node: torch.fx.Node) -> Value:
    """Two-operand `torch.einsum` without repeated indices in one operand, as transposes, reshapes and one
    batched matmul (indices only in one operand and not in the output are summed first)."""
    what = "'torch.einsum'"
    eq = cv.static_value(node.args[0])
    ops = node.args[1:]
    if len(ops) == 1 and isinstance(ops[0], (list, tuple)):
        ops = tuple(ops[0])
    if not isinstance(eq, str) or len(ops) != 2 or "..." in eq:
        raise cv.unsupported(what, "only two-operand equations without '...' (such as 'bhid,bhjd->bhij')")
    eq = eq.replace(" ", "")
    lhs, _, out = eq.partition("->")
    a, _, b = lhs.partition(",")
    if not _ or any(len(set(s)) != len(s) for s in (a, b, out)):
        raise cv.unsupported(what, f"the equation '{eq}' (explicit output, no repeated index in an operand)")
    va, vb = cv.x(ops[0]), cv.x(ops[1])
    sa, sb = dict(zip(a, va.type.shape)), dict(zip(b, vb.type.shape))
    # indices only in one operand and not in the output: sum them away first
    for name, idx, other in (("lhs", a, b), ("rhs", b, a)):
        lone = [i for i in idx if i not in other and i not in out]
        if lone:
            v = va if name == "lhs" else vb
            v = cv.emit(SumOp, v, axes=tuple(idx.index(i) for i in lone), keepdim=False, suffix=f"{name}_sum")
            idx = "".join(i for i in idx if i not in lone)
            if name == "lhs":
                va, a = v, idx
            else:
                vb, b = v, idx
    batch = [i for i in a if i in b and i in out]
    contract = [i for i in a if i in b and i not in out]
    free_a = [i for i in a if i not in b]
    free_b = [i for i in b if i not in a]
    for i in batch:
        if sa[i] != sb[i]:
            raise cv.unsupported(what, f"index '{i}' broadcast between the operands ({sa[i]} vs {sb[i]})")

    def prod(idx: list[str], sizes: dict[str, int]) -> int:
        return int(np.prod([sizes[i] for i in idx])) if idx else 1

    pa = [a.index(i) for i in batch + free_a + contract]
    pb = [b.index(i) for i in batch + contract + free_b]
    va = cv.emit(TransposeOp, va, perm=tuple(pa), suffix="lhs_t") if pa != list(range(len(a))) else va
    vb = cv.emit(TransposeOp, vb, perm=tuple(pb), suffix="rhs_t") if pb != list(range(len(b))) else vb
    # a leading batch index of both operands stays a copied (any-size) dimension
    first = bool(batch) and a.index(batch[0]) == 0 and b.index(batch[0]) == 0
    keep0 = [0 if k == 0 and first else sa[i] for k, i in enumerate(batch)]
    # or, without batch indices, a leading free index of the lhs (the rows of the product)
    dyn = not batch and bool(free_a) and a[0] == free_a[0]
    rows = -1 if dyn else prod(free_a, sa)
    va = cv.emit(ReshapeOp, va, shape=tuple(keep0) + (rows, prod(contract, sa)), suffix="lhs_2d")
    vb = cv.emit(ReshapeOp, vb, shape=tuple(keep0) + (prod(contract, sb), prod(free_b, sb)), suffix="rhs_2d")
    y = cv.emit(MatmulOp, va, vb, suffix="mm")
    order = batch + free_a + free_b
    sizes = [sa[i] for i in free_a] + [sb[i] for i in free_b]
    if dyn:
        sizes[0] = -1
    y = cv.emit(ReshapeOp, y, shape=tuple(keep0) + tuple(sizes), suffix="unflat")
    perm = [order.index(i) for i in out]
    return cv.emit(TransposeOp, y, perm=tuple(perm)) if perm != list(range(len(out))) else y


# ---- data movement ----------------------------------------------------------------------------------------
@_on_function(torch.roll)
@_on_method("roll")
def _roll(cv: Converter, node: torch.fx.Node) -> Value:
    x = node.args[0]
    shape = cv.shape(x)
    shifts = cv.static_value(_arg(node, 1, "shifts"))
    dims = cv.static_value(_arg(node, 2, "dims", None))
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    if dims is None or (isinstance(dims, (list, tuple)) and not dims):  # roll the flattened tensor
        flat = cv.emit(ReshapeOp, cv.x(x), shape=(-1,), suffix="flat")
        rolled = cv.emit(RollOp, flat, shifts=shifts, axes=(0,), suffix="roll")
        return cv.emit(ReshapeOp, rolled, shape=(-1,) + tuple(shape[1:]))
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    return cv.emit(RollOp, cv.x(x), shifts=shifts, axes=tuple(d % len(shape) for d in dims))


def _channel_shuffle(cv: Converter, x: Any, groups: int) -> Value:
    """The view-transpose-view of ShuffleNet: (N, g, C/g, ...) -> (N, C/g, g, ...) -> (N, C, ...)."""
    shape = cv.shape(x)
    c = shape[1]
    if groups < 1 or c % groups:
        raise cv.error(f"channel_shuffle: groups={groups} must divide the {c} channels")
    rest = tuple(shape[2:])
    y = cv.emit(ReshapeOp, cv.x(x), shape=(0, groups, c // groups) + rest, suffix="groups")
    perm = (0, 2, 1) + tuple(range(3, 3 + len(rest)))
    y = cv.emit(TransposeOp, y, perm=perm, suffix="shuffle")
    return cv.emit(ReshapeOp, y, shape=(0, c) + rest)


@_on_module(nn.ChannelShuffle)
def _channel_shuffle_module(cv: Converter, node: torch.fx.Node, m: nn.ChannelShuffle) -> Value:
    return _channel_shuffle(cv, node.args[0], int(m.groups))


@_on_function(getattr(F, "channel_shuffle", None), getattr(torch, "channel_shuffle", None),
              getattr(torch, "native_channel_shuffle", None))
def _channel_shuffle_fn(cv: Converter, node: torch.fx.Node) -> Value:
    return _channel_shuffle(cv, _arg(node, 0, "input"), int(cv.static_value(_arg(node, 1, "groups"))))


@_on_method("view_as", "reshape_as", "unflatten")
def _view_as(cv: Converter, node: torch.fx.Node) -> Value:
    return _reshape(cv, node.args[0])


# ---- constants made from a tensor's shape ------------------------------------------------------------------
_FILLS = {"new_zeros": 0.0, "new_ones": 1.0, torch.zeros_like: 0.0, torch.ones_like: 1.0}


@_on_function(torch.zeros_like, torch.ones_like, torch.full_like)
@_on_method("new_zeros", "new_ones", "new_full")
def _filled(cv: Converter, node: torch.fx.Node) -> Value:
    """`x.new_zeros(size)`, `torch.zeros_like(x)`, ...: a constant of the traced shape (the values do not depend
    on the input's values; a shape that follows the batch is not supported)."""
    if node.target in _FILLS:
        fill = _FILLS[node.target]
    else:
        fill = float(cv.static_value(_arg(node, 1 if node.target is torch.full_like else 2, "fill_value")))
    out = tuple(cv.out_shape)
    src = node.args[0]
    like_batch = node.target in (torch.zeros_like, torch.ones_like, torch.full_like) and len(out) > 1
    value = torch.full((1,) + out[1:] if like_batch else out, fill)
    key = f"{cv.loc.name}.value" if value.numel() > _INLINE_MAX else None
    c = cv.constant(value, key, hint=node.name)
    if like_batch:  # `*_like(x)` follows x's batch
        return cv.emit(ExpandOp, c, cv.x(src), shape=(0,) + (-1,) * (len(out) - 1))
    return c


@_on_method("masked_fill")
@_on_function(torch.masked_fill)
def _masked_fill(cv: Converter, node: torch.fx.Node) -> Value:
    """`x.masked_fill(mask, value)` with a constant mask: x * keep + fill (keep = 0 where masked)."""
    mask = _arg(node, 1, "mask")
    if not (isinstance(mask, torch.fx.Node) and mask in cv.const):
        raise cv.unsupported("'masked_fill'", "a mask computed from the input (only constant masks)")
    value = float(cv.static_value(_arg(node, 2, "value")))
    m = mask.meta["fixflow_const"].to(torch.bool)
    keep = (~m).to(torch.float32)
    fill = torch.zeros(m.shape).masked_fill(m, value)
    big = keep.numel() > _INLINE_MAX
    y = cv.emit(MulOp, cv.x(node.args[0]), cv.constant(keep, f"{cv.loc.name}.keep" if big else None,
                                                          hint=f"{node.name}_keep"), suffix="keep")
    return cv.emit(AddOp, y, cv.constant(fill, f"{cv.loc.name}.fill" if big else None, hint=f"{node.name}_fill"))


@_on_function(F.normalize)
def _normalize(cv: Converter, node: torch.fx.Node) -> Value:
    x = _arg(node, 0, "input")
    sv = cv.static_value
    if _arg(node, 4, "out", None) is not None:
        raise cv.unsupported("'torch.nn.functional.normalize'", "out=")
    return cv.emit(NormalizeOp, cv.x(x), p=float(sv(_arg(node, 1, "p", 2.0))),
                   axis=int(sv(_arg(node, 2, "dim", 1))) % len(cv.shape(x)), eps=float(sv(_arg(node, 3, "eps", 1e-12))))


# ---- torchvision's Swin Transformer (functions torchvision keeps out of torch.fx traces with torch.fx.wrap) --
@_on_named_function("torchvision.models.swin_transformer", "_patch_merging_pad")
def _swin_patch_merging_pad(cv: Converter, node: torch.fx.Node) -> Value:
    """Pad H and W to even sizes, then the four (row, column) parities side by side on the channels."""
    x = node.args[0]
    shape = cv.shape(x)
    h, w = shape[-3], shape[-2]
    v = cv.x(x)
    if h % 2 or w % 2:
        v = cv.emit(PadOp, v, pads=(0, 0, 0, w % 2, 0, h % 2), suffix="pad")
        shape = v.type.shape
    r = len(shape)
    parts = [_slice_value(cv, v, shape, {r - 3: (i, None, 2), r - 2: (j, None, 2)}, suffix=f"x{k}")
             for k, (i, j) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1)))]
    return cv.emit(ConcatOp, parts, axis=r - 1)


def _static_tensor(cv: Converter, arg: Any) -> torch.Tensor | None:
    if arg is None:
        return None
    if isinstance(arg, torch.fx.Node) and arg in cv.const:
        return arg.meta["fixflow_const"].detach()
    return None


@_on_named_function("torchvision.models.swin_transformer", "shifted_window_attention")
def _swin_window_attention(cv: Converter, node: torch.fx.Node) -> Value:
    """torchvision's (shifted) window attention, V1 and V2 (cosine attention), written out with the traced
    shapes: pad, cyclic shift, window partition, attention with relative position bias and the constant shift
    mask, window merge, reverse shift, crop."""
    what = "'torchvision.models.swin_transformer.shifted_window_attention'"
    sv = cv.static_value
    inp = _arg(node, 0, "input")
    qkv_w, proj_w, rel_bias = (_static_tensor(cv, _arg(node, i, n)) for i, n in
                               ((1, "qkv_weight"), (2, "proj_weight"), (3, "relative_position_bias")))
    window = list(sv(_arg(node, 4, "window_size")))
    heads = int(sv(_arg(node, 5, "num_heads")))
    shift = list(sv(_arg(node, 6, "shift_size")))
    qkv_b = _static_tensor(cv, _arg(node, 9, "qkv_bias", None))
    proj_b = _static_tensor(cv, _arg(node, 10, "proj_bias", None))
    logit_arg = _arg(node, 11, "logit_scale", None)
    logit = _static_tensor(cv, logit_arg)
    if sv(_arg(node, 12, "training", True)):
        raise cv.unsupported(what, "training=True (dropout); import the model in eval mode")
    if qkv_w is None or proj_w is None or rel_bias is None or (logit_arg is not None and logit is None):
        raise cv.unsupported(what, "weights or a position bias computed from the input")
    b, h, w, c = cv.shape(inp)
    pad_r = (window[1] - w % window[1]) % window[1]
    pad_b = (window[0] - h % window[0]) % window[0]
    x = cv.x(inp)
    if pad_r or pad_b:
        x = cv.emit(PadOp, x, pads=(0, 0, 0, pad_r, 0, pad_b), suffix="pad")
    ph, pw = h + pad_b, w + pad_r
    if window[0] >= ph:
        shift[0] = 0
    if window[1] >= pw:
        shift[1] = 0
    if sum(shift) > 0:
        x = cv.emit(RollOp, x, shifts=(-shift[0], -shift[1]), axes=(1, 2), suffix="shift")
    nh, nw, n = ph // window[0], pw // window[1], window[0] * window[1]
    x = cv.emit(ReshapeOp, x, shape=(0, nh, window[0], nw, window[1], c), suffix="windows")
    x = cv.emit(TransposeOp, x, perm=(0, 1, 3, 2, 4, 5), suffix="windows_t")
    x = cv.emit(ReshapeOp, x, shape=(-1, n, c), suffix="partition")
    if logit is not None and qkv_b is not None:
        qkv_b = qkv_b.clone()
        qkv_b[c:2 * c] = 0
    path = node.meta.get("fixflow_path", "") or node.name
    qkv = cv.emit(LinearOp, x, cv.constant(qkv_w, f"{path}.qkv.weight"),
                  None if qkv_b is None else cv.constant(qkv_b, f"{path}.qkv.bias"), suffix="qkv")
    qkv = cv.emit(ReshapeOp, qkv, shape=(0, n, 3, heads, c // heads), suffix="qkv_heads")
    parts = []
    for i, name in enumerate("qkv"):
        t = cv.emit(SliceOp, qkv, axes=(2,), starts=(i,), ends=(i + 1,), suffix=name)
        t = cv.emit(ReshapeOp, t, shape=(0, n, heads, c // heads), suffix=f"{name}_r")
        parts.append(cv.emit(TransposeOp, t, perm=(0, 2, 1, 3), suffix=f"{name}_t"))
    q, k, v = parts
    if logit is not None:
        q = cv.emit(NormalizeOp, q, axis=3, suffix="q_norm")
        k = cv.emit(NormalizeOp, k, axis=3, suffix="k_norm")
        scale = torch.clamp(logit, max=math.log(100.0)).exp()
    else:
        q = cv.emit(MulOp, q, cv.scalar((c // heads) ** -0.5), suffix="q_scaled")
        scale = None
    attn = cv.emit(MatmulOp, q, _swap_last(cv, k, "k_t"), suffix="attn")
    if scale is not None:
        attn = cv.emit(MulOp, attn, cv.constant(scale, f"{path}.logit_scale_exp"), suffix="attn_scaled")
    attn = cv.emit(AddOp, attn, cv.constant(rel_bias, f"{path}.relative_position_bias"), suffix="attn_bias")
    if sum(shift) > 0:
        mask = torch.zeros(ph, pw)
        count = 0
        for hs in ((0, -window[0]), (-window[0], -shift[0]), (-shift[0], None)):
            for ws in ((0, -window[1]), (-window[1], -shift[1]), (-shift[1], None)):
                mask[hs[0]:hs[1], ws[0]:ws[1]] = count
                count += 1
        mask = mask.view(nh, window[0], nw, window[1]).permute(0, 2, 1, 3).reshape(nh * nw, n)
        mask = mask.unsqueeze(1) - mask.unsqueeze(2)
        mask = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0).unsqueeze(1).unsqueeze(0)
        attn = cv.emit(ReshapeOp, attn, shape=(-1, nh * nw, heads, n, n), suffix="attn_windows")
        attn = cv.emit(AddOp, attn, cv.constant(mask, f"{path}.shift_mask"), suffix="attn_masked")
        attn = cv.emit(ReshapeOp, attn, shape=(-1, heads, n, n), suffix="attn_merged")
    attn = cv.emit(SoftmaxOp, attn, axis=3, suffix="probs")
    x = cv.emit(MatmulOp, attn, v, suffix="attn_out")
    x = cv.emit(TransposeOp, x, perm=(0, 2, 1, 3), suffix="attn_out_t")
    x = cv.emit(ReshapeOp, x, shape=(0, n, c), suffix="attn_merge")
    x = cv.emit(LinearOp, x, cv.constant(proj_w, f"{path}.proj.weight"),
                None if proj_b is None else cv.constant(proj_b, f"{path}.proj.bias"), suffix="proj")
    x = cv.emit(ReshapeOp, x, shape=(-1, nh, nw, window[0], window[1], c), suffix="unwindow")
    x = cv.emit(TransposeOp, x, perm=(0, 1, 3, 2, 4, 5), suffix="unwindow_t")
    x = cv.emit(ReshapeOp, x, shape=(-1, ph, pw, c), suffix="reverse")
    if sum(shift) > 0:
        x = cv.emit(RollOp, x, shifts=(shift[0], shift[1]), axes=(1, 2), suffix="unshift")
    if pad_r or pad_b:
        x = _slice_value(cv, x, (b, ph, pw, c), {1: (0, h, 1), 2: (0, w, 1)}, suffix="crop")
    return x


@_on_function(torch.swapaxes, torch.swapdims)
@_on_method("swapaxes", "swapdims")
def _swapaxes(cv: Converter, node: torch.fx.Node) -> Value:
    x = node.args[0]
    rank = len(cv.shape(x))
    names = ("axis0", "axis1") if "axes" in str(node.target) else ("dim0", "dim1")
    d0 = cv.static_value(_arg(node, 1, names[0])) % rank
    d1 = cv.static_value(_arg(node, 2, names[1])) % rank
    perm = list(range(rank))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return cv.emit(TransposeOp, cv.x(x), perm=tuple(perm))
