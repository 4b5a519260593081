"""The _int.xmodel a Quantizer exports: malformed attributes are one XModelError; the file round-trips bit-exact."""

from __future__ import annotations

import numpy as np
import pytest

from fixflow.backends.xmodel import XAttr, XModelError, read_xmodel, write_xmodel
from fixflow.backends.xmodel.fix_xmodel import read_int_xmodel
from fixflow.runtime.fix_executor import run_quantized, simulate_quantized


# ---- malformed _int.xmodel attributes
@pytest.mark.parametrize("op_type,key,value", [
    ("conv2d-fix", "pad", [1, 1]),
    ("conv2d-fix", "pad", 0),
    ("conv2d-fix", "kernel", [3]),
    ("conv2d-fix", "stride", "FOO"),
    ("conv2d-fix", "dilation", True),
    ("conv2d-fix", "group", "FOO"),
    ("conv2d-fix", "group", [1, 1]),
    ("pool-fix", "kernel", [2]),
    ("pool-fix", "pad", [0, 0, 0, 0, 0, 0, 0, 0]),
    ("reshape-fix", "shape", 0),
    ("reshape-fix", "shape", "AB"),
])
def test_int_xmodel_malformed_attribute(calibrated, tmp_path, op_type, key, value):
    g = read_xmodel(calibrated[2])
    op = next(o for o in g.ops if o.type == op_type)
    kind = ("int32_vec" if isinstance(value, list) else "bool" if isinstance(value, bool)
            else "int32" if isinstance(value, int) else "string")
    op.attrs[key] = XAttr(kind, value)
    p = tmp_path / "bad.xmodel"
    write_xmodel(g, p)
    with pytest.raises(XModelError) as ei:
        read_int_xmodel(p)
    msg = ei.value.message
    assert msg.startswith(f"{p}: op {op.name!r} ({op_type})") and key in msg and "\n" not in msg


def test_int_xmodel_roundtrip_still_bit_exact(calibrated):
    _, qt, path = calibrated
    x = np.random.default_rng(1).random((7, 1, 8, 8)).astype(np.float32)
    m = read_int_xmodel(path)
    a = run_quantized(qt.fix_module, [x])[0]
    assert np.array_equal(a, simulate_quantized(qt.fix_module, [x])[0])
    assert np.array_equal(a, run_quantized(m, [x])[0])
