"""Parser for MLIR's generic op syntax, attributes, types, locations and the resources section.

One pass over the text with compiled regular expressions. The common one-line op
(`%3 = "arith.addi"(%1, %2) {attrs} : (i32, i32) -> i32`) goes through a fast path that matches the
whole line with one regex and looks up its types and attribute dictionary in caches; everything
else goes through the general recursive-descent path. Every op keeps its `file:line:col`.
"""

from __future__ import annotations

import bisect
import gc
import re
import struct
import numpy as np

from .attributes import (UNIT, ArrayAttr, Attribute, BoolAttr, DenseArrayAttr, DenseElementsAttr,
                         DenseResourceElementsAttr, DictionaryAttr, FloatAttr, IntegerAttr, LocationAttr,
                         OpaqueAttr, ResourceBlob, StringAttr, SymbolRefAttr, TypeAttr)
from .core import Block, Operation, Region, Value
from .diagnostics import ParseError, register_source
from .location import (UNKNOWN_LOC, CallSiteLoc, FileLineColLoc, FusedLoc, Location, NameLoc)
from .opdef import IsolatedFromAbove, is_known_dialect, lookup_attribute_class, lookup_op_class, lookup_type_class
from .types import (FloatType, FunctionType, IndexType, IntegerType, NoneType, OpaqueType,
                    TensorType, Type, UnrankedTensorType, f64, i1, i64, numpy_dtype)

_WS = re.compile(r"(?:[ \t\r\n]+|//[^\n]*)*")
_VALUE_ID = re.compile(r"%([A-Za-z0-9_$.-]+)")
_VALUE_USE = re.compile(r"%([A-Za-z0-9_$.-]+)(?:#(\d+))?")
_CARET_ID = re.compile(r"\^([A-Za-z0-9_$.-]+)")
_STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
_BARE_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_$.]*")
_INT = re.compile(r"-?(?:0x[0-9A-Fa-f]+|\d+)")
_FLOAT = re.compile(r"[-+]?\d+\.\d*(?:[eE][-+]?\d+)?")
_NUMBER = re.compile(r"[-+]?(?:0x[0-9A-Fa-f]+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|inf|nan)")
_SYMBOL = re.compile(r'@(?:([A-Za-z_$.][A-Za-z0-9_$.-]*)|"((?:[^"\\\n]|\\.)*)")')
_INT_TYPE = re.compile(r"(si|ui|i)(\d+)\Z")
_DIMS = re.compile(r"((?:(?:\d+|\?)x)*)")
_DIALECT_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_$]*)\.?([A-Za-z0-9_$.]*)")
_LOC_ALIAS_DEF = re.compile(r"^#([A-Za-z_][A-Za-z0-9_$.]*)[ \t]*=[ \t]*loc\(", re.M)
_HEX_ESC = re.compile(r"\\([0-9A-Fa-f]{2})|\\(.)")

_FAST_OP = re.compile(
    r'(?:%([A-Za-z0-9_$.-]+) = )?"([A-Za-z_][A-Za-z0-9_$.-]*)"\(((?:%[A-Za-z0-9_$.-]+(?:, )?)*)\)'
    r'(?: (\{(?:[^{}"\n]|"(?:[^"\\\n]|\\.)*")*\}))? : \(([^()\n]*)\) -> ([^\n]*?)[ \t]*(?=\n|\Z)')


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
            self._line_starts = [0] + [m.end() for m in re.finditer("\n", self.text)]
        line = bisect.bisect_right(self._line_starts, pos)
        return line, pos - self._line_starts[line - 1] + 1

    def error(self, message: str, pos: int | None = None) -> ParseError:
        line, col = self.line_col(self.pos if pos is None else pos)
        return ParseError(message, self.filename, line, col)

    def loc_at(self, pos: int) -> FileLineColLoc:
        line, col = self.line_col(pos)
        return FileLineColLoc(self.filename, line, col)

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
        return _unescape(m.group(1)) if m else None

    def expect_string(self, what: str) -> str:
        s = self.string()
        if s is None:
            raise self.error(f"expected {what} (a string literal), found {self._found()}")
        return s

    def expect_int(self, what: str = "integer") -> int:
        m = self.match(_INT)
        if m is None:
            raise self.error(f"expected {what}, found {self._found()}")
        return int(m.group(0), 0) if "x" in m.group(0) else int(m.group(0))

    def balanced(self, open_: str = "<", close: str = ">") -> str:
        """Text up to the bracket matching the one just consumed (strings respected)."""
        depth = 1
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
                i = m.end()
                continue
            if c == open_:
                depth += 1
            elif c == close and not (close == ">" and text[i - 1] == "-"):
                depth -= 1
                if depth == 0:
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
        name = self.bare_id()
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
        while not self.accept("#-}"):
            section = self.bare_id()
            if section not in ("dialect_resources", "external_resources"):
                raise self.error(f"unknown resource section '{section}'")
            self.expect(":")
            self.expect("{")
            while not self.accept("}"):
                dialect = self.bare_id() or self.string()
                self.expect(":")
                self.expect("{")
                while not self.accept("}"):
                    key = self.bare_id()
                    if key is None:
                        key = self.expect_string("a resource key")
                    self.expect(":")
                    value = self.string()
                    if value is None:
                        raise self.error("expected a resource blob string")
                    if dialect == "builtin":
                        if not value.startswith("0x"):
                            raise self.error(f"resource '{key}' is not a hex blob")
                        self._resources[key] = value
                    self.accept(",")
                self.accept(",")
            self.accept(",")

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
            op = self._fast_op(m, start)
            if op is not None:
                self.pos = m.end()
                return op
        return self._general_op(start)

    def _fast_op(self, m: re.Match, start: int) -> Operation | None:
        res_name, name, operands_text, attr_text, in_text, out_text = m.groups()
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
            for n, t in zip(names, ins):
                v = self._lookup(n[1:])
                if v is None or v.type is not t:
                    return None
                values.append(v)
        elif ins:
            return None
        if attr_text is not None:
            cached = self._attr_cache.get(attr_text)
            if cached is None:
                saved = self.pos
                self.pos = m.start(4) + 1
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
        cls = self._op_class(name, m.start(2) - 1)
        op = object.__new__(cls)
        Operation.__init__(op, name, values, outs, attrs, (), (), self.loc_at(start))
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
        except ParseError:
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
        location: Location = self.loc_at(start)
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
        while True:
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
                self.parse_type()
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
                names.append(sm.group(1) if sm.group(1) is not None else _unescape(sm.group(2)))
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
            if self.peek(":") and not self.text.startswith("::", self.pos):
                self.pos += 1
                self.parse_type()
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
            typ = self.parse_type()
        is_float_lit = any(ch in lit for ch in ".eEn") and "x" not in lit
        if isinstance(typ, FloatType):
            if "x" in lit and not is_float_lit:
                try:
                    return FloatAttr(_hex_float(int(lit, 16), typ), typ)
                except ValueError as e:
                    raise self.error(str(e), npos) from None
            return FloatAttr(float(lit), typ)
        if is_float_lit:
            if typ is not None and not isinstance(typ, FloatType):
                raise self.error(f"float literal with non-float type {typ}", npos)
            return FloatAttr(float(lit), f64)
        value = int(lit, 0) if "x" in lit else int(lit)
        if typ is None:
            typ = i64
        if typ == i1:
            return BoolAttr(bool(value))
        if not isinstance(typ, (IntegerType, IndexType)):
            raise self.error(f"integer literal with type {typ}", npos)
        if isinstance(typ, IntegerType):
            w = typ.width
            lo = 0 if typ.signedness == "unsigned" or w == 0 else -(1 << (w - 1))
            hi = (1 << (w - 1)) - 1 if typ.signedness == "signed" and w > 0 else (1 << w) - 1
            if not lo <= value <= hi:
                raise self.error(f"integer constant {value} out of range for {typ}", npos)
        return IntegerAttr(value, typ)

    def _parse_dense_array(self) -> DenseArrayAttr:
        et = self.parse_type()
        if self.accept(">"):
            return DenseArrayAttr(et, ())
        self.expect(":", "after the dense array element type")
        body = self._until(">")
        items = [s.strip() for s in body.split(",")]
        try:
            if isinstance(et, FloatType):
                values = [_float_token(s, et) for s in items]
            elif et == i1:
                if any(s not in ("true", "false") for s in items):
                    raise ValueError("expected true or false")
                values = [s == "true" for s in items]
            else:
                values = [int(s, 16) if "x" in s else int(s) for s in items]
        except ValueError:
            raise self.error(f"bad element in array<{et}: {body}>") from None
        return DenseArrayAttr(et, values)

    def _until(self, ch: str) -> str:
        end = self.text.find(ch, self.pos)
        if end < 0:
            raise self.error(f"expected '{ch}'")
        body = self.text[self.pos:end]
        self.pos = end + 1
        return body

    def _parse_dense(self) -> DenseElementsAttr:
        bpos = self.pos
        body = self.balanced("<", ">").strip()
        self.expect(":", "after dense<...>")
        self.skip()
        tpos = self.pos
        t = self.parse_type()
        if not isinstance(t, TensorType):
            raise self.error(f"dense elements need a tensor type, got {t}", tpos)
        try:
            dtype = numpy_dtype(t.element_type)
        except ValueError as e:
            raise self.error(str(e), tpos) from None
        try:
            if body.startswith('"0x'):
                raw = bytes.fromhex(body[3:-1])
                arr = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
                if arr.size == 1:
                    return DenseElementsAttr(t, arr.reshape(()).astype(dtype))
                return DenseElementsAttr(t, arr.astype(dtype).reshape(t.shape))
            flat = body.replace("[", " ").replace("]", " ").replace(",", " ").split()
            if not flat:
                return DenseElementsAttr(t, np.zeros(t.shape, dtype))
            if dtype == np.bool_:
                if any(v not in ("true", "false", "1", "0") for v in flat):
                    raise ValueError("i1 elements must be true or false")
                values = np.array([v in ("true", "1") for v in flat], dtype=np.bool_)
            elif dtype.kind == "f":
                values = np.array([_float_token(v, t.element_type) for v in flat], dtype=dtype)
            else:
                values = np.array([int(v, 0) for v in flat], dtype=dtype)
            if values.size == 1:
                return DenseElementsAttr(t, values.reshape(()))
            return DenseElementsAttr(t, values.reshape(t.shape))
        except (ValueError, OverflowError) as e:
            raise self.error(f"bad dense elements for {t}: {e}", bpos) from None
        except MemoryError:
            raise self.error(f"dense elements for {t} are too large to hold in memory", bpos) from None

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
            dims = [(-1 if d == "?" else int(d)) for d in dm2.group(1).split("x")[:-1]]
            if any(d >= 1 << 63 for d in dims):
                raise self.error("invalid dimension: tensor dimensions must fit in 64 bits", pos)
            self.pos = dm2.end()
            et = self.parse_type()
            self.expect(">", "to close the tensor type")
            return TensorType(dims, et)
        im = _INT_TYPE.match(word)
        if im is not None:
            sign = {"i": "signless", "si": "signed", "ui": "unsigned"}[im.group(1)]
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
            name = self.bare_id()
            if name not in self._loc_aliases:
                raise self.error(f"undefined location alias '#{name}'")
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
            line = self.expect_int("a line number")
            self.expect(":")
            col = self.expect_int("a column number")
            if self.peek("to"):
                self.pos += 2
                self.accept(":")
                self.expect_int()
                if self.accept(":"):
                    self.expect_int()
            return FileLineColLoc(s, line, col)
        if self.accept("("):
            child = self._location_body()
            self.expect(")")
            return NameLoc(s, child)
        return NameLoc(s)


def _float_token(tok: str, et: Type) -> float:
    if tok.startswith("0x") or tok.startswith("-0x"):
        return _hex_float(int(tok, 16), et)
    return float(tok)


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


def parse_module(text: str, filename: str = "<stdin>", *, allow_unregistered: bool = False) -> Operation:
    """Parse a module. A single top-level `builtin.module` is returned as is; other top-level ops
    are wrapped in a new module."""
    gc_was_enabled = gc.isenabled()
    gc.disable()  # the parser allocates many small objects that are never cyclic garbage
    parser = Parser(text, filename, allow_unregistered)
    try:
        ops = parser.parse_top_level()
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

