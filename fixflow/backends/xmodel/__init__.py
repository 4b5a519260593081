"""The .xmodel backend: XIR serial_v2 files <-> a small in-memory graph model.

Build a graph (ops in topological order; each op has exactly one output tensor)::

    from fixflow.backends.xmodel import XGraph, XOp, XTensor, read_xmodel, write_xmodel

    x = XOp("x", "data-fix", {"shape": [1, 8, 8, 1], "data_type": "XINT8"},
            output=XTensor("x", [1, 8, 8, 1], "XINT8", {"fix_point": 7, "bit_width": 8}))
    w = XOp("w", "const-fix", {"data": b"...", "shape": [4, 3, 3, 1], "data_type": "XINT8"},
            output=XTensor("w", [4, 3, 3, 1], "XINT8"))
    c = XOp("c", "conv2d-fix", {"kernel": [3, 3], "stride": [1, 1], "pad": [1, 1, 1, 1]},
            inputs={"input": ["x"], "weights": ["w"]},
            output=XTensor("c", [1, 8, 8, 4], "XINT8", {"fix_point": 4}))
    g = XGraph("net", [x, w, c], {"origin": "fixflow"})   # root=None: default subgraph tree
    write_xmodel(g, "net.xmodel")                           # also: xmodel_bytes(g)
    g2 = read_xmodel("net.xmodel")                          # read_xmodel_bytes(data, name)
    assert g2.ops == g.ops and g2.root == g.default_root()

Model (``model.py``):
  ``XGraph(name, ops, attrs, root)``: ``op(name)``, ``op_map()``, ``consumers()``,
  ``toposorted()``, ``validate()``, ``default_root()``, ``root_or_default()``,
  ``toposort_children(sg)``, ``subgraph_inputs(sg)``, ``subgraph_outputs(sg)`` (pass
  ``index=g.index()`` when asking many times).
  ``XOp(name, type, attrs, inputs, *, output)``: ``inputs`` maps arg name -> producer op names.
  ``XTensor(name, shape, data_type, attrs)``: ``data_type`` like ``"XINT8"``/``"FLOAT32"``.
  ``XSubgraph(name, op_names, attrs, children)``: leaf xor inner node; ``walk()``,
  ``find(name)``, ``all_op_names()``, ``device``.
  Everything with attrs has ``attr(name, default)``, ``has_attr``, ``set_attr``.
  ``XAttr(kind, value)`` carries an explicit XIR kind (``"int32"``, ``"uint64"``,
  ``"map_string_2_bytes"``, ... see ``ATTR_KINDS``); plain values are inferred (bool, int ->
  int32/int64, float -> double, str, bytes, lists -> *_vec, dicts -> map_string_2_*).
  The rules are in the ``model`` module docstring.
I/O (``serial.py``): ``write_xmodel(graph, path)``, ``xmodel_bytes(graph)``,
  ``read_xmodel(path)``, ``read_xmodel_bytes(data, name)``; ``to_proto``/``from_proto`` for the
  raw ``serial_v2.Graph`` message (classes from ``schema.messages()``).
Checks: ``netron_problems(path_or_bytes) -> list[str]`` (``netron.py``).
Errors: every problem is an :class:`XModelError` with one message naming the file.
"""

from .model import (ATTR_KINDS, DATA_TYPE_ENUM, GraphIndex, XAttr, XGraph, XModelError, XOp, XSubgraph,
                    XTensor, format_data_type, infer_kind, parse_data_type, to_attr)
from .netron import netron_problems
from .serial import (from_proto, read_xmodel, read_xmodel_bytes, to_proto, write_xmodel,
                     xmodel_bytes)

__all__ = [
    "ATTR_KINDS", "DATA_TYPE_ENUM", "GraphIndex", "XAttr", "XGraph", "XModelError", "XOp", "XSubgraph",
    "XTensor", "format_data_type", "infer_kind", "parse_data_type", "to_attr",
    "netron_problems", "from_proto", "read_xmodel", "read_xmodel_bytes", "to_proto",
    "write_xmodel", "xmodel_bytes",
]
