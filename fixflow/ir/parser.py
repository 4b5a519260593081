"""Parser for MLIR's generic op syntax, attributes, types, locations and the resources section.

One pass over the text with compiled regular expressions. The common one-line op
(`%3 = "arith.addi"(%1, %2) {attrs} : (i32, i32) -> i32`) goes through a fast path that matches the
whole line with one regex and looks up its types and attribute dictionary in caches; everything
else goes through the general recursive-descent path. Every op keeps its `file:line:col`.
"""

from __future__ import annotations

import bisect
import gc
import math
import re
import struct
import numpy as np

from .attributes import (UNIT, ArrayAttr, Attribute, BoolAttr, DenseArrayAttr, DenseElementsAttr,
                         DenseResourceElementsAttr, DictionaryAttr, FloatAttr, IntegerAttr, LocationAttr,
                         OpaqueAttr, ResourceBlob, StringAttr, SymbolRefAttr, TypeAttr, TypedStringAttr)
from .core import Block, Operation, Region, Value
from .diagnostics import ParseError, register_source
from .location import (UNKNOWN_LOC, CallSiteLoc, FileLineColLoc, FusedLoc, Location, NameLoc)
from .opdef import IsolatedFromAbove, is_known_dialect, lookup_attribute_class, lookup_op_class, lookup_type_class
from .types import (FloatType, FunctionType, IndexType, IntegerType, NoneType, OpaqueType,
                    TensorType, Type, UnrankedTensorType, f64, i1, i64, numpy_dtype)

_WS = re.compile(r"(?:[ \t\r\n]+|//[^\n]*)*")
_SUFFIX_ID = r"(?:\d+|[A-Za-z_$.-][A-Za-z0-9_$.-]*)"  # MLIR: digits only, or no leading digit
_VALUE_ID = re.compile(f"%({_SUFFIX_ID})")
_VALUE_USE = re.compile(f"%({_SUFFIX_ID})(?:#(\\d+))?")
_CARET_ID = re.compile(f"\\^({_SUFFIX_ID})")
# unrolled (`run (escape run)*`): the alternation form kept a backtracking frame per character, 2.4 GB
# of transient memory for ResNet-18's 19-million-character weight blobs
_STRING = re.compile(r'"([^"\\\n]*(?:\\.[^"\\\n]*)*)"')
_BARE_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_$.]*")
_INT = re.compile(r"-?(?:0x[0-9A-Fa-f]+|\d+)")
_FLOAT = re.compile(r"[-+]?\d+\.\d*(?:[eE][-+]?\d+)?")
# MLIR's number tokens: a float needs its '.', `1e5` is not one; an optional leading '-' (never '+')
_NUMBER = re.compile(r"-?(?:0x[0-9A-Fa-f]+|\d+\.\d*(?:[eE][-+]?\d+)?|\d+)")
_BOOL_WORD = re.compile(r"(?:true|false)(?![A-Za-z0-9_$.])")
_HEX_DIGITS = re.compile(r"0x[0-9A-Fa-f]*\Z")  # one character class: no per-digit regex state


def _is_hex_blob(text: str) -> bool:
    """`0x` and an even number of hex digits."""
    return len(text) % 2 == 0 and _HEX_DIGITS.match(text) is not None
_ESCAPE = re.compile(r'\\(?:[0-9A-Fa-f]{2}|[nt"\\]|(.?))')  # group 1: an escape MLIR does not know
_SYMBOL = re.compile(r'@(?:([A-Za-z_][A-Za-z0-9_$.]*)|"((?:[^"\\\n]|\\.)*)")')
_INT_TYPE = re.compile(r"(si|ui|i)(\d+)\Z")
_DIMS = re.compile(r"((?:(?:\d+|\?)x)*)")
_DIALECT_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_$]*)\.?([A-Za-z0-9_$.]*)")
_LOC_ALIAS_DEF = re.compile(r"^#([A-Za-z_][A-Za-z0-9_$.]*)[ \t]*=[ \t]*loc\(", re.M)
_HEX_ESC = re.compile(r"\\([0-9A-Fa-f]{2})|\\(.)")
_SURROGATE = re.compile("[\udc80-\udcff]")
_NEWLINE = re.compile("\n")
_LEADING_NEWLINES = re.compile("\n*")

# leading whitespace and comments (possessive: no backtracking), then group 1 (empty) marks the op's start
_FAST_OP = re.compile(
    r'(?:[ \t\r\n]+|//[^\n]*)*+()(?:%(\d+|[A-Za-z_$.-][A-Za-z0-9_$.-]*) = )?"([A-Za-z_][A-Za-z0-9_$.-]*)"'
    r'\(((?:%(?:\d+|[A-Za-z_$.-][A-Za-z0-9_$.-]*)(?:, )?)*)\)'
    r'(?: (\{(?:[^{}"\n]|"(?:[^"\\\n]|\\.)*")*\}))? : \(([^()\n]*)\) -> ([^\n%"^{}]*?)[ \t]*(?=\n|\Z|[%"^}])')


def _bad_escape(body: str) -> int | None:
    """Offset in `body` of the first escape MLIR rejects (it knows \\n \\t \\" \\\\ and \\XX), else None."""
    for m in _ESCAPE.finditer(body):
        if m.group(1) is not None:
            return m.start()
    return None


def _unescape(body: str) -> str:
    if "\\" not in body:
        return body
    out = bytearray()
    pos = 0
    for m in _HEX_ESC.finditer(body):
        out += body[pos:m.start()].encode("utf-8")
        if m.group(1):
            out.append(int(m.group(1), 16))
        else:
            ch = m.group(2)
            out += {"n": b"\n", "t": b"\t"}.get(ch, ch.encode("utf-8"))
        pos = m.end()
    out += body[pos:].encode("utf-8")
    return out.decode("utf-8", errors="surrogateescape")  # MLIR strings are bytes: keep non-UTF-8 ones


class _Scope:
    __slots__ = ("values", "isolated", "forward")

    def __init__(self, isolated: bool):
        self.values: dict[str, Value] = {}
        self.isolated = isolated
        self.forward: dict[str, tuple[Value, int]] = {}


class Parser:
    """Parses one source text. Use `parse_module()` / `parse_type()` / `parse_attribute()` helpers."""

    def __init__(self, text: str, filename: str = "<stdin>", allow_unregistered: bool = False,
                 register: bool = True):
        self.text = text
        self.filename = filename
        self.allow_unregistered = allow_unregistered
        self.pos = 0
        self._line_starts: list[int] | None = None
        self._lead = 0
        self._lc: list[int] | None = None  # [pos, its line, its line's start]: loc_at's forward cursor
        self._scopes: list[_Scope] = [_Scope(True)]
        self._blocks: list[dict[str, Block]] = []
        self._block_pos: list[dict[str, int]] = []
        self._type_cache: dict[str, tuple[Type, ...]] = {}
        self._attr_cache: dict[str, dict[str, Attribute]] = {}
        self._op_classes: dict[str, type | None] = {}
        self._resource_refs: dict[str, list[tuple[DenseResourceElementsAttr, int]]] = {}
        self._resources: dict[str, str] = {}
        self._attr_aliases: dict[str, Attribute] = {}
        self._type_aliases: dict[str, Type] = {}
        self._loc_aliases: dict[str, Location] = {}
        if register:  # sub-parsers of fragments must not replace the file's text used for carets
            register_source(filename, text)

    # ---- errors and positions -----------------------------------------------------------
    def line_col(self, pos: int) -> tuple[int, int]:
        if self._line_starts is None:
            # leading newlines (fixflow-opt pads each --split-input-file chunk to keep line numbers) are counted,
            # not listed, so a chunk costs its own size, not the file's
            self._lead = _LEADING_NEWLINES.match(self.text).end()
            self._line_starts = [self._lead] + [m.end() for m in _NEWLINE.finditer(self.text, self._lead)]
        if pos < self._lead:
            return pos + 1, 1
        line = bisect.bisect_right(self._line_starts, pos)
        return self._lead + line, pos - self._line_starts[line - 1] + 1

    def error(self, message: str, pos: int | None = None) -> ParseError:
        line, col = self.line_col(self.pos if pos is None else pos)
        if not message.isascii():  # names unescaped from `\XX` may hold bytes that are not UTF-8: show them as `\XX`
            message = _SURROGATE.sub(lambda m: f"\\{ord(m.group(0)) - 0xDC00:02X}", message)
        return ParseError(message, self.filename, line, col)

    def loc_at(self, pos: int) -> FileLineColLoc:
        """The location of `pos`. The parser moves forward, so lines are counted from the last position asked."""
        lc = self._lc
        if lc is None:
            lead = _LEADING_NEWLINES.match(self.text).end()  # see line_col: padding costs no line scan
            lc = self._lc = [lead, lead + 1, lead]
        last = lc[0]
        if pos < last:
            line, col = self.line_col(pos)
            return FileLineColLoc(self.filename, line, col)
        text = self.text
        n = text.count("\n", last, pos)
        if n:
            lc[1] += n
            lc[2] = text.rfind("\n", last, pos) + 1
        lc[0] = pos
        return FileLineColLoc(self.filename, lc[1], pos - lc[2] + 1)

    # ---- low-level lexing ---------------------------------------------------------------
    def skip(self) -> None:
        self.pos = _WS.match(self.text, self.pos).end()

    def peek(self, s: str) -> bool:
        self.skip()
        return self.text.startswith(s, self.pos)

    def accept(self, s: str) -> bool:
        self.skip()
        if self.text.startswith(s, self.pos):
            self.pos += len(s)
            return True
        return False

    def expect(self, s: str, what: str | None = None) -> None:
        if not self.accept(s):
            raise self.error(f"expected '{s}'" + (f" {what}" if what else "") + f", found {self._found()}")

    def _found(self) -> str:
        self.skip()
        if self.pos >= len(self.text):
            return "end of input"
        tok = re.match(r'"[^"\n]{0,30}"?|[%^@#!]?[A-Za-z0-9_$.-]+|\S', self.text[self.pos:])
        return f"'{tok.group(0)}'" if tok else "end of input"

    def match(self, regex: re.Pattern) -> re.Match | None:
        self.skip()
        m = regex.match(self.text, self.pos)
        if m is not None:
            self.pos = m.end()
        return m

    def bare_id(self) -> str | None:
        m = self.match(_BARE_ID)
        return m.group(0) if m else None

    def string(self) -> str | None:
        m = self.match(_STRING)
        return self._unescape_at(m.group(1), m.start(1)) if m else None

    def _unescape_at(self, body: str, pos: int) -> str:
        """`body` (a string literal's text starting at `pos`) unescaped; unknown escapes are errors."""
        if "\\" in body:
            bad = _bad_escape(body)
            if bad is not None:
                raise self.error("unknown escape in string literal (MLIR knows \\n, \\t, \\\", \\\\ and "
                                 "two hex digits \\XX)", pos + bad)
        return _unescape(body)

    def expect_string(self, what: str) -> str:
        s = self.string()
        if s is None:
            raise self.error(f"expected {what} (a string literal), found {self._found()}")
        return s

    def expect_int(self, what: str = "integer") -> int:
        m = self.match(_INT)
        if m is None:
            raise self.error(f"expected {what}, found {self._found()}")
        return _int_literal(m.group(0))

    def balanced(self, open_: str = "<", close: str = ">") -> str:
        """Text up to the bracket matching the `open_` just consumed. Strings are skipped; inside, every
        `<`, `(`, `[`, `{` must be closed in order (as MLIR requires of dialect attribute and type bodies)."""
        closers = {"<": ">", "(": ")", "[": "]", "{": "}"}
        stack = [closers.get(open_, close)]
        start = self.pos
        text = self.text
        i = start
        n = len(text)
        while i < n:
            c = text[i]
            if c == '"':
                m = _STRING.match(text, i)
                if m is None:
                    raise self.error("unterminated string", i)
                self._unescape_at(m.group(1), i + 1)  # only to reject unknown escapes
                i = m.end()
                continue
            if c in closers:
                stack.append(closers[c])
            elif c in ">)]}" and not (c == ">" and text[i - 1] == "-"):
                if c != stack[-1]:
                    raise self.error(f"unbalanced '{c}' (expected '{stack[-1]}')", i)
                stack.pop()
                if not stack:
                    self.pos = i + 1
                    return text[start:i]
            i += 1
        raise self.error(f"unbalanced '{open_}'", start)

    # ---- top level ----------------------------------------------------------------------
    def parse_top_level(self) -> list[Operation]:
        ops: list[Operation] = []
        block = Block()
        self._blocks.append({})
        self._block_pos.append({})
        self._predefine_location_aliases()
        while True:
            self.skip()
            if self.pos >= len(self.text):
                break
            if self.text.startswith("{-#", self.pos):
                self.pos += 3
                self._parse_resources()
                continue
            if self.text.startswith("#", self.pos) or self.text.startswith("!", self.pos):
                self._parse_alias_definition()
                continue
            op = self.parse_operation()
            block.append(op)
        for label, pos in self._block_pos[-1].items():
            raise self.error(f"reference to an undefined block '^{label}' (top-level ops have no successors)", pos)
        self._check_forward_refs(self._scopes[-1])
        self._fill_resources()
        for op in list(block.ops):
            op.detach()
            ops.append(op)
        return ops

    def _predefine_location_aliases(self) -> None:
        """`mlir-opt --mlir-print-debuginfo` prints most `#loc = loc(...)` definitions after the ops that
        use them: parse those definitions first (they only refer to earlier ones)."""
        if "#" not in self.text:
            return
        for m in _LOC_ALIAS_DEF.finditer(self.text):
            if m.group(1) in self._loc_aliases:
                continue
            self.pos = m.end() - 4
            self._loc_aliases[m.group(1)] = self.parse_location()
        self.pos = 0

    def _parse_alias_definition(self) -> None:
        start = self.pos
        sigil = self.text[self.pos]
        self.pos += 1
        m = _BARE_ID.match(self.text, self.pos)  # no space after the sigil
        name = m.group(0) if m else None
        if m is not None:
            self.pos = m.end()
        if name is None or not self.accept("="):
            raise self.error("expected an operation, or an alias definition like '#name = ...'", start)
        if sigil == "!":
            self._type_aliases[name] = self.parse_type()
        else:
            self.skip()
            if self.text.startswith("loc(", self.pos):
                self._loc_aliases[name] = self.parse_location()
            else:
                self._attr_aliases[name] = self.parse_attribute()

    def _parse_resources(self) -> None:
        """After `{-#`: `section: { dialect-or-group: { key: value, ... }, ... }, ...` then `#-}` (commas
        only between entries, as in MLIR)."""
        def entries(parse_one) -> None:
            self.expect("{")
            if self.accept("}"):
                return
            while True:
                parse_one()
                if not self.accept(","):
                    self.expect("}", "or ',' between entries")
                    return

        def section() -> None:
            self.skip()
            name = self.bare_id()
            if name not in ("dialect_resources", "external_resources"):
                raise self.error(f"unknown resource section '{name}'")
            self.expect(":")
            entries(lambda: group(name))

        def group(section_name: str) -> None:
            self.skip()
            dpos = self.pos
            dialect = self.bare_id() or self.string()
            if dialect is None:
                raise self.error(f"expected a dialect or group name, found {self._found()}")
            if section_name == "dialect_resources" and dialect != "builtin":
                raise self.error(f"unexpected resources of dialect '{dialect}' (only builtin blobs are read, "
                                 f"as mlir-opt does)", dpos)
            self.expect(":")
            entries(lambda: resource(dialect))

        def resource(dialect: str) -> None:
            key = self.bare_id()
            if key is None:
                key = self.expect_string("a resource key")
            self.expect(":")
            self.skip()
            vpos = self.pos
            value = self.string()
            if value is None:
                if dialect == "builtin" or self.match(_BOOL_WORD) is None:
                    raise self.error("expected a resource blob string" + ("" if dialect == "builtin" else
                                                                          ", true or false"))
            elif dialect == "builtin":
                if not _is_hex_blob(value):
                    raise self.error(f"resource '{key}' is not a hex blob (\"0x\" and an even number of "
                                     f"hex digits)", vpos)
                if len(value) < 10:
                    raise self.error(f"resource '{key}' lacks the 4-byte alignment that starts a blob", vpos)
                if key in self._resources:
                    raise self.error(f"resource '{key}' is defined twice", vpos)
                self._resources[key] = value

        if self.accept("#-}"):
            return
        while True:
            section()
            if not self.accept(","):
                self.expect("#-}", "or ',' after a resource section")
                return

    def _fill_resources(self) -> None:
        for key, attrs in self._resource_refs.items():
            hex_text = self._resources.get(key)
            if hex_text is None:
                continue  # MLIR allows resources without data; accessing the array reports it
            blob = ResourceBlob.from_hex(hex_text)
            nbytes = (len(hex_text) - 2) // 2 - 4
            for a, pos in attrs:
                try:
                    need = a.type.num_elements * numpy_dtype(a.type.element_type).itemsize
                except ValueError:
                    need = nbytes
                if nbytes != need and a.type.has_static_shape():
                    raise self.error(f"resource '{key}' holds {nbytes} bytes but {a.type} needs {need}", pos)
                a.blob = blob
                self._check_narrow_resource(a, key, pos)

    def _check_narrow_resource(self, a: DenseResourceElementsAttr, key: str, pos: int) -> None:
        """Values of a dialect element type narrower than its integer storage (fixed point) must fit it."""
        et = a.type.element_type
        if isinstance(et, (IntegerType, IndexType, FloatType)) or not a.type.has_static_shape():
            return
        try:
            dtype = numpy_dtype(et)
        except ValueError:
            return
        if dtype.kind not in "iu":
            return
        rt = _storage_int_type(et, dtype)
        if rt.width == dtype.itemsize * 8 or not a.type.num_elements:
            return
        arr = a.array
        lo, hi = _int_range(rt)
        if int(arr.min()) < lo or int(arr.max()) > hi:
            raise self.error(f"resource '{key}' holds values outside [{lo}, {hi}], the range of {et}", pos)

    # ---- scopes -------------------------------------------------------------------------
    def _lookup(self, name: str) -> Value | None:
        for scope in reversed(self._scopes):
            v = scope.values.get(name)
            if v is not None:
                return v
            if scope.isolated:
                return None
        return None

    def _define(self, name: str, value: Value, pos: int) -> None:
        scope = self._scopes[-1]
        if scope.isolated and not scope.forward:  # common case: nothing outside to shadow, nothing pending
            values = scope.values
            if name in values:
                raise self.error(f"redefinition of SSA value '%{name}'", pos)
            values[name] = value
            if not name[0].isdigit():
                value.name_hint = name
            return
        fwd = scope.forward.pop(name, None)
        if name in scope.values or (fwd is None and self._lookup(name) is not None):
            raise self.error(f"redefinition of SSA value '%{name}'", pos)
        scope.values[name] = value
        if not name[0].isdigit():
            value.name_hint = name
        if fwd is not None:
            placeholder, use_pos = fwd
            if placeholder.type is not value.type:
                raise self.error(f"use of value '%{name}' expects type {placeholder.type}, "
                                 f"but it is defined as {value.type}", use_pos)
            placeholder.replace_all_uses_with(value)

    def _resolve(self, name: str, index: int | None, type: Type, pos: int) -> Value:
        key = name if index is None else f"{name}#{index}"
        v = self._lookup(key)
        if v is None and index is None:
            v = self._lookup(name)
        if v is None:
            scope = self._scopes[-1]
            fwd = scope.forward.get(key)
            if fwd is None:
                v = Value(type)
                scope.forward[key] = (v, pos)
                return v
            v = fwd[0]
        if v.type is not type:
            raise self.error(f"use of value '%{key}' expects type {type}, but it has type {v.type}", pos)
        return v

    def _check_forward_refs(self, scope: _Scope) -> None:
        if scope.forward:
            name, (_, pos) = next(iter(scope.forward.items()))
            raise self.error(f"use of undeclared SSA value '%{name}'", pos)

    # ---- operations ---------------------------------------------------------------------
    def _op_class(self, name: str, pos: int):
        try:
            return self._op_classes[name]
        except KeyError:
            pass
        cls = lookup_op_class(name)
        if cls is None:
            prefix = name.split(".", 1)[0]
            if "." in name and is_known_dialect(prefix):
                raise self.error(f"unknown operation '{name}' in dialect '{prefix}'", pos)
            if not self.allow_unregistered:
                raise self.error(f"unregistered operation '{name}' (pass --allow-unregistered-dialect "
                                 f"to keep unknown ops as opaque generic ops)", pos)
            cls = Operation
        self._op_classes[name] = cls
        return cls

    def parse_operation(self) -> Operation:
        self.skip()
        start = self.pos
        m = _FAST_OP.match(self.text, start)
        if m is not None:
            op = self._fast_op(m)
            if op is not None:
                self.pos = m.end()
                return op
        return self._general_op(start)

    def _fast_op(self, m: re.Match) -> Operation | None:
        """The op matched by `_FAST_OP`, or None when the general path must parse it."""
        start = m.start(1)
        _, res_name, name, operands_text, attr_text, in_text, out_text = m.groups()
        if " loc(" in out_text or "{" in out_text:
            return None
        ins = self._type_cache.get(in_text)
        if ins is None:
            ins = self._parse_types_text(in_text, start)
            if ins is None:
                return None
        outs = self._type_cache.get(out_text)
        if outs is None:
            outs = self._parse_result_types_text(out_text)
            if outs is None:
                return None
        if len(outs) != (1 if res_name is not None else 0):
            return None
        values = []
        if operands_text:
            names = operands_text.split(", ")
            if len(names) != len(ins):
                return None
            local = self._scopes[-1].values
            for n, t in zip(names, ins):
                v = local.get(n[1:])
                if v is None:
                    v = self._lookup(n[1:])
                    if v is None:
                        return None
                if v.type is not t:
                    return None
                values.append(v)
        elif ins:
            return None
        if attr_text is not None:
            cached = self._attr_cache.get(attr_text)
            if cached is None:
                saved = self.pos
                self.pos = m.start(5) + 1
                try:
                    cached = self._parse_attr_dict_body()
                except ParseError:
                    self.pos = saved
                    return None
                self.pos = saved
                self._attr_cache[attr_text] = cached
            attrs = dict(cached)
        else:
            attrs = {}
        cls = self._op_classes.get(name) or self._op_class(name, m.start(3) - 1)
        op = Operation._new_leaf(cls, name, values, outs, attrs, self.loc_at(start))
        if res_name is not None:
            self._define(res_name, op.results[0], start)
        return op

    def _parse_types_text(self, text: str, pos: int) -> tuple[Type, ...] | None:
        sub = Parser(text, self.filename, self.allow_unregistered, register=False)
        sub._type_aliases = self._type_aliases
        try:
            types = []
            sub.skip()
            if sub.pos < len(text):
                types.append(sub.parse_type())
                while sub.accept(","):
                    types.append(sub.parse_type())
            sub.skip()
            if sub.pos != len(text):
                return None
        except (ParseError, RecursionError):  # the general path reports it, at the right place
            return None
        result = tuple(types)
        self._type_cache[text] = result
        return result

    def _parse_result_types_text(self, text: str) -> tuple[Type, ...] | None:
        if text.startswith("("):
            if not text.endswith(")"):
                return None
            result = self._parse_types_text(text[1:-1], 0)
        else:
            result = self._parse_types_text(text, 0)
            if result is not None and len(result) != 1:
                return None
        if result is not None:
            self._type_cache[text] = result
        return result

    def _general_op(self, start: int) -> Operation:
        text = self.text
        location: Location = self.loc_at(start)  # before the regions: loc_at's cursor only moves forward
        results: list[tuple[str, int, int]] = []  # name, count, pos
        m = _VALUE_ID.match(text, self.pos)
        if m is not None:
            while True:
                m = self.match(_VALUE_ID)
                if m is None:
                    raise self.error(f"expected a result name, found {self._found()}")
                count = 1
                if self.accept(":"):
                    cpos = self.pos
                    count = self.expect_int("a result count")
                    if count < 1:
                        raise self.error(f"result group '%{m.group(1)}' must define at least one result", cpos)
                    if count >= 1 << 32:
                        raise self.error("result count too large", cpos)
                results.append((m.group(1), count, m.start()))
                if not self.accept(","):
                    break
            self.expect("=", "after the result names")
        self.skip()
        name_pos = self.pos
        name = self.string()
        if name is None:
            found = self._found()
            raise self.error(f"expected an operation in generic form (\"dialect.op\"(...)), found {found}; "
                             f"custom assembly formats are not supported, print with --mlir-print-op-generic")
        if "\0" in name:
            raise self.error("null character not allowed in an operation name", name_pos)
        cls = self._op_class(name, name_pos)
        self.expect("(", "to start the operand list")
        uses: list[tuple[str, int | None, int]] = []
        if not self.accept(")"):
            while True:
                self.skip()
                upos = self.pos
                um = self.match(_VALUE_USE)
                if um is None:
                    raise self.error(f"expected an SSA value, found {self._found()}")
                if um.group(2) and len(um.group(2)) > 18:
                    raise self.error("result number too large", um.start(2))
                uses.append((um.group(1), int(um.group(2)) if um.group(2) else None, upos))
                if self.accept(")"):
                    break
                self.expect(",", "or ')' in the operand list")
        successors: list[Block] = []
        if self.accept("["):
            while True:
                cm = self.match(_CARET_ID)
                if cm is None:
                    raise self.error(f"expected a block name, found {self._found()}")
                successors.append(self._block_ref(cm.group(1), cm.start()))
                if self.accept("]"):
                    break
                self.expect(",")
        attrs: dict[str, Attribute] = {}
        if self.accept("<{"):
            attrs.update(self._parse_attr_dict_body())
            self.expect(">")
        regions: list[Region] = []
        if self.peek("(") and not self.text.startswith("()", self.pos):
            self.pos += 1
            isolated = isinstance(cls, type) and IsolatedFromAbove in getattr(cls, "TRAITS", ())
            while True:
                regions.append(self.parse_region(isolated))
                if self.accept(")"):
                    break
                self.expect(",", "or ')' after a region")
        if self.accept("{"):
            attrs.update(self._parse_attr_dict_body(attrs))
        self.expect(":", "before the operation's function type")
        self.skip()
        tpos = self.pos
        ftype = self.parse_type()
        if not isinstance(ftype, FunctionType):
            raise self.error(f"expected a function type like '(i32) -> i32', found {ftype}", tpos)
        if len(ftype.inputs) != len(uses):
            raise self.error(f"operation has {len(uses)} operands but its type lists {len(ftype.inputs)}", tpos)
        n_results = sum(c for _, c, _ in results)
        if n_results != len(ftype.results):
            raise self.error(f"operation defines {n_results} results but its type lists {len(ftype.results)}",
                             tpos)
        if self.peek("loc("):
            location = self.parse_location()
        operands = [self._resolve(n, i, t, p) for (n, i, p), t in zip(uses, ftype.inputs)]
        op = object.__new__(cls)
        Operation.__init__(op, name, operands, ftype.results, attrs, regions, successors, location)
        k = 0
        for rname, count, rpos in results:
            if count == 1:
                self._define(rname, op.results[k], rpos)
            else:
                for j in range(count):
                    self._define(f"{rname}#{j}", op.results[k + j], rpos)
            k += count
        return op

    # ---- regions and blocks -------------------------------------------------------------
    def _block_ref(self, name: str, pos: int | None = None) -> Block:
        blocks = self._blocks[-1]
        b = blocks.get(name)
        if b is None:
            b = blocks[name] = Block()
            if pos is not None:
                self._block_pos[-1][name] = pos
        return b

    def parse_region(self, isolated: bool = False) -> Region:
        self.expect("{", "to start a region")
        region = Region()
        self._scopes.append(_Scope(isolated))
        self._blocks.append({})
        self._block_pos.append({})
        defined: set[str] = set()
        if self.accept("}"):
            self._scopes.pop()
            self._blocks.pop()
            self._block_pos.pop()
            return region
        block: Block | None = None
        if not self.peek("^"):
            block = region.add_block(Block())
        text = self.text
        fast = _FAST_OP.match
        while True:
            m = fast(text, self.pos)  # the common one-line op, its leading whitespace included
            if m is not None and block is not None:
                op = self._fast_op(m)
                if op is not None:
                    self.pos = m.end()
                    block.append(op)
                    continue
            self.skip()
            if self.accept("}"):
                break
            if self.text.startswith("^", self.pos):
                lpos = self.pos
                cm = self.match(_CARET_ID)
                if cm is None:
                    raise self.error("expected a block label")
                label = cm.group(1)
                if label in defined:
                    raise self.error(f"redefinition of block '^{label}'", lpos)
                defined.add(label)
                block = self._block_ref(label)
                region.add_block(block)
                if self.accept("("):
                    if not self.accept(")"):
                        while True:
                            self.skip()
                            apos = self.pos
                            am = self.match(_VALUE_ID)
                            if am is None:
                                raise self.error(f"expected a block argument, found {self._found()}")
                            self.expect(":")
                            arg = block.add_argument(self.parse_type())
                            if self.peek("loc("):
                                self.parse_location()
                            self._define(am.group(1), arg, apos)
                            if self.accept(")"):
                                break
                            self.expect(",")
                self.expect(":", "after the block label")
                continue
            if self.pos >= len(self.text):
                raise self.error("unexpected end of input inside a region (missing '}')")
            block.append(self.parse_operation())
        for label, b in self._blocks[-1].items():
            if label not in defined:
                raise self.error(f"reference to an undefined block '^{label}'", self._block_pos[-1].get(label))
        self._check_forward_refs(self._scopes[-1])
        self._scopes.pop()
        self._blocks.pop()
        self._block_pos.pop()
        return region

    # ---- attributes ---------------------------------------------------------------------
    def _parse_attr_dict_body(self, properties: dict[str, Attribute] | None = None) -> dict[str, Attribute]:
        """After '{': `name = attr, unit_name, ...}` (`properties`: the op's `<{...}>`, which share one
        dictionary with the attributes in fixflow, so a name may not be in both)."""
        attrs: dict[str, Attribute] = {}
        if self.accept("}"):
            return attrs
        while True:
            self.skip()
            kpos = self.pos
            key = self.bare_id()
            if key is None:
                key = self.string()
                if key is None:
                    raise self.error(f"expected an attribute name, found {self._found()}")
                if not key:
                    raise self.error("attribute names may not be empty", kpos)
            if key in attrs:
                raise self.error(f"duplicate attribute '{key}'", kpos)
            if properties and key in properties:
                raise self.error(f"attribute '{key}' is also a property of this op (<{{...}}>); fixflow keeps "
                                 f"one attribute dictionary per op", kpos)
            if self.accept("="):
                attrs[key] = self.parse_attribute()
            else:
                attrs[key] = UNIT
            if self.accept("}"):
                return attrs
            self.expect(",", "or '}' in the attribute dictionary")

    def parse_attribute(self) -> Attribute:
        self.skip()
        text = self.text
        pos = self.pos
        c = text[pos] if pos < len(text) else ""
        if c == '"':
            s = self.string()
            if self.peek(":") and not self.text.startswith("::", self.pos):
                self.pos += 1
                return TypedStringAttr(s, self.parse_type())
            return StringAttr(s)
        if c == "[":
            self.pos += 1
            items = []
            if not self.accept("]"):
                while True:
                    items.append(self.parse_attribute())
                    if self.accept("]"):
                        break
                    self.expect(",", "or ']' in the array attribute")
            return ArrayAttr(items)
        if c == "{":
            self.pos += 1
            return DictionaryAttr(self._parse_attr_dict_body())
        if c == "@":
            names = []
            while True:
                sm = self.match(_SYMBOL)
                if sm is None:
                    raise self.error("expected a symbol name")
                names.append(sm.group(1) if sm.group(1) is not None else self._unescape_at(sm.group(2), sm.start(2)))
                if not self.text.startswith("::@", self.pos):
                    break
                self.pos += 2
            return SymbolRefAttr(names[0], names[1:])
        if c == "#":
            self.pos += 1
            dm = _DIALECT_NAME.match(text, self.pos)
            if dm is None:
                raise self.error("expected an attribute alias or dialect attribute name")
            self.pos = dm.end()
            full = dm.group(0)
            if full in self._attr_aliases:
                return self._attr_aliases[full]
            if full in self._loc_aliases:
                return LocationAttr(self._loc_aliases[full])
            body = dm.group(2)
            if "." not in full and not self.text.startswith("<", self.pos):
                raise self.error(f"undefined attribute alias '#{full}'", pos)
            params = None
            if self.text.startswith("<", self.pos):
                self.pos += 1
                params = self.balanced()
            acls = lookup_attribute_class(dm.group(1), body) if "." in full else None
            if acls is not None:  # a dialect's own attribute (registered with @dialect.attribute)
                try:
                    return acls.parse(body, params)
                except ValueError as e:
                    raise self.error(str(e), pos) from None
            if params is not None:
                body += f"<{params}>" if params or body else ""
            return OpaqueAttr(dm.group(1), body)
        if c.isdigit() or c in "-+":
            return self._parse_number_attr()
        word_m = _BARE_ID.match(text, pos)
        word = word_m.group(0) if word_m else ""
        if word == "true" or word == "false":
            self.pos = word_m.end()
            return BoolAttr(word == "true")
        if word == "unit":
            self.pos = word_m.end()
            return UNIT
        if word == "array" and text.startswith("array<", pos):
            self.pos += 6
            return self._parse_dense_array()
        if word == "dense" and text.startswith("dense<", pos):
            self.pos += 6
            return self._parse_dense()
        if word == "dense_resource" and text.startswith("dense_resource<", pos):
            self.pos += len("dense_resource<")
            key = self.bare_id() or self.string()
            if key is None:
                raise self.error("expected a resource key")
            self.expect(">")
            self.expect(":", "after dense_resource<...>")
            self.skip()
            tpos = self.pos
            t = self.parse_type()
            if not isinstance(t, TensorType):
                raise self.error(f"dense_resource needs a tensor type, got {t}", tpos)
            attr = DenseResourceElementsAttr(key, t)
            self._resource_refs.setdefault(key, []).append((attr, pos))
            return attr
        if word == "loc" and text.startswith("loc(", pos):
            return LocationAttr(self.parse_location())
        if word == "affine_map" or word == "affine_set" or word == "strided":
            self.pos = word_m.end()
            self.expect("<")
            return OpaqueAttr("builtin", word + "<" + self.balanced() + ">")
        try:
            return TypeAttr(self.parse_type())
        except ParseError:
            if word == "tensor" or word in FloatType.KINDS or word in ("index", "none") or _INT_TYPE.match(word):
                raise  # a builtin type that went wrong (`tensor<...>`, `i99999999`): its own message is the useful one
            self.pos = pos
            raise self.error(f"expected an attribute value, found {self._found()}") from None

    def _parse_number_attr(self) -> Attribute:
        npos = self.pos
        m = self.match(_NUMBER)
        if m is None:
            raise self.error(f"expected a number, found {self._found()}")
        lit = m.group(0)
        typ: Type | None = None
        if self.peek(":") and not self.text.startswith("::", self.pos):
            self.pos += 1
            self.skip()
            tpos = self.pos
            typ = self.parse_type()
        is_float_lit = "." in lit
        try:
            if isinstance(typ, FloatType):
                return FloatAttr(_float_token(lit, typ), typ)
            if is_float_lit:
                if typ is not None:
                    raise self.error(f"float literal with non-float type {typ}", tpos)
                return FloatAttr(_float_token(lit, f64), f64)
            if typ is None:
                typ = i64
            if not isinstance(typ, (IntegerType, IndexType)):
                raise self.error(f"integer literal not valid for type {typ}", tpos)
            value = _check_int(lit, typ)
        except ValueError as e:
            raise self.error(str(e), npos) from None
        if typ == i1:
            return BoolAttr(bool(value))
        return IntegerAttr(value, typ)

    def _parse_dense_array(self) -> DenseArrayAttr:
        self.skip()
        tpos = self.pos
        et = self.parse_type()
        if not (isinstance(et, FloatType) or et == i1 or (isinstance(et, IntegerType) and et.width
                                                          and et.width % 8 == 0)):
            raise self.error(f"array<...> elements must be i1, integers of a multiple of 8 bits or floats; "
                             f"got {et}", tpos)
        if self.accept(">"):
            return DenseArrayAttr(et, ())
        self.expect(":", "after the dense array element type")
        values = []
        while True:
            self.skip()
            vpos = self.pos
            if et == i1:
                m = self.match(_BOOL_WORD)
                if m is None:
                    raise self.error(f"expected true or false in array<i1: ...>, found {self._found()}")
                values.append(m.group(0) == "true")
            else:
                m = self.match(_NUMBER)
                if m is None:
                    raise self.error(f"expected a number in array<{et}: ...>, found {self._found()}")
                tok = m.group(0)
                try:
                    if isinstance(et, FloatType):
                        values.append(_float_token(tok, et))
                    elif "." in tok:
                        raise ValueError(f"expected an integer literal for {et}, found {tok[:20]}")
                    else:
                        values.append(_check_int(tok, et))
                except ValueError as e:
                    raise self.error(str(e), vpos) from None
            if self.accept(">"):
                break
            self.expect(",", "or '>' in the dense array")
        return DenseArrayAttr(et, values)

    def _until(self, ch: str) -> str:
        end = self.text.find(ch, self.pos)
        if end < 0:
            raise self.error(f"expected '{ch}'")
        body = self.text[self.pos:end]
        self.pos = end + 1
        return body

    def _parse_dense(self) -> DenseElementsAttr:
        """After `dense<`: a splat scalar, a nested list whose shape must be the type's, `"0x..."` raw
        little-endian bytes (i1: one bit per element) or nothing (zero elements)."""
        self.skip()
        lpos = self.pos
        text = self.text
        shape: tuple[int, ...] | None = None  # None: a splat scalar
        elems: list[tuple[str, int]] = []
        hex_body = None
        if text.startswith("[", lpos):
            shape, elems = self._dense_list()
        elif text.startswith('"', lpos):
            m = self.match(_STRING)
            if m is None:
                raise self.error("unterminated string")
            hex_body = m.group(1)
            if not _is_hex_blob(hex_body):
                raise self.error("expected a string of hex digits (an even number) starting with '0x'", lpos)
        elif not text.startswith(">", lpos):
            m = self.match(_NUMBER) or self.match(_BOOL_WORD)
            if m is None:
                raise self.error(f"expected a dense element literal, found {self._found()}")
            elems.append((m.group(0), lpos))
        self.expect(">", "to close dense<...>")
        self.expect(":", "after dense<...>")
        self.skip()
        tpos = self.pos
        t = self.parse_type()
        if not isinstance(t, TensorType):
            raise self.error(f"dense elements need a tensor type, got {t}", tpos)
        if not t.has_static_shape():
            raise self.error(f"dense elements need a static shape, got {t}", tpos)
        try:
            dtype = numpy_dtype(t.element_type)
        except ValueError as e:
            raise self.error(str(e), tpos) from None
        numel = t.num_elements
        try:
            if hex_body is not None:
                return DenseElementsAttr(t, self._dense_hex(hex_body, t, dtype, lpos))
            if not elems and shape is None:
                if numel:
                    raise self.error(f"dense<> has no elements but {t} has {numel}", lpos)
                return DenseElementsAttr(t, np.zeros(t.shape, dtype))
            if shape is not None and shape != tuple(t.shape):
                raise self.error(f"the literal's shape {_shape_text(shape)} differs from the type's "
                                 f"{_shape_text(t.shape)}", lpos)
            values = np.array([self._dense_element(tok, p, t.element_type, dtype) for tok, p in elems],
                              dtype=dtype)
            if shape is None:
                return DenseElementsAttr(t, values.reshape(()))
            return DenseElementsAttr(t, values.reshape(t.shape))
        except MemoryError:
            raise self.error(f"dense elements for {t} are too large to hold in memory", lpos) from None

    def _dense_list(self) -> tuple[tuple[int, ...], list[tuple[str, int]]]:
        """At the '[' of a dense literal: its shape (every level must be regular) and its scalar
        tokens with their positions."""
        text = self.text
        elems: list[tuple[str, int]] = []
        stack: list[list] = []  # per open '[': [element count, element shape, position]
        while True:
            self.skip()
            p = self.pos
            if text.startswith("[", p):
                self.pos += 1
                self.skip()
                if not text.startswith("]", self.pos):
                    stack.append([0, None, p])
                    continue
                self.pos += 1
                sub: tuple[int, ...] = (0,)
            else:
                m = self.match(_NUMBER) or self.match(_BOOL_WORD)
                if m is None:
                    raise self.error(f"expected a dense element literal or '[', found {self._found()}")
                elems.append((m.group(0), p))
                sub = ()
            while True:  # add the element of shape `sub` at `p` to the innermost list, then ',' or ']'
                if not stack:
                    return sub, elems
                frame = stack[-1]
                if frame[1] is None:
                    frame[1] = sub
                elif frame[1] != sub:
                    raise self.error(f"ragged dense literal: this element has shape {_shape_text(sub)}, "
                                     f"the ones before it {_shape_text(frame[1])}", p)
                frame[0] += 1
                if self.accept(","):
                    break
                if not self.accept("]"):
                    raise self.error(f"expected ',' or ']' in the dense literal, found {self._found()}")
                stack.pop()
                sub, p = (frame[0],) + frame[1], frame[2]

    def _dense_element(self, tok: str, pos: int, et: Type, dtype: np.dtype):
        rt = et
        try:
            if dtype.kind == "f":
                if tok[0] in "tf":
                    raise ValueError(f"expected a float, found {tok}")
                return _float_token(tok, et)
            if tok[0] in "tf":
                if dtype != np.bool_:
                    raise ValueError(f"expected an integer for {et}, found {tok}")
                return tok == "true"
            if "." in tok:
                raise ValueError(f"expected an integer for {et}, found the float {tok[:20]}")
            rt = et if isinstance(et, (IntegerType, IndexType)) else _storage_int_type(et, dtype)
            v = _check_int(tok, rt)
        except ValueError as e:
            raise self.error(str(e) + ("" if rt is et else f" (the range of {et})"), pos) from None
        if dtype == np.bool_:
            return v != 0
        bits = dtype.itemsize * 8
        v &= (1 << bits) - 1  # signless: the bits (MLIR reads 255 : i8 as -1)
        return v - (1 << bits) if dtype.kind == "i" and v >> (bits - 1) else v

    def _dense_hex(self, body: str, t: TensorType, dtype: np.dtype, pos: int) -> np.ndarray:
        arr = self._dense_hex_raw(body, t, dtype, pos)
        et = t.element_type
        if dtype.kind in "iu" and not isinstance(et, IntegerType) and arr.size:
            lo, hi = _int_range(_storage_int_type(et, dtype))  # e.g. a 4-bit fixed-point type stored in int8
            if int(arr.min()) < lo or int(arr.max()) > hi:
                raise self.error(f"hex data holds values outside [{lo}, {hi}], the range of {et}", pos)
        return arr

    def _dense_hex_raw(self, body: str, t: TensorType, dtype: np.dtype, pos: int) -> np.ndarray:
        raw = bytes.fromhex(body[2:])
        numel = t.num_elements
        if dtype == np.bool_:  # MLIR packs i1 one bit per element, LSB first; one 0x00/0xFF byte is a splat
            if len(raw) == 1 and raw[0] in (0, 0xFF):
                return np.array(bool(raw[0]))
            if len(raw) * 8 == -(-numel // 8) * 8:
                bits = np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little")[:numel]
                return bits.astype(np.bool_).reshape(t.shape)
            raise self.error(f"hex data of {len(raw)} bytes does not fit {t} (one bit per element, "
                             f"{-(-numel // 8)} bytes)", pos)
        size = dtype.itemsize
        if len(raw) == size:
            return np.frombuffer(raw, dtype.newbyteorder("<")).reshape(()).astype(dtype)
        if len(raw) != size * numel:
            raise self.error(f"hex data of {len(raw)} bytes does not fit {t} ({size * numel} bytes, or {size} "
                             f"for a splat)", pos)
        return np.frombuffer(raw, dtype.newbyteorder("<")).astype(dtype).reshape(t.shape)

    # ---- types --------------------------------------------------------------------------
    def parse_type(self) -> Type:
        self.skip()
        text = self.text
        pos = self.pos
        c = text[pos] if pos < len(text) else ""
        if c == "(":
            self.pos += 1
            inputs = []
            if not self.accept(")"):
                while True:
                    inputs.append(self.parse_type())
                    if self.accept(")"):
                        break
                    self.expect(",", "or ')' in the type list")
            self.expect("->", "in the function type")
            if self.accept("("):
                results = []
                if not self.accept(")"):
                    while True:
                        results.append(self.parse_type())
                        if self.accept(")"):
                            break
                        self.expect(",", "or ')' in the result type list")
                return FunctionType(inputs, results)
            return FunctionType(inputs, [self.parse_type()])
        if c == "!":
            self.pos += 1
            dm = _DIALECT_NAME.match(text, self.pos)
            if dm is None:
                raise self.error("expected a dialect type name after '!'")
            self.pos = dm.end()
            full = dm.group(0)
            if full in self._type_aliases:
                return self._type_aliases[full]
            body = dm.group(2)
            params = None
            if "." not in full and not text.startswith("<", self.pos):
                raise self.error(f"undefined type alias '!{full}'", pos)
            if text.startswith("<", self.pos):
                self.pos += 1
                params = self.balanced()
            tcls = lookup_type_class(dm.group(1), body) if "." in full else None
            if tcls is not None:  # a dialect's own type (registered with @dialect.type)
                try:
                    return tcls.parse(body, params)
                except ValueError as e:
                    raise self.error(str(e), pos) from None
            return OpaqueType(dm.group(1), body + (f"<{params}>" if params or (params is not None and body) else ""))
        m = _BARE_ID.match(text, pos)
        if m is None:
            raise self.error(f"expected a type, found {self._found()}")
        word = m.group(0)
        self.pos = m.end()
        if word == "tensor":
            if not text.startswith("<", self.pos):
                raise self.error("expected '<' after 'tensor'")
            self.pos += 1
            if text.startswith("*x", self.pos):
                self.pos += 2
                et = self.parse_type()
                self.expect(">")
                return UnrankedTensorType(et)
            dm2 = _DIMS.match(text, self.pos)
            dims = [(-1 if d == "?" else int(d) if len(d) < 20 else 1 << 63) for d in dm2.group(1).split("x")[:-1]]
            if any(d >= 1 << 63 for d in dims):
                raise self.error("invalid dimension: tensor dimensions must fit in 64 bits", pos)
            self.pos = dm2.end()
            et = self.parse_type()
            self.expect(">", "to close the tensor type")
            return TensorType(dims, et)
        im = _INT_TYPE.match(word)
        if im is not None:
            sign = {"i": "signless", "si": "signed", "ui": "unsigned"}[im.group(1)]
            if len(im.group(2)) > 8 or int(im.group(2)) > _MAX_INT_WIDTH:
                raise self.error(f"integer bit width is limited to {_MAX_INT_WIDTH} bits", pos)
            return IntegerType(int(im.group(2)), sign)
        if word in FloatType.KINDS:
            return FloatType(word)
        if word == "index":
            return IndexType()
        if word == "none":
            return NoneType()
        # a tensor shape like `1x3xf32` lexes as one identifier in the fast path; handled by _DIMS above
        self.pos = pos
        raise self.error(f"unknown type '{word}'")

    # ---- locations ----------------------------------------------------------------------
    def _loc_int(self, what: str) -> int:
        self.skip()
        pos = self.pos
        m = self.match(_LOC_INT)
        if m is None:
            raise self.error(f"expected {what} (an unsigned integer), found {self._found()}")
        if len(m.group(0)) > 20 or _int_literal(m.group(0)) >= 1 << 32:
            raise self.error(f"{what} does not fit in 32 bits", pos)
        return _int_literal(m.group(0))

    def parse_location(self) -> Location:
        self.expect("loc(")
        loc = self._location_body()
        self.expect(")", "to close loc(...)")
        return loc

    def _location_body(self) -> Location:
        self.skip()
        text = self.text
        if text.startswith("#", self.pos):
            self.pos += 1
            m = _BARE_ID.match(text, self.pos)  # no space after '#'
            name = m.group(0) if m else None
            if m is not None:
                self.pos = m.end()
            if name not in self._loc_aliases:
                raise self.error(f"undefined location alias '#{name or ''}'")
            return self._loc_aliases[name]
        if text.startswith("unknown", self.pos):
            self.pos += 7
            return UNKNOWN_LOC
        if text.startswith("callsite(", self.pos):
            self.pos += 9
            callee = self._location_body()
            if self.bare_id() != "at":
                raise self.error("expected 'at' in callsite location")
            caller = self._location_body()
            self.expect(")")
            return CallSiteLoc(callee, caller)
        if text.startswith("fused", self.pos):
            self.pos += 5
            if self.accept("<"):
                self.balanced()
            self.expect("[")
            locs = []
            if not self.accept("]"):
                while True:
                    locs.append(self._location_body())
                    if self.accept("]"):
                        break
                    self.expect(",")
            return FusedLoc(locs)
        s = self.string()
        if s is None:
            raise self.error(f"expected a location, found {self._found()}")
        if self.accept(":"):
            line = self._loc_int("a line number")
            self.expect(":")
            col = self._loc_int("a column number")
            if self.match(_TO) is not None:  # a range: `to :col` or `to line:col`
                if not self.accept(":"):
                    self._loc_int("a line number")
                    self.expect(":", "after the end line of a location range")
                self._loc_int("a column number")
            return FileLineColLoc(s, line, col)
        if self.accept("("):
            child = self._location_body()
            self.expect(")")
            return NameLoc(s, child)
        return NameLoc(s)


_MAX_INT_WIDTH = 16777215  # MLIR's limit on iN widths
_DIGITS_CHUNK = 4000  # below Python's 4,300-digit limit on int(str)
# smallest magnitudes that round to infinity (round to nearest even) in each float type
_FLOAT_OVERFLOW = {"f16": 65520.0, "bf16": float.fromhex("0x1.ffp127"), "f32": float.fromhex("0x1.ffffffp127")}


def _int_literal(tok: str) -> int:
    """Value of an integer token (`-`?, decimal or `0x` hex) of any length."""
    neg = tok.startswith("-")
    body = tok[1:] if neg else tok
    if body.startswith("0x"):
        v = int(body, 16)
    elif len(body) <= _DIGITS_CHUNK:
        v = int(body)
    else:
        v = 0
        for i in range(0, len(body), _DIGITS_CHUNK):
            chunk = body[i:i + _DIGITS_CHUNK]
            v = v * 10 ** len(chunk) + int(chunk)
    return -v if neg else v


def _int_range(t: Type) -> tuple[int, int]:
    """Values an integer literal of type `t` may take (signless: signed or unsigned bits, as in MLIR)."""
    if isinstance(t, IndexType):
        return -(1 << 63), (1 << 63) - 1
    w = t.width
    if w == 0:
        return 0, 0
    if t.signedness == "unsigned":
        return 0, (1 << w) - 1
    if t.signedness == "signed":
        return -(1 << (w - 1)), (1 << (w - 1)) - 1
    return -(1 << (w - 1)), (1 << w) - 1


def _shape_text(shape) -> str:
    dims = list(shape)
    return str(dims) if len(dims) <= 8 else f"[{', '.join(map(str, dims[:4]))}, ... ({len(dims)} dimensions)]"


def _storage_int_type(et: Type, dtype: np.dtype) -> IntegerType:
    """The integer type whose range a dialect element type stored as integers allows: its `bit_width` and
    `signed` when it declares them (fixed-point types), else its storage dtype's."""
    bw = getattr(et, "bit_width", None)
    signed = getattr(et, "signed", dtype.kind == "i")
    width = bw if isinstance(bw, int) and 0 < bw <= dtype.itemsize * 8 else dtype.itemsize * 8
    return IntegerType(width, "signed" if signed else "unsigned")


def _check_int(tok: str, t: Type) -> int:
    """The value of integer token `tok` for type `t`; ValueError when out of range."""
    digits = len(tok) - tok.startswith("-")
    width = 64 if isinstance(t, IndexType) else t.width
    if digits > width // 3 + 4 and "x" not in tok:  # far too many digits: do not convert a huge number
        raise ValueError(f"integer constant out of range for {t}")
    v = _int_literal(tok)
    lo, hi = _int_range(t)
    if not lo <= v <= hi or (v == 0 and tok.startswith("-")):  # mlir-opt rejects an integer -0 too
        if v < 0 and isinstance(t, IntegerType) and t.signedness == "unsigned":
            raise ValueError(f"negative integer literal not valid for unsigned type {t}")
        raise ValueError(f"integer constant {tok if len(tok) < 40 else tok[:20] + '...'} out of range for {t}")
    return v


_LOC_INT = re.compile(r"0x[0-9A-Fa-f]+|\d+")
_TO = re.compile(r"to(?![A-Za-z0-9_$.])")


def _float_token(tok: str, et: Type) -> float:
    """The value of a number token for float type `et` (ValueError where MLIR, or fixflow, rejects it):
    decimal integers need a '.', hex gives the IEEE bits (no '-'), finite values that round to
    infinity in `et` are out of range."""
    if "x" in tok:
        if tok.startswith("-"):
            raise ValueError("hexadecimal float literal should not have a leading minus")
        return _hex_float(int(tok, 16), et)
    if "." not in tok:
        raise ValueError(f"integer literal {tok[:20]} for a {et} value (add a trailing dot to make it a float)")
    v = float(tok)
    kind = et.kind if isinstance(et, FloatType) else "f64"
    if math.isinf(v) or abs(v) >= _FLOAT_OVERFLOW.get(kind, math.inf):
        raise ValueError(f"float literal {tok[:20]} out of range for {kind} (write infinity as hex bits)")
    return v


def _hex_float(bits: int, et: Type) -> float:
    """The float whose IEEE bits (of `et`'s width) are `bits`; ValueError when they do not fit."""
    kind = et.kind if isinstance(et, FloatType) else "f64"
    width = 16 if kind in ("f16", "bf16") else 32 if kind == "f32" else 64
    if not 0 <= bits < 1 << width:
        raise ValueError(f"hexadecimal float literal 0x{bits:X} does not fit in {kind}")
    if kind == "f16":
        return float(np.array(bits, np.uint16).view(np.float16))
    if kind == "bf16":
        return struct.unpack("<f", struct.pack("<I", bits << 16))[0]
    if kind == "f32":
        return struct.unpack("<f", struct.pack("<I", bits))[0]
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


_TOO_DEEP = "nesting too deep here (regions, types, attributes or locations exceed Python's recursion limit)"


#: parses that leave fewer GC-tracked objects than this are left to the collector's usual course
_GC_PROMOTE_MIN = 20_000
#: at most this many parsed objects are promoted between two full collections (bounds the memory that
#: dropped IR may hold until the next full collection, about 250 MB; beyond it, objects take the usual way)
_GC_PROMOTE_MAX = 2_000_000
_gc_promoted = [0, -1]  # objects promoted since the last full collection, number of that collection


def _promote_parsed_objects(made: int) -> None:
    """Put the `made` objects just parsed (with the collector paused) into the oldest generation.

    A parsed module is long-lived: left young, the collector's next young-generation pass traverses every
    one of its objects (0.3 s for 100k ops) only to find them all alive. `gc.freeze()` then
    `gc.unfreeze()` moves every tracked object into the oldest generation without traversing it; the
    objects stay collectable, and the next full collection sees them as usual. Skipped when anything is
    frozen (unfreezing it is not ours to do) and past `_GC_PROMOTE_MAX` objects between full collections
    (promoted objects do not count toward the collector's trigger for a full collection)."""
    if made < _GC_PROMOTE_MIN or gc.get_freeze_count():
        return
    full = gc.get_stats()[2]["collections"]
    if full != _gc_promoted[1]:
        _gc_promoted[:] = [0, full]
    if _gc_promoted[0] + made > _GC_PROMOTE_MAX:
        return
    gc.freeze()
    gc.unfreeze()
    _gc_promoted[0] += made


def parse_module(text: str, filename: str = "<stdin>", *, allow_unregistered: bool = False) -> Operation:
    """Parse a module. A single top-level `builtin.module` is returned as is; other top-level ops
    are wrapped in a new module."""
    gc_was_enabled = gc.isenabled()
    gc.disable()  # the parser allocates many small objects that are never cyclic garbage
    parser = Parser(text, filename, allow_unregistered)
    try:
        ops = parser.parse_top_level()
        if gc_was_enabled:
            _promote_parsed_objects(gc.get_count()[0])
    except RecursionError:
        raise parser.error(_TOO_DEEP) from None
    finally:
        if gc_was_enabled:
            gc.enable()
    if len(ops) == 1 and ops[0].name == "builtin.module":
        return ops[0]
    module = Operation.create("builtin.module", regions=[Region([Block()])], location=FileLineColLoc(filename, 1, 1))
    for op in ops:
        module.regions[0].blocks[0].append(op)
    return module


def parse_type(text: str) -> Type:
    p = Parser(text, "<type>")
    try:
        t = p.parse_type()
    except RecursionError:
        raise p.error(_TOO_DEEP) from None
    p.skip()
    if p.pos != len(text):
        raise p.error("unexpected text after the type")
    return t


def parse_attribute(text: str) -> Attribute:
    p = Parser(text, "<attribute>")
    try:
        a = p.parse_attribute()
    except RecursionError:
        raise p.error(_TOO_DEEP) from None
    p.skip()
    if p.pos != len(text):
        raise p.error("unexpected text after the attribute")
    p._fill_resources()
    return a

