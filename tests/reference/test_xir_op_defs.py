"""fixflow's `_int.xmodel` ops against XIR's built-in op definitions (always on; no AMD install needed).

AMD's XIR ignores the `op_defs` a file stores and checks each op against its own built-in
definition while loading: the type must be built in (an unknown type gets a stand-in that wants
`shape`, `data_type` and one `input`), every REQUIRED attribute must be set, every argument must be
declared and occur as declared, attributes are read with the C++ type of the definition, and
`data`/`const` shapes must be non-empty and positive. The table below restates those facts for the
types fixflow writes, read from amd/xir `src/xir/op/built_in_ops.cpp` (commit 402341dd) and
`shape_inference.cpp`; test_amd_tools.py checks the same files with AMD's own `xir` when installed.
"""

from __future__ import annotations

import numpy as np
import pytest

from _amd_files import OP_NETS, op_net_int_xmodel, scalar_const_int_xmodel, zoo_int_xmodel, zoo_names
from fixflow.backends.xmodel import read_xmodel

REQ, OPT, REP, REQ_REP = "required", "optional", "repeated", "required_and_repeated"
_CONV = ({"input": REQ, "weights": REQ, "bias": OPT},
         {"kernel": ("int32_vec", 2), "stride": ("int32_vec", 2)},
         {"dilation": ("int32_vec", 2), "pad": ("int32_vec", 4), "nonlinear": ("string", None),
          "hsigmoid_in": ("int32", None), "shift_hsigmoid": ("int32", None), "shift_hswish": ("int32", None)})
_SRC = ({}, {"shape": ("int32_vec", None), "data_type": ("string", None)}, {})
_FIX = ({"input": REQ}, {"fix_point": ("int32", None), "bit_width": ("int32", None),
                         "round_mode": ("string", None), "if_signed": ("bool", None)}, {})
_ACT = ({"input": REQ}, {}, {})
_REDUCE = ({"input": REQ}, {"axis": ("int32_vec", None), "keep_dims": ("bool", None)}, {})
_POOL = ({"input": REQ}, {"kernel": ("int32_vec", 2), "stride": ("int32_vec", 2), "pad_mode": ("string", None)},
         {"pad": ("int32_vec", 4), "global": ("bool", None)})

#: type -> (arguments and their occurrence, required attributes (kind, length), optional attributes)
XIR_BUILT_IN: dict[str, tuple[dict, dict, dict]] = {
    "data-fix": _SRC,
    "const-fix": (_SRC[0], {**_SRC[1], "data": ("bytes", None)}, {}),
    "const": (_SRC[0], {**_SRC[1], "data": ("bytes", None)}, {}),
    "conv2d-fix": (_CONV[0], _CONV[1], {**_CONV[2], "group": ("int32", None)}),
    "depthwise-conv2d-fix": _CONV,
    "transposed-conv2d-fix": _CONV,
    "pool-fix": ({"input": REQ}, {"kernel": ("int32_vec", 2), "stride": ("int32_vec", 2), "type": ("string", None)},
                 {"pad": ("int32_vec", 4)}),
    "eltwise-fix": ({"input": REQ_REP}, {}, {"nonlinear": ("string", None), "type": ("string", None)}),
    "concat-fix": ({"input": REQ_REP}, {"axis": ("int32", None)}, {}),
    "reshape-fix": ({"input": REQ}, {"shape": ("int32_vec", None)}, {}),
    "upsample-fix": ({"input": REQ, "size": OPT}, {"mode": ("string", None), "scale": ("float_vec", 2)},
                     {"align_corners": ("bool", None), "half_pixel_centers": ("bool", None)}),
    "pad-fix": ({"input": REQ}, {"paddings": ("int32_vec", None), "mode": ("string", None)},
                {"constant_values": ("bytes", None)}),
    "hard-sigmoid-fix": _ACT,
    "hard-swish-fix": _ACT,
    "transpose": ({"input": REQ}, {"order": ("int32_vec", None)}, {}),
    "fix": _FIX,
    "fix2float": _FIX,
    "matmul-fix": ({"input": REQ_REP, "weights": OPT, "bias": OPT},
                   {"transpose_a": ("bool", None), "transpose_b": ("bool", None)}, {}),
    "sigmoid": _ACT,
    "leaky-relu": ({"input": REQ}, {"alpha": ("float", None)}, {}),
    "reduction_mean": _REDUCE,
    "tanh": _ACT,
    "swish": ({"input": REQ}, {}, {"beta": ("float", None)}),
    "softmax": ({"input": REQ}, {"axis": ("int32", None)}, {}),
    "prelu": ({"input": REQ, "weight": REQ}, {}, {}),
    "sub": ({"input": REQ_REP}, {}, {}),
    "matmul": ({"input": REQ_REP, "bias": OPT}, {"transpose_a": ("bool", None), "transpose_b": ("bool", None)}, {}),
    # issue 15's float CPU ops and the strided slice (built_in_ops.cpp: ActivationOpDefGenerator,
    # LayerNormOpDefGenerator, groupnorm, ReductionOpDefGenerator, l2_normalize, StridedSliceOpDefGenerator)
    "gelu": _ACT,
    "mish": _ACT,
    "layernorm": ({"input": REQ, "weights": REQ, "bias": OPT}, {},
                  {"axis": ("int32", None), "epsilon": ("float", None), "stash_type": ("int32", None)}),
    "groupnorm": ({"input": REQ, "weights": OPT, "bias": OPT},
                  {"num_groups": ("int32", None), "num_channels": ("int32", None), "eps": ("float", None),
                   "affine": ("bool", None)}, {}),
    "reduction_sum": _REDUCE,
    "reduction_max": _REDUCE,
    "reduction_min": _REDUCE,
    "l2_normalize": ({"input": REQ}, {}, {"axis": ("int32_vec", None), "epsilon": ("double", None)}),
    "strided_slice-fix": ({"input": REQ}, {"begin": ("int32_vec", None), "end": ("int32_vec", None),
                                           "strides": ("int32_vec", None)}, {}),
    # layers left in float (ActivationOpDefGenerator, Pool2dOpDefGenerator, ResizeOpDefGenerator, ConvOpDefGenerator)
    "relu": _ACT,
    "relu6": _ACT,
    "hard-sigmoid": _ACT,
    "hard-swish": _ACT,
    "maxpool2d": _POOL,
    "avgpool2d": (_POOL[0], _POOL[1], {**_POOL[2], "count_include_pad": ("bool", None),
                                       "count_include_invalid": ("bool", None)}),
    "resize": ({"input": REQ, "size": OPT}, {"mode": ("string", None)},
               {"align_corners": ("bool", None), "half_pixel_centers": ("bool", None), "scale": ("float_vec", None)}),
    "transposed-conv2d": (_CONV[0], {**_CONV[1], "pad_mode": ("string", None)}, _CONV[2]),
}


def xir_problems(path) -> list[str]:
    """Every way the ops of `path` break XIR's built-in definitions (empty: AMD's XIR can build the graph)."""
    g = read_xmodel(path)
    shapes = {o.name: o.output.shape for o in g.ops}
    problems = []
    for o in g.ops:
        where = f"{o.name} ({o.type})"
        if o.type not in XIR_BUILT_IN:
            problems.append(f"{where}: not an XIR built-in op type")
            continue
        args, required, optional = XIR_BUILT_IN[o.type]
        for a, names in o.inputs.items():
            if a not in args:
                problems.append(f"{where}: argument {a!r} is not declared (XIR has {sorted(args)})")
        for a, occur in args.items():
            n = len(o.inputs.get(a, []))
            if (occur == REQ and n != 1) or (occur == OPT and n > 1) or (occur == REQ_REP and n < 1):
                problems.append(f"{where}: argument {a!r} is {occur} but has {n} producer(s)")
        for k in required:
            if not o.has_attr(k):
                problems.append(f"{where}: required attribute {k!r} is missing")
        for k, (kind, length) in {**required, **optional}.items():
            if o.has_attr(k):
                a = o.attrs[k]
                if a.kind != kind:
                    problems.append(f"{where}: attribute {k!r} is {a.kind}, XIR reads {kind}")
                elif length is not None and len(a.value) != length:
                    problems.append(f"{where}: attribute {k!r} needs {length} values, has {len(a.value)}")
        if o.type in ("data-fix", "const-fix", "const") and o.has_attr("shape"):
            shape = o.attrs["shape"].value
            if not shape or any(d <= 0 for d in shape):
                problems.append(f"{where}: shape {shape} must be non-empty and positive")
        if o.type in ("sub", "matmul", "eltwise-fix") and len(o.inputs.get("input", [])) < 2:
            problems.append(f"{where}: needs at least 2 inputs")
        if o.type == "reshape-fix" and o.has_attr("shape"):
            src = shapes[o.inputs["input"][0]]
            if int(np.prod(src)) != int(np.prod(o.attrs["shape"].value)):
                problems.append(f"{where}: shape {o.attrs['shape'].value} does not hold {src}")
    return problems


@pytest.mark.parametrize("key", sorted(OP_NETS))
def test_exported_ops_match_xir_definitions(key, tmp_path):
    assert xir_problems(op_net_int_xmodel(key, tmp_path)) == []


def test_op_nets_cover_every_exporter_type(tmp_path):
    """The op nets above emit every XIR type the exporter can write (a new mapping needs a net here)."""
    from fixflow.backends.xmodel.fix_xmodel import _FIX_TYPES, XIR_FLOAT_OPS
    emitted = {o.type for key in OP_NETS for o in read_xmodel(op_net_int_xmodel(key, tmp_path)).ops}
    exporter = set(_FIX_TYPES.values()) | {t for t, _, _ in XIR_FLOAT_OPS.values()} | {"const"}
    assert exporter - emitted == set()
    assert exporter - set(XIR_BUILT_IN) == set()   # and the table above knows each of them


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n not in ("digits_cnn", "tiny_mobilenet")
                                  else n for n in zoo_names()])
def test_zoo_int_xmodels_match_xir_definitions(name, tmp_path_factory):
    assert xir_problems(zoo_int_xmodel(name, tmp_path_factory)) == []


def test_scalar_float_constant_is_written_with_shape_1(tmp_path):
    """A rank-0 constant read by a CPU op is written as shape [1] (XIR's `const` needs a non-empty shape),
    and reads back as a working module."""
    from fixflow.backends.xmodel.fix_xmodel import read_int_xmodel
    path = scalar_const_int_xmodel(tmp_path)
    assert xir_problems(path) == []
    g = read_xmodel(path)
    (c,) = [o for o in g.ops if o.type == "const"]
    assert c.attr("shape") == [1] and c.output.shape == [1] and np.frombuffer(c.attr("data"), "<f4").tolist() == [0.5]
    (sub,) = [o for o in g.ops if o.type == "sub"]
    assert sub.inputs["input"][1] == c.name
    read_int_xmodel(path)


def test_the_checker_finds_what_amd_rejects(tmp_path):
    """Each rule catches the mistake AMD's xir aborts on (messages measured with AMD's xir 3.5)."""
    from fixflow.backends.xmodel import write_xmodel
    path = op_net_int_xmodel("cpu_ops", tmp_path)
    g = read_xmodel(path)
    by_type = {o.type: o for o in g.ops}
    by_type["swish"].type = "silu"                                # unknown type: "Attr shape ... not set"
    by_type["prelu"].inputs["slope"] = by_type["prelu"].inputs.pop("weight")   # "Arg weight ... 0 elements"
    del by_type["matmul"].attrs["transpose_a"]                    # "Attr transpose_a has type REQUIRED"
    write_xmodel(g, tmp_path / "bad.xmodel")
    problems = "\n".join(xir_problems(tmp_path / "bad.xmodel"))
    assert "(silu): not an XIR built-in op type" in problems
    assert "(prelu): argument 'slope' is not declared" in problems
    assert "(prelu): argument 'weight' is required but has 0 producer(s)" in problems
    assert "(matmul): required attribute 'transpose_a' is missing" in problems
