"""Parser cases shared by test_parser_strict (fixflow's messages and locations) and
test_mlir_differential (mlir-opt-22 agrees)."""

from __future__ import annotations

import math

import numpy as np

OP = '"t.op"() {{a = {}}} : () -> ()\n'
COL = 15  # column of the attribute value in OP

# attribute text -> (column offset from the value's start, message fragment); each one mlir-opt-22 rejects too,
# except those marked "fixflow only" (values MLIR silently turns into infinity)
REJECTED = {
    # dense literals whose shape is not the type's, ragged or mis-bracketed
    "dense<[[1, 2], [3, 4], [5, 6]]> : tensor<2x3xi32>": (6, "shape [3, 2] differs from the type's [2, 3]"),
    "dense<[1, 2, 3, 4, 5, 6]> : tensor<2x3xi32>": (6, "shape [6] differs"),
    "dense<[[1, 2, 3]]> : tensor<2x3xi32>": (6, "shape [1, 3] differs"),
    "dense<[[1, 2, 3], [4, 5]]> : tensor<2x3xi32>": (18, "ragged dense literal"),
    "dense<[1, [2]]> : tensor<2xi32>": (10, "ragged dense literal"),
    "dense<[[1], 2]> : tensor<2x1xi32>": (12, "ragged dense literal"),
    "dense<[1, 2,]> : tensor<2xi32>": (12, "expected a dense element literal"),
    "dense<[1 2]> : tensor<2xi32>": (9, "expected ',' or ']'"),
    "dense<[[1, 2]]]> : tensor<1x2xi32>": (14, "expected '>' to close dense"),
    "dense<[[1, 2]> : tensor<1x2xi32>": (13, "expected ',' or ']'"),
    "dense<[]> : tensor<0x3xf32>": (6, "shape [0] differs"),
    "dense<> : tensor<2xi32>": (6, "dense<> has no elements but tensor<2xi32> has 2"),
    "dense<[1, 2]> : tensor<?xi32>": (16, "static shape"),
    # element values
    "dense<[300, 1]> : tensor<2xi8>": (7, "integer constant 300 out of range for i8"),
    "dense<[1.5, 2]> : tensor<2xi8>": (7, "expected an integer for i8"),
    "dense<[1, 2]> : tensor<2xf32>": (7, "add a trailing dot"),
    "dense<[true, 2]> : tensor<2xi1>": (13, "out of range for i1"),
    "dense<1.0e6> : tensor<2xf16>": (6, "out of range for f16"),  # fixflow only
    "dense<-0x3F80> : tensor<2xf16>": (6, "leading minus"),
    "dense<0x3F800000> : tensor<2xf16>": (6, "does not fit in f16"),
    "dense<1e400> : tensor<2xf32>": (7, "expected '>' to close dense"),
    "dense<nan> : tensor<2xf32>": (6, "expected a dense element literal"),
    # hex data
    'dense<"0x010"> : tensor<2xi8>': (6, "hex digits"),
    'dense<"0x01zz"> : tensor<2xi8>': (6, "hex digits"),
    'dense<"0X0102"> : tensor<2xi8>': (6, "hex digits"),
    'dense<"0x010203"> : tensor<2xi8>': (6, "hex data of 3 bytes does not fit tensor<2xi8>"),
    'dense<"0x0100"> : tensor<2xi1>': (6, "one bit per element"),
    # typed scalars
    "300 : i8": (0, "integer constant 300 out of range for i8"),
    "-129 : i8": (0, "out of range for i8"),
    "128 : si8": (0, "out of range for si8"),
    "-1 : ui8": (0, "negative integer literal not valid for unsigned type ui8"),
    "-0 : i32": (0, "integer constant -0 out of range for i32"),
    "dense<[1, -0]> : tensor<2xi8>": (10, "integer constant -0 out of range"),
    "array<i8: -0x0>": (10, "integer constant -0x0 out of range"),
    "2 : i1": (0, "out of range for i1"),
    "1 : i0": (0, "out of range for i0"),
    "18446744073709551615 : index": (0, "out of range for index"),
    "18446744073709551616": (0, "out of range for i64"),
    "1 : f32": (0, "add a trailing dot"),
    "1.0 : i32": (6, "float literal with non-float type i32"),
    "1 : none": (4, "integer literal not valid for type none"),
    "1.0e400": (0, "out of range for f64"),  # fixflow only
    "1.0e6 : f16": (0, "out of range for f16"),  # fixflow only: MLIR reads infinity
    "1.0e39 : f32": (0, "out of range for f32"),  # fixflow only
    "0x7F80000000 : f32": (0, "does not fit in f32"),
    "-0x3F800000 : f32": (0, "leading minus"),
    "1e5": (1, "expected ',' or '}'"),
    "+1": (0, "expected a number"),
    ".5": (0, "expected an attribute value"),
    "inf": (0, "expected an attribute value"),
    "true : i1": (5, "expected ',' or '}'"),
    "1 : i99999999": (4, "integer bit width is limited to 16777215 bits"),
    "1 : i16777216": (4, "limited to 16777215 bits"),
    "tensor<99999999999999999999xf32>": (0, "tensor dimensions must fit in 64 bits"),
    # dense arrays
    "array<i8: 300>": (10, "integer constant 300 out of range for i8"),
    "array<i8: -129>": (10, "out of range for i8"),
    "array<si8: 255>": (11, "out of range for si8"),
    "array<i8: 0x100>": (10, "out of range for i8"),
    "array<f32: 1>": (11, "add a trailing dot"),
    "array<f16: 1.0e6>": (11, "out of range for f16"),  # fixflow only
    "array<i64: 1.5>": (11, "expected an integer literal for i64"),
    "array<i1: true, 1>": (16, "expected true or false"),
    "array<i32: >": (11, "expected a number"),
    "array<i32: 1,>": (13, "expected a number"),
    "array<i32: 1 2>": (13, "expected ',' or '>'"),
    "array<i3: 1>": (6, "multiple of 8 bits"),
    "array<index: 1>": (6, "got index"),  # (mlir-opt 22 aborts on it)
    "array<ui1: 1>": (6, "got ui1"),
    # strings
    r'"a\qb"': (2, "unknown escape in string literal"),
    r'"\x41"': (1, "unknown escape"),
    r'"\0"': (1, "unknown escape"),
    r'"\0g"': (1, "unknown escape"),
    r'"\u1234"': (1, "unknown escape"),
    r'"\r"': (1, "unknown escape"),
    r'"ok\\\q"': (5, "unknown escape"),
    r'@"sym\q"': (5, "unknown escape"),
    r'#t.attr<"\q">': (9, "unknown escape"),
}


ACCEPTED = {
    "dense<[[1, 2, 3], [4, 5, 6]]> : tensor<2x3xi32>": [[1, 2, 3], [4, 5, 6]],
    "dense<[[1.0, 2.0]]> : tensor<1x2xf32>": [[1.0, 2.0]],
    "dense<7> : tensor<2x2xi8>": [[7, 7], [7, 7]],
    "dense<5> : tensor<0xi32>": [],
    "dense<> : tensor<0x3xf32>": np.zeros((0, 3)).tolist(),
    "dense<[[]]> : tensor<1x0xf32>": [[]],
    "dense<[255, -128, 0x10, -0x10]> : tensor<4xi8>": [-1, -128, 16, -16],  # signless: the bits, as in MLIR
    "dense<[255, 0]> : tensor<2xui8>": [255, 0],
    "dense<[1, 0, -1]> : tensor<3xi1>": [True, False, True],
    'dense<"0x01"> : tensor<2xi8>': [1, 1],
    'dense<"0x05"> : tensor<3xi1>': [True, False, True],  # i1 hex is bit-packed, LSB first
    'dense<"0x0501"> : tensor<9xi1>': [True, False, True] + [False] * 5 + [True],
    'dense<"0xFF"> : tensor<3xi1>': [True, True, True],
    'dense<"0x"> : tensor<0xi8>': [],
    "dense<0x7C00> : tensor<1xf16>": [math.inf],
    "dense<[01, 007]> : tensor<2xi8>": [1, 7],
}


# whole texts mlir-opt-22 rejects too (test_mlir_differential checks it): text -> message fragment
SYNTAX_REJECTED = dict([
    ('"t.a"() {a = #t.attr<no{e>} : () -> ()', "unbalanced '>' (expected '}')"),
    ('"t.a"() {a = #t.attr<(]>} : () -> ()', "unbalanced ']' (expected ')')"),
    ('"t.a"() : () -> !t.ty<[1, 2>', "unbalanced '>' (expected ']')"),
    ('"t.a"() : () -> () loc(# l)\n#l = loc("f":1:1)', "undefined location alias '#'"),
    ('# m = 1\n"t.a"() : () -> ()', "expected an operation, or an alias definition"),
    ('"t.a"() {a = @.a} : () -> ()', "expected a symbol name"),
    ('%1a = "t.a"() : () -> i32', "expected '=' after the result names, found 'a'"),
    ('%0 = "t.a"() : () -> i32\n"t.b"(%0x) : (i32) -> ()', "expected ',' or ')' in the operand list, found 'x'"),
    ('"t.r"() ({\n^1b:\n}) : () -> ()', "expected ':' after the block label"),
    ('"t.a"() {a = @a-b} : () -> ()', "expected ',' or '}'"),
    ('"t.a"() : () -> () loc("f":1:2 to 3)', "expected ':' after the end line of a location range"),
    ('"t.a"() : () -> () loc("f":1:2 to2:9)', "expected ')' to close loc(...)"),
])
