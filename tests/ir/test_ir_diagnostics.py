"""Malformed text gives one ParseError with the right `file:line:col`, the source line and a caret."""

from __future__ import annotations

import pytest

from fixflow.ir import FileLineColLoc, FixflowError, ParseError, VerifyError, parse_module
from fixflow.ir.parser import parse_attribute, parse_type

FUNC = ('"func.func"() ({{\n'
        '^bb0(%a: i32):\n'
        '{body}'
        '}}) {{function_type = (i32) -> i32, sym_name = "f"}} : () -> ()\n')

# name: (text, line, col, message fragment); texts use registered ops unless they say otherwise
CASES = {
    "unknown type": ('%0 = "test.a"() : () -> foo32\n', 1, 25, "unknown type 'foo32'"),
    "unknown element type": ('"test.a"() : () -> tensor<3xq>\n', 1, 29, "unknown type 'q'"),
    "missing ')' in operands": ('%0 = "test.a"(%1 : () -> i32\n', 1, 18, "expected ',' or ')' in the operand list"),
    "missing ')' in type": ('"test.a"() : (i32 -> ()\n', 1, 19, "expected ',' or ')' in the type list"),
    "missing '->'": ('"test.a"() : () i32\n', 1, 17, "expected '->'"),
    "undefined value": (FUNC.format(body='  %0 = "arith.addi"(%a, %nope) : (i32, i32) -> i32\n'
                                         '  "func.return"(%0) : (i32) -> ()\n'),
                        3, 25, "use of undeclared SSA value '%nope'"),
    "redefinition": ('%0 = "test.a"() : () -> i32\n%0 = "test.a"() : () -> i32\n', 2, 1,
                     "redefinition of SSA value '%0'"),
    "redefinition of a block argument": (FUNC.format(body='  %a = "test.a"() : () -> i32\n'), 3, 3,
                                         "redefinition of SSA value '%a'"),
    "type mismatch of a use": ('%0 = "test.a"() : () -> i32\n%1 = "test.b"(%0) : (i64) -> i64\n', 2, 15,
                               "use of value '%0' expects type i64, but it has type i32"),
    "type mismatch of a forward use": ('"test.r"() ({\n  %1 = "test.b"(%0) : (i64) -> i64\n'
                                       '  %0 = "test.a"() : () -> i32\n}) : () -> ()\n', 2, 17,
                                       "use of value '%0' expects type i64, but it is defined as i32"),
    "operand count vs function type": ('%0 = "test.a"() : () -> i32\n%1 = "test.b"(%0, %0) : (i32) -> i32\n', 2, 25,
                                       "operation has 2 operands but its type lists 1"),
    "result count vs function type": ('%0 = "test.a"() : () -> (i32, i32)\n', 1, 19,
                                      "operation defines 1 results but its type lists 2"),
    "result group count": ('%0:3 = "test.a"() : () -> (i32, i32)\n', 1, 21,
                           "operation defines 3 results but its type lists 2"),
    "not a function type": ('"test.a"() : i32\n', 1, 14, "expected a function type"),
    "unregistered op": ('\n  %0 = "test.a"() : () -> i32\n', 2, 8, "unregistered operation 'test.a'"),
    "unknown op of a known dialect": ('%0 = "arith.frobnicate"() : () -> i32\n', 1, 6,
                                      "unknown operation 'arith.frobnicate' in dialect 'arith'"),
    "unknown op of the fix dialect": ('"fix.nope"() : () -> ()\n', 1, 1, "unknown operation 'fix.nope' in dialect 'fix'"),
    "bad dense count": ('"test.a"() {v = dense<[1, 2, 3]> : tensor<2xi32>} : () -> ()\n', 1, 23,
                        "the literal's shape [3] differs from the type's [2]"),
    "bad dense token": ('"test.a"() {v = dense<[1, x]> : tensor<2xi32>} : () -> ()\n', 1, 27,
                        "expected a dense element literal"),
    "dense value out of range": ('"test.a"() {v = dense<[300, 1]> : tensor<2xi8>} : () -> ()\n', 1, 24,
                                 "integer constant 300 out of range for i8"),
    "bad dense hex": ('"test.a"() {v = dense<"0xZZ"> : tensor<2xi8>} : () -> ()\n', 1, 23, "expected a string of hex digits"),
    "dense of a non-tensor": ('"test.a"() {v = dense<1> : i32} : () -> ()\n', 1, 28,
                              "dense elements need a tensor type"),
    "dense_resource of a non-tensor": ('"test.a"() {a = dense_resource<k> : i32} : () -> ()\n', 1, 37,
                                       "dense_resource needs a tensor type"),
    "bad dense array": ('"test.a"() {a = array<i64: 1, x>} : () -> ()\n', 1, 31, "expected a number in array<i64: ...>"),
    "unterminated string attr": ('"test.a"() {v = "abc} : () -> ()\n', 1, 17, "expected ',' or '}'"),
    "unterminated op name": ('%0 = "test.a() : () -> i32\n', 1, 6, "expected an operation in generic form"),
    "unterminated string in type params": ('"test.a"() : () -> !foo.bar<"x>\n', 1, 29, "unterminated string"),
    "unbalanced type params": ('"test.a"() : () -> !foo.bar<x\n', 1, 29, "unbalanced '<'"),
    "missing '}' of a region": ('"test.r"() ({\n  "test.a"() : () -> ()\n', 3, 1, "missing '}'"),
    "undefined block": ('"test.r"() ({\n  "test.br"()[^bb9] : () -> ()\n}) : () -> ()\n', 2, 15,
                        "reference to an undefined block '^bb9'"),
    "duplicate attribute": ('"test.a"() {a = 1, a = 2} : () -> ()\n', 1, 20, "duplicate attribute 'a'"),
    "float literal with int type": ('"test.a"() {a = 1.5 : i32} : () -> ()\n', 1, 23, "float literal with non-float"),
    "integer out of range": ('"test.a"() {a = 1000 : i8} : () -> ()\n', 1, 17, "integer constant 1000 out of range"),
    "hex float too wide": ('"test.a"() {a = 0x1FFFFFFFFF : f32} : () -> ()\n', 1, 17, "does not fit in f32"),
    "bad fixed-point params": ('"test.a"() : () -> !fix.xint<8>\n', 1, 20, "bad fixed-point type !fix.xint<8>"),
    "fixed-point width": ('"test.a"() : () -> !fix.xint<99, 1>\n', 1, 20, "bit width in [1, 32]"),
    "bad resource blob": ('"test.a"() : () -> ()\n{-#\n dialect_resources: { builtin: { k: "zz" } }\n#-}\n', 3, 37,
                          "resource 'k' is not a hex blob"),
    "unknown resource section": ('{-#\n  bogus: {}\n#-}\n', 2, 8, "unknown resource section 'bogus'"),
    "undefined location alias": ('"test.a"() : () -> () loc(#nope)\n', 1, 32, "undefined location alias '#nope'"),
    "bad location": ('"test.a"() : () -> () loc(42)\n', 1, 27, "expected a location"),
    "custom syntax": ('func.func @f() {\n}\n', 1, 1, "custom assembly formats are not supported"),
    "garbage after alias sigil": ('#= 3\n', 1, 1, "expected an operation, or an alias definition"),
    "missing '=' after results": ('%0 "test.a"() : () -> i32\n', 1, 4, "expected '=' after the result names"),
    "missing colon": ('"test.a"() {}\n', 2, 1, "expected ':' before the operation's function type"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_parse_error_location_and_caret(name):
    text, line, col, fragment = CASES[name]
    allow = "unregistered op" not in name
    with pytest.raises(ParseError) as info:
        parse_module(text, f"{name}.mlir", allow_unregistered=allow)
    err = info.value
    assert fragment in err.message
    assert (err.filename, err.line, err.col) == (f"{name}.mlir", line, col), err.render()
    assert isinstance(err, FixflowError) and err.location == FileLineColLoc(f"{name}.mlir", line, col)
    rendered = err.render().split("\n")
    assert rendered[0] == f"{name}.mlir:{line}:{col}: error: {err.message}"
    source_lines = text.split("\n")
    assert rendered[1] == source_lines[line - 1]
    assert rendered[2] == " " * (col - 1) + "^"
    assert len(rendered) == 3


def test_unregistered_ops_are_accepted_with_the_flag_and_suggest_it_without():
    text = '"mystery.op"() : () -> ()\n'
    with pytest.raises(ParseError, match="--allow-unregistered-dialect"):
        parse_module(text)
    op = parse_module(text, allow_unregistered=True).body.first_op
    assert op.name == "mystery.op" and type(op).__name__ == "Operation"


def test_fragment_parsers_report_their_own_positions():
    with pytest.raises(ParseError) as info:
        parse_type("tensor<2xf32")
    assert (info.value.line, info.value.col) == (1, 13)
    with pytest.raises(ParseError, match="unexpected text after the type"):
        parse_type("i32 i32")
    with pytest.raises(ParseError, match="unexpected text after the attribute"):
        parse_attribute("1 : i32 x")
    with pytest.raises(ParseError, match="expected an attribute value"):
        parse_attribute("?")


def test_errors_in_long_files_point_into_the_right_line():
    body = "".join(f'  %v{i} = "arith.addi"(%a, %a) : (i32, i32) -> i32\n' for i in range(500))
    body += '  %bad = "arith.addi"(%a, %v3) : (i32, i64) -> i32\n'
    text = FUNC.format(body=body + '  "func.return"(%a) : (i32) -> ()\n')
    with pytest.raises(ParseError) as info:
        parse_module(text, "long.mlir")
    assert (info.value.line, info.value.col) == (503, 27)
    assert "use of value '%v3' expects type i64, but it has type i32" in info.value.message


def test_verify_errors_of_parsed_ops_quote_the_source():
    text = FUNC.format(body='  %0 = "arith.addi"(%a, %a) : (i32, i32) -> i32\n'
                            '  "func.return"(%0, %0) : (i32, i32) -> ()\n')
    m = parse_module(text, "verify.mlir")
    with pytest.raises(VerifyError) as info:
        m.verify()
    lines = info.value.render().split("\n")
    assert lines[0] == ("verify.mlir:4:3: error: 'func.return' op returns (i32, i32) but the enclosing "
                        "function's type is (i32) -> i32")
    assert lines[1] == '  "func.return"(%0, %0) : (i32, i32) -> ()' and lines[2] == "  ^"
    text2 = FUNC.format(body='  %0 = "arith.addi"(%a, %a) : (i32, i32) -> i64\n  "func.return"(%a) : (i32) -> ()\n')
    with pytest.raises(VerifyError, match=r"verify2.mlir:3:3: error: 'arith.addi' op result 'out'|"
                                          r"verify2.mlir:3:3: error: 'arith.addi' op requires the same type"):
        parse_module(text2, "verify2.mlir").verify()


ADVERSARIAL = [
    '"t.a"() {v = dense<1.0> : tensor<100000000000xf32>} : () -> ()',  # too large to materialize
    '"t.a"() {v = dense<1.0> : tensor<99999999999999999999xf32>} : () -> ()',
    '"t.a"() {v = 1 : i0} : () -> ()',
    '"t.a"() {v = dense<1> : tensor<2xbf16>} : () -> ()',
    '"t.a"() {v = dense<[maybe]> : tensor<1xi1>} : () -> ()',
    '"t.a"() {v = dense<[1.5]> : tensor<1xi32>} : () -> ()',
    '"t.a"() {v = dense<1> : tensor<*xi32>} : () -> ()',
    '"t.a"() {v = array<i1: 1>} : () -> ()',
    '"t.a"() {v = 0x : i32} : () -> ()',
    '"t.a"() {v = 1 : !fix.xint<8, 3>} : () -> ()',
    '"t.a"() : () -> tensor<-3xf32>',
    '"t.x"()[^bb0] : () -> ()',
    '%0:99999999999999 = "t.a"() : () -> ()',
    '%0:2 = "t.a"() : () -> (i32, i32)\n"t.b"(%0) : (i32) -> ()',
    '"t.r"() ({\n^bb0:\n^bb0:\n}) : () -> ()',
    '"t.r"() ({\n^bb0(%a: i32, %a: i32):\n}) : () -> ()',
    '{-# dialect_resources: { builtin: { k: 12 } } #-}',
    '"t.a"() : () -> () loc("f":1)',
    '"t.a"() : () -> () loc(callsite("a"))',
    '"t.a"() {v = @a::} : () -> ()',
    '#a = loc(#a)\n',
]


@pytest.mark.parametrize("text", ADVERSARIAL)
def test_adversarial_inputs_raise_parse_errors(text):
    with pytest.raises(ParseError) as info:
        parse_module(text, "adv.mlir", allow_unregistered=True)
    assert info.value.render().startswith("adv.mlir:")


@pytest.mark.parametrize("body, where, message", [
    ('  %0:0 = "x.y"() : () -> ()', "2:6", "must define at least one result"),
    ('  "x.y"() {"" = 1} : () -> ()', "2:12", "attribute names may not be empty"),
    ('  %0 = "x.y"() : () -> !foo', "2:24", "undefined type alias '!foo'"),
])
def test_text_mlir_rejects_is_rejected(body, where, message):
    from fixflow.ir import parse_module
    from fixflow.ir.diagnostics import ParseError
    with pytest.raises(ParseError) as info:
        parse_module('"builtin.module"() ({\n' + body + '\n}) : () -> ()\n', "c.mlir", allow_unregistered=True)
    assert info.value.render().startswith(f"c.mlir:{where}: error:") and message in info.value.message


def test_resource_blob_size_is_checked_against_its_type():
    from fixflow.ir import parse_module
    from fixflow.ir.diagnostics import ParseError
    text = ('"builtin.module"() ({\n  "x.y"() {v = dense_resource<k> : tensor<3xf32>} : () -> ()\n}) : () -> ()\n'
            '{-#\n  dialect_resources: {\n    builtin: {\n      k: "0x040000000000803F"\n    }\n  }\n#-}\n')
    with pytest.raises(ParseError, match="holds 4 bytes but tensor<3xf32> needs 12"):
        parse_module(text, "r.mlir", allow_unregistered=True)


def test_tensor_dimension_must_fit_64_bits():
    from fixflow.ir import parse_module
    from fixflow.ir.diagnostics import ParseError
    with pytest.raises(ParseError, match="invalid dimension"):
        parse_module('"builtin.module"() ({\n  %0 = "x.y"() : () -> tensor<1x99999999999999999999xf32>\n'
                     '}) : () -> ()\n', "d.mlir", allow_unregistered=True)
