"""Parsing `.ffn` text into a small AST (Lark LALR grammar in `fixflow.lark`).

Lark's exceptions never escape: syntax errors become a `DslError` at `file:line:col` that says in words
what was expected.
"""

from __future__ import annotations

import ast as _pyast
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

import lark

from ...ir.diagnostics import FixflowError, register_source
from ...ir.location import FileLineColLoc

GRAMMAR_PATH = Path(__file__).with_name("fixflow.lark")


class DslError(FixflowError):
    """An error in a DSL program (syntax, unknown op or name, bad argument, shape) with its location."""


# ---- AST ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pos:
    """A 1-based line and column in the source."""

    line: int
    col: int


@dataclass
class Lit:
    """A literal: int, float, str, bool, None, or a list of `Lit`/`Ref`."""

    value: Any
    pos: Pos

    def py(self) -> Any:
        """The plain Python value (nested lists for lists)."""
        if isinstance(self.value, list):
            return [v.py() for v in self.value]
        return self.value


@dataclass
class Ref:
    """A name used as a value: a tensor (or, in attribute position, an unquoted word)."""

    name: str
    pos: Pos

    def py(self) -> Any:
        return self


Value = Union[Lit, Ref]


@dataclass
class Arg:
    """A call argument: positional (`key is None`) or `key=value`."""

    key: str | None
    value: Value
    pos: Pos


@dataclass
class Assign:
    """`target = op(args)`."""

    target: str
    op: str
    args: list[Arg]
    pos: Pos        # of the target name: the statement's location
    op_pos: Pos


@dataclass
class Return:
    names: list[tuple[str, Pos]]
    pos: Pos


@dataclass
class Input:
    name: str
    dtype: str
    shape: tuple[int, ...]
    pos: Pos
    dtype_pos: Pos


@dataclass
class Net:
    name: str
    inputs: list[Input]
    options: list[Arg]
    body: list[Union[Assign, Return]]
    pos: Pos
    end: Pos = field(default_factory=lambda: Pos(0, 0))


# ---- parser ---------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _parser() -> lark.Lark:
    return lark.Lark(GRAMMAR_PATH.read_text(encoding="utf-8"), parser="lalr", propagate_positions=True,
                     maybe_placeholders=False)


def _pos(tok: Any) -> Pos:
    return Pos(tok.line, tok.column)


_WORDS = {"NAME": "a name", "INT": "an integer", "FLOAT": "a number", "STRING": "a string",
          "$END": "the end of the file"}
_VALUE_STARTS = {"INT", "FLOAT", "STRING", "LSQB", "LPAR"}


def _describe_terminal(name: str) -> str:
    if name in _WORDS:
        return _WORDS[name]
    try:
        pattern = _parser().get_terminal(name).pattern
    except KeyError:
        return name
    if isinstance(pattern, lark.lexer.PatternStr):
        return f"'{pattern.value}'"
    return name.lower()


def _expected_words(expected: set[str]) -> str:
    names = set(expected)
    words: list[str] = []
    if _VALUE_STARTS <= names:
        names -= _VALUE_STARTS | {"NAME"}
        words.append("a value")
    order = ["NAME", "INT", "FLOAT", "STRING"]
    ordered = [n for n in order if n in names] + sorted(n for n in names if n not in order)
    words += [_describe_terminal(n) for n in ordered]
    words = list(dict.fromkeys(words))
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _found(token: Any) -> str:
    if token is None or token.type == "$END":
        return "the end of the file"
    if token.type in ("NAME", "INT", "FLOAT", "STRING"):
        return f"{_WORDS[token.type].split(' ', 1)[1]} {token.value!r}" if token.type != "NAME" \
            else f"'{token.value}'"
    return f"'{token.value}'"


def _syntax_error(err: lark.exceptions.UnexpectedInput, text: str, filename: str) -> DslError:
    line, col = getattr(err, "line", -1), getattr(err, "column", -1)
    if isinstance(err, lark.exceptions.UnexpectedCharacters):
        ch = text[err.pos_in_stream] if 0 <= err.pos_in_stream < len(text) else ""
        msg = f"unexpected character {ch!r}"
        if err.allowed:
            msg += f"; expected {_expected_words(set(err.allowed))}"
    elif isinstance(err, lark.exceptions.UnexpectedToken):
        tok = err.token
        if tok.type == "$END":
            lines = text.splitlines() or [""]
            line, col = len(lines), len(lines[-1]) + 1
            missing = " (is a '}' missing?)" if "RBRACE" in err.expected else ""
            msg = f"unexpected end of file{missing}; expected {_expected_words(set(err.expected))}"
        else:
            msg = f"expected {_expected_words(set(err.expected))}, found {_found(tok)}"
    else:  # UnexpectedEOF
        lines = text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
        msg = f"unexpected end of file; expected {_expected_words(set(err.expected))}"
    if line is None or line < 1:
        line, col = 1, 1
    return DslError(msg, FileLineColLoc(filename, line, col))


def parse_program(text: str, filename: str = "<dsl>") -> list[Net]:
    """Parse DSL text into a list of `Net` (raises `DslError` on syntax errors)."""
    register_source(filename, text)
    try:
        tree = _parser().parse(text)
    except lark.exceptions.UnexpectedInput as err:
        raise _syntax_error(err, text, filename) from None
    return [_net(t, filename) for t in tree.children]


# ---- tree -> AST ----------------------------------------------------------------------------
def _net(t: lark.Tree, filename: str) -> Net:
    name_tok = t.children[0]
    inputs: list[Input] = []
    options: list[Arg] = []
    body: list[Union[Assign, Return]] = []
    for c in t.children[1:]:
        if not isinstance(c, lark.Tree):
            continue
        if c.data == "input":
            inputs.append(_input(c, filename))
        elif c.data == "options":
            options = [_kwarg(k, filename) for k in c.children]
        elif c.data == "assign":
            body.append(_assign(c, filename))
        elif c.data == "ret":
            body.append(Return([(n.value, _pos(n)) for n in c.children], Pos(c.meta.line, c.meta.column)))
    return Net(name_tok.value, inputs, options, body, Pos(t.meta.line, t.meta.column),
               Pos(t.meta.end_line, max(t.meta.end_column - 1, 1)))


_F32_MAX = 3.4028234663852886e38
_I64_MAX = 2**63 - 1


def _checked_int(tok: Any, filename: str) -> int:
    """An INT token's value; integers beyond 64 bits are an error at the token."""
    digits = tok.value.lstrip("+-").lstrip("0")
    value = int(tok.value) if len(digits) <= 20 else _I64_MAX + 1   # no 4,300-digit conversion limit
    if abs(value) > _I64_MAX:
        raise DslError(f"integer {tok.value} is out of the 64-bit range", FileLineColLoc(filename, tok.line, tok.column))
    return value


def _input(t: lark.Tree, filename: str) -> Input:
    name, tt = t.children
    dtype = tt.children[0]
    dims = tuple(_checked_int(d, filename) for d in tt.children[1:])
    return Input(name.value, dtype.value, dims, _pos(name), _pos(dtype))


def _assign(t: lark.Tree, filename: str) -> Assign:
    target, op = t.children[0], t.children[1]
    args = []
    for c in t.children[2:]:
        if isinstance(c, lark.Tree) and c.data == "kwarg":
            args.append(_kwarg(c, filename))
        else:
            v = _value(c, filename)
            args.append(Arg(None, v, v.pos))
    return Assign(target.value, op.value, args, _pos(target), _pos(op))


def _kwarg(t: lark.Tree, filename: str) -> Arg:
    key, value = t.children
    return Arg(key.value, _value(value, filename), _pos(key))


_WORD_LITERALS = {"true": True, "True": True, "false": False, "False": False, "none": None, "None": None}


#: deepest list literal (no op attribute nests lists more than two deep)
MAX_LIST_DEPTH = 32


def _value(t: Any, filename: str, depth: int = 0) -> Value:
    pos = Pos(t.meta.line, t.meta.column)
    kind = t.data
    if kind == "list":
        if depth >= MAX_LIST_DEPTH:
            raise DslError(f"list literal nested deeper than {MAX_LIST_DEPTH} levels",
                           FileLineColLoc(filename, pos.line, pos.col))
        return Lit([_value(c, filename, depth + 1) for c in t.children], pos)
    tok = t.children[0]
    if kind == "ref":
        if tok.value in _WORD_LITERALS:
            return Lit(_WORD_LITERALS[tok.value], pos)
        return Ref(tok.value, pos)
    if kind == "int":
        return Lit(_checked_int(tok, filename), pos)
    if kind == "float":
        value = float(tok.value)
        if not abs(value) <= _F32_MAX:
            raise DslError(f"number {tok.value} is out of the float32 range (largest {_F32_MAX:.7g})",
                           FileLineColLoc(filename, pos.line, pos.col))
        return Lit(value, pos)
    if kind == "string":
        try:
            return Lit(_pyast.literal_eval(tok.value), pos)
        except (ValueError, SyntaxError):
            raise DslError(f"malformed string {tok.value}", FileLineColLoc(filename, pos.line, pos.col)) from None
    raise AssertionError(kind)
