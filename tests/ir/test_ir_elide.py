"""Eliding large data when printing (MLIR's --mlir-elide-elementsattrs-if-larger and
--mlir-elide-resource-strings-if-larger): the forms mlir-opt-22 prints, and what reading them back gives."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from fixflow.ir import parse_module, print_module
from fixflow.ir.attributes import DenseResourceElementsAttr, MissingResourceError
from fixflow.ir.diagnostics import FixflowError

MLIR_OPT = shutil.which("mlir-opt-22")
needs_mlir = pytest.mark.skipif(MLIR_OPT is None, reason="mlir-opt-22 (Debian mlir-22-tools) is not installed")

# blob1: 4 x f32 (quoted hex text 44 characters); blob2: 2 x i8 (16 characters)
TEXT = '''"builtin.module"() ({
  "func.func"() ({
  ^bb0(%arg0: tensor<4xf32>):
    %0 = "arith.constant"() {value = dense_resource<blob1> : tensor<4xf32>} : () -> tensor<4xf32>
    %1 = "arith.constant"() {value = dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>} : () -> tensor<4xf32>
    %2 = "arith.constant"() {value = dense<1.0> : tensor<4xf32>} : () -> tensor<4xf32>
    %3 = "arith.constant"() {value = dense<[1, 2]> : tensor<2xi8>} : () -> tensor<2xi8>
    %4 = "arith.constant"() {value = dense_resource<blob2> : tensor<2xi8>} : () -> tensor<2xi8>
    "func.return"(%1) : (tensor<4xf32>) -> ()
  }) {function_type = (tensor<4xf32>) -> tensor<4xf32>, sym_name = "main"} : () -> ()
}) : () -> ()
{-#
  dialect_resources: {
    builtin: {
      blob1: "0x040000000000803F000000400000404000008040",
      blob2: "0x010000000102"
    }
  }
#-}
'''

LIMITS = [(2, 10), (3, 20), (1, 16), (1, 15), (4, 44), (4, 43), (0, 0), (100, 1000)]


def _values(text: str) -> list[str]:
    return [line.split("value = ")[1].split("}")[0] for line in text.splitlines() if "value = " in line]


@pytest.mark.parametrize("elements,resources", LIMITS)
def test_elided_forms(elements, resources):
    text = print_module(parse_module(TEXT), elide_elements_if_larger=elements, elide_resources_if_larger=resources)
    values = _values(text)
    # a non-splat dense of more elements than the limit becomes dense_resource<__elided__>; splats never do
    assert (values[1] == "dense_resource<__elided__> : tensor<4xf32>") == (4 > elements)
    assert values[2] == "dense<1.0> : tensor<4xf32>"
    assert (values[3] == "dense_resource<__elided__> : tensor<2xi8>") == (2 > elements)
    # references to resources stay; a blob longer than the limit (quotes counted) leaves the section
    assert values[0] == "dense_resource<blob1> : tensor<4xf32>"
    assert ("blob1:" in text) == (44 <= resources) and ("blob2:" in text) == (16 <= resources)
    assert ("{-#" in text) == (16 <= resources)


def test_no_limit_prints_everything():
    text = print_module(parse_module(TEXT))
    assert "__elided__" not in text and "blob1:" in text and "dense<[1, 2]>" in text


@needs_mlir
@pytest.mark.parametrize("elements,resources", LIMITS)
def test_same_as_mlir_opt(tmp_path, elements, resources):
    """mlir-opt-22's elided output, read by fixflow and printed in full, is fixflow's elided output."""
    f = tmp_path / "in.mlir"
    f.write_text(TEXT)
    r = subprocess.run([MLIR_OPT, str(f), "--mlir-print-op-generic", f"--mlir-elide-elementsattrs-if-larger={elements}",
                        f"--mlir-elide-resource-strings-if-larger={resources}"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    theirs = print_module(parse_module(r.stdout, "mlir-opt.mlir"))
    ours = print_module(parse_module(TEXT), elide_elements_if_larger=elements, elide_resources_if_larger=resources)
    assert theirs == ours


@needs_mlir
def test_mlir_opt_reads_fixflow_elided_output(tmp_path):
    f = tmp_path / "elided.mlir"
    f.write_text(print_module(parse_module(TEXT), elide_elements_if_larger=1, elide_resources_if_larger=20))
    r = subprocess.run([MLIR_OPT, str(f), "--mlir-print-op-generic"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "dense_resource<__elided__> : tensor<4xf32>" in r.stdout


def test_reading_elided_text_back():
    """It parses (as in MLIR); computing with the absent data is one clear error naming the elision."""
    text = print_module(parse_module(TEXT), elide_elements_if_larger=1, elide_resources_if_larger=10)
    m = parse_module(text)
    attrs = [op.attributes["value"] for op in m.walk() if op.name == "arith.constant"]
    elided = [a for a in attrs if isinstance(a, DenseResourceElementsAttr) and a.key == "__elided__"]
    assert len(elided) == 2
    with pytest.raises(MissingResourceError, match="elided when the IR was printed") as info:
        elided[0].array
    assert isinstance(info.value, FixflowError) and isinstance(info.value, ValueError)
    with pytest.raises(MissingResourceError, match=r"dense_resource<blob1> : tensor<4xf32> has no data: .*"
                                                   r"mlir-elide-resource-strings-if-larger"):
        attrs[0].array
    assert print_module(m) == text  # and it prints back the same


def test_large_weights_never_turn_into_text(monkeypatch):
    """An elided blob's hex text is not built (printing ResNet weights during a pipeline must stay cheap)."""
    from fixflow.ir.attributes import ResourceBlob
    m = parse_module(TEXT.replace("tensor<4xf32>} : () -> tensor<4xf32>\n    %1", "tensor<256x256xf32>} : () -> "
                                  "tensor<256x256xf32>\n    %1", 1).split("{-#")[0])
    const = next(op for op in m.walk() if op.name == "arith.constant")
    const.attributes["value"] = DenseResourceElementsAttr.from_array("big", np.zeros((256, 256), np.float32))

    def no_hex(self):
        raise AssertionError("hex text built for an elided blob")
    monkeypatch.setattr(ResourceBlob, "hex", no_hex)
    text = print_module(m, elide_resources_if_larger=64)
    assert "dense_resource<big>" in text and "big:" not in text
