"""Issue 8's remaining named cases: pass options, error classes, misleading frontend messages, warnings."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

from fixflow.dialects.fix.numerics import NumericsError, fix_pos_diffs
from fixflow.dialects.graph.shapes import ShapeError
from fixflow.frontends.torch import import_module
from fixflow.ir.diagnostics import FixflowError
from fixflow.ir.passes import PipelineError, parse_pipeline


@pytest.mark.parametrize("pipeline,message", [
    ("calibrate{bit_width=0}", "'bit_width' must be >= 2: 0"),
    ("calibrate{bit_width=17}", "'bit_width' must be <= 16: 17"),
    ("calibrate{scope=0}", "'scope' must be >= 1: 0"),
    ("calibrate{batches=-2}", "'batches' must be >= 1: -2"),
    ("calibrate{batch_size=0}", "'batch_size' must be >= 1: 0"),
    ("calibrate{method=mse}", "'method' must be in ('diffs', 'maxmin') (got 'mse')"),
    ("infer-shapes{batch=-3}", "'batch' must be >= 0: -3"),
    ("equalize{threshold=nan}", "option 'threshold' must be a finite number >= 0, got nan"),
    ("equalize{threshold=inf}", "option 'threshold' must be a finite number >= 0, got inf"),
    ("equalize{threshold=-0.5}", "option 'threshold' must be a finite number >= 0, got -0.5"),
])
def test_pass_options_are_validated(pipeline, message):
    with pytest.raises(PipelineError) as e:
        parse_pipeline(f"builtin.module({pipeline})")
    assert e.value.message.endswith(message), e.value.message


@pytest.mark.parametrize("pipeline", ["calibrate{bit_width=8}", "infer-shapes{batch=0}", "equalize{threshold=0}"])
def test_valid_pass_options_still_parse(pipeline):
    parse_pipeline(f"builtin.module({pipeline})")


def test_numerics_and_shape_errors_are_user_errors():
    assert issubclass(NumericsError, FixflowError) and issubclass(NumericsError, ValueError)
    assert issubclass(ShapeError, FixflowError) and issubclass(ShapeError, ValueError)
    with pytest.raises(NumericsError, match=r"bit_width must be an integer in \[2, 32\], got 0") as e:
        fix_pos_diffs(np.ones(3, np.float32), 0)
    assert str(e.value) == e.value.message   # str() stays the bare message for callers that embed it


@pytest.mark.parametrize("layer", [nn.ConvTranspose2d(2, 2, 3), nn.BatchNorm2d(2).eval(), nn.Conv2d(2, 2, 3)])
def test_bare_torch_layer_as_the_model(layer):
    m = import_module(layer, (torch.zeros(1, 2, 5, 5),))
    names = [op.name for op in m.walk()]
    assert any(n in names for n in ("graph.conv_transpose2d", "graph.batch_norm", "graph.conv2d")), names


def test_bare_unsupported_layer_names_it_with_a_location():
    with pytest.raises(FixflowError) as e:
        import_module(nn.BatchNorm2d(2, track_running_stats=False), (torch.zeros(1, 2, 5, 5),))
    msg = e.value.render()
    assert "unsupported operation 'torch.nn.BatchNorm2d'" in msg and "track_running_stats=False" in msg
    assert "control flow" not in msg
    assert "test_reliability_misc.py" in msg   # the caller's line, not fixflow's


class ReturnsShape(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return self.c(x), x.shape[0]


def test_returning_a_shape_value_is_an_import_error():
    with pytest.raises(FixflowError, match=r"the model returns 'getitem', a Python int \(1\) computed while tracing"):
        import_module(ReturnsShape(), (torch.zeros(1, 1, 5, 5),))


def test_tools_print_numpy_warnings_without_source_lines():
    code = ("import numpy as np; from fixflow.tools.common import run_tool; "
            "raise SystemExit(run_tool(lambda: print(np.float32(3e38) * np.float32(10))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    assert r.stderr == "warning: overflow encountered in scalar multiply (RuntimeWarning)\n"
