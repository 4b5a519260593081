"""The reference interpreter: every graph op against a torch twin at batch 1 and 5, the observer hook,
calls, and clear errors for bad inputs and ops without semantics."""

from __future__ import annotations

import numpy as np
import pytest

from _lib.graph import GraphBuilder, every_op_model, rand
from fixflow.dialects import graph as G
from fixflow.ir import parse_module, print_module
from fixflow.ir.interpreter import InterpreterError, run_function, run_module


@pytest.mark.parametrize("batch", [1, 5])
def test_every_op_model_matches_torch(batch):
    m, _, torch_fn = every_op_model(seed=3)
    x = rand(np.random.default_rng(batch), batch, 3, 8, 8)
    outs = run_module(m, [x])
    refs = torch_fn(x)
    assert len(outs) == 3
    for y, r in zip(outs, refs):
        assert y.shape == r.shape and y.dtype == np.float32
        np.testing.assert_allclose(y, r, rtol=1e-4, atol=1e-5)


def test_batch_rows_are_independent():
    m, _, _ = every_op_model(seed=4)
    x = rand(np.random.default_rng(0), 5, 3, 8, 8)
    full = run_module(m, [x])
    for i in (0, 3):
        single = run_module(m, [x[i:i + 1]])
        for a, b in zip(full, single):
            np.testing.assert_allclose(a[i:i + 1], b, rtol=1e-5, atol=1e-6)


def test_parsed_module_runs_like_built_one():
    m, _, _ = every_op_model(seed=5)
    x = rand(np.random.default_rng(1), 2, 3, 8, 8)
    m2 = parse_module(print_module(m))
    for a, b in zip(run_module(m, [x]), run_module(m2, [x])):
        np.testing.assert_array_equal(a, b)


def test_observer_sees_every_op():
    m, _, _ = every_op_model()
    seen = []
    run_module(m, [rand(np.random.default_rng(0), 2, 3, 8, 8)], observer=lambda op, outs: seen.append((op, outs)))
    func = m.functions()[0]
    assert [op for op, _ in seen] == list(func.body.ops)[:-1]
    by_name = {op.results[0].name_hint: outs[0] for op, outs in seen if op.results[0].name_hint}
    assert by_name["conv"].shape == (2, 4, 8, 8)
    assert (by_name["relu"] >= 0).all()


def test_float64_inputs_are_cast():
    m, _, _ = every_op_model()
    out = run_module(m, [np.random.default_rng(0).standard_normal((1, 3, 8, 8))])
    assert all(o.dtype == np.float32 for o in out)


@pytest.mark.parametrize("inputs,message", [
    ([], "takes 1 input(s), got 0"),
    ([np.zeros((1, 3, 8))], "input #0 'x': expected shape (N, 3, 8, 8) (a rank-4 tensor, any batch size), got (1, 3, 8)"),
    ([np.zeros((2, 4, 8, 8))], "input #0 'x': expected shape (N, 3, 8, 8), got (2, 4, 8, 8) (channels: 4 instead of 3)"),
    ([np.zeros((2, 3, 8, 9))], "(dimension 3: 9 instead of 8)"),
])
def test_input_mismatch_errors(inputs, message):
    m, _, _ = every_op_model()
    with pytest.raises(InterpreterError) as info:
        run_module(m, inputs)
    assert message in info.value.message


def test_op_without_semantics_has_location():
    text = ('"builtin.module"() ({\n  "func.func"() ({\n  ^bb0(%x: tensor<2xf32>):\n'
            '    %y = "mystery.op"(%x) : (tensor<2xf32>) -> tensor<2xf32>\n'
            '    "func.return"(%y) : (tensor<2xf32>) -> ()\n'
            '  }) {sym_name = "main", function_type = (tensor<2xf32>) -> tensor<2xf32>} : () -> ()\n}) : () -> ()\n')
    m = parse_module(text, "mystery.mlir", allow_unregistered=True)
    with pytest.raises(InterpreterError) as info:
        run_module(m, [np.zeros(2, np.float32)])
    rendered = info.value.render()
    assert rendered.startswith("mystery.mlir:4:")
    assert "'mystery.op' has no reference semantics" in rendered


def test_runtime_failure_names_op():
    # a reshape with a literal batch runs at batch 1 only
    g = GraphBuilder([(1, 2, 3)])
    m = g.ret(g.op(G.ReshapeOp, g.args[0], shape=(1, 6)))
    assert run_module(m, [np.ones((1, 2, 3), np.float32)])[0].shape == (1, 6)
    with pytest.raises(InterpreterError, match=r"'graph.reshape' failed at run time on operand shapes \(4, 2, 3\): "
                                               r"reshape: cannot reshape"):
        run_module(m, [np.ones((4, 2, 3), np.float32)])


def test_function_selection_and_calls():
    text = ('"builtin.module"() ({\n'
            '  "func.func"() ({\n  ^bb0(%x: tensor<1x3xf32>):\n'
            '    %y = "graph.relu"(%x) : (tensor<1x3xf32>) -> tensor<1x3xf32>\n'
            '    "func.return"(%y) : (tensor<1x3xf32>) -> ()\n'
            '  }) {sym_name = "inner", function_type = (tensor<1x3xf32>) -> tensor<1x3xf32>} : () -> ()\n'
            '  "func.func"() ({\n  ^bb0(%x: tensor<1x3xf32>):\n'
            '    %y = "func.call"(%x) {callee = @inner} : (tensor<1x3xf32>) -> tensor<1x3xf32>\n'
            '    %z = "graph.add"(%y, %y) : (tensor<1x3xf32>, tensor<1x3xf32>) -> tensor<1x3xf32>\n'
            '    "func.return"(%z) : (tensor<1x3xf32>) -> ()\n'
            '  }) {sym_name = "outer", function_type = (tensor<1x3xf32>) -> tensor<1x3xf32>} : () -> ()\n'
            '}) : () -> ()\n')
    m = parse_module(text)
    x = np.array([[-1, 2, -3]], np.float32)
    np.testing.assert_array_equal(run_module(m, [x], function="outer")[0], [[0, 4, 0]])
    np.testing.assert_array_equal(run_function(m.functions()[0], [x])[0], [[0, 2, 0]])
    with pytest.raises(InterpreterError, match=r"2 functions \(@inner, @outer\) and none is @main"):
        run_module(m, [x])
    with pytest.raises(InterpreterError, match="no function @nope"):
        run_module(m, [x], function="nope")
