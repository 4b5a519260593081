"""The generic MLIR text printer (`"dialect.op"(%a) ({...}) {attrs} : (...) -> ...`)."""

from __future__ import annotations

import re

from .attributes import (ArrayAttr, Attribute, DenseElementsAttr, DenseResourceElementsAttr, DictionaryAttr,
                         UnitAttr, attr_name_text, quote_string, resource_key_text)
from .core import Block, Operation, Region, Value
from .types import function_type_text

_HINT_OK = re.compile(r"[A-Za-z_$.][A-Za-z0-9_$.-]*\Z")

#: the key MLIR prints for an elided elements attribute: `dense_resource<__elided__> : tensor<...>`
ELIDED_KEY = "__elided__"
#: MLIR's defaults for its debug printing (`OpPrintingFlags::elideLargeElementsAttrs()` and
#: `elideLargeResourceString()`), used for the IR fixflow prints during a pass pipeline
DEBUG_ELIDE_ELEMENTS = 16
DEBUG_ELIDE_RESOURCES = 64


class _Scope:
    __slots__ = ("next_value", "next_arg", "next_block", "used")

    def __init__(self):
        self.next_value = 0
        self.next_arg = 0
        self.next_block = 0
        self.used: set[str] = set()


class Printer:
    """Prints ops in MLIR's generic form.

    `print_locations` adds `loc(...)` to every op (like `--mlir-print-debuginfo`);
    `name_hints` prints values with their names (`%conv1`) where they have one.
    As MLIR's `--mlir-elide-elementsattrs-if-larger=N`, `elide_elements_if_larger=N` prints a non-splat
    `dense<...>` of more than N elements as `dense_resource<__elided__>`; as
    `--mlir-elide-resource-strings-if-larger=N`, `elide_resources_if_larger=N` leaves out of the
    `dialect_resources` section every blob whose quoted hex text is longer than N characters (the
    `dense_resource<key>` references stay). The text stays parseable; its elided data is absent.
    """

    def __init__(self, print_locations: bool = False, name_hints: bool = True, indent: str = "  ",
                 elide_elements_if_larger: int | None = None, elide_resources_if_larger: int | None = None):
        self.print_locations = print_locations
        self.elide_elements = elide_elements_if_larger
        self.elide_resources = elide_resources_if_larger
        self.name_hints = name_hints
        self.indent_unit = indent
        self._names: dict[Value, str] = {}
        self._blocks: dict[Block, str] = {}
        self._scopes: list[_Scope] = [_Scope()]
        self._ftypes: dict[tuple, str] = {}
        self._op_names: dict[str, str] = {}  # op name -> its text between the quotes
        self._resources: dict[str, DenseResourceElementsAttr] = {}
        self._resource_keys: dict[int, str] = {}
        self._out: list[str] = []

    # ---- public -------------------------------------------------------------------------
    def print_module(self, op: Operation) -> str:
        """The op (usually a module) plus its `dialect_resources` section."""
        self._out = []
        self._print_op(op, "")
        text = "".join(self._out)
        if any(self._printed_blob(a) is not None for a in self._resources.values()):
            text += "\n" + self.resources_text()
        return text

    def print_op_to_string(self, op: Operation) -> str:
        self._out = []
        self._print_op(op, "")
        return "".join(self._out).rstrip("\n")

    def resources_text(self) -> str:
        """The `dialect_resources` section; a resource without data gets no entry (as in MLIR: inventing an
        empty blob would give it zero bytes), nor does an elided one."""
        entries = []
        for k, a in self._resources.items():
            hex_text = self._printed_blob(a)
            if hex_text is not None:
                entries.append(f"      {resource_key_text(k)}: \"{hex_text}\"")
        return "{-#\n  dialect_resources: {\n    builtin: {\n" + ",\n".join(entries) + "\n    }\n  }\n#-}\n"

    def _printed_blob(self, a: DenseResourceElementsAttr) -> str | None:
        """The hex text of `a`'s blob, None when it has none or it is elided."""
        if a.blob is None:
            return None
        if self.elide_resources is not None and a.blob.hex_length() + 2 > self.elide_resources:
            return None  # MLIR counts the quotes: `"0x..."`
        return a.blob.hex()

    def value_name(self, v: Value) -> str:
        name = self._names.get(v)
        return name if name is not None else "<<UNKNOWN SSA VALUE>>"

    # ---- naming -------------------------------------------------------------------------
    def _name_results(self, op: Operation) -> str:
        results = op.results
        named = self._names.get(results[0])
        if named is not None:  # pre-named (a multi-block region may use it before its definition)
            return named if len(results) == 1 else f"{named.split('#')[0]}:{len(results)}"
        scope = self._scopes[-1]
        if len(results) == 1:
            r = results[0]
            hint = r.name_hint
            if hint is not None and self.name_hints:
                name = self._unique(hint, scope)
            else:
                name = f"%{scope.next_value}"
                scope.next_value += 1
            self._names[r] = name
            return name
        base = f"%{scope.next_value}"
        scope.next_value += 1
        for i, r in enumerate(results):
            self._names[r] = f"{base}#{i}"
        return f"{base}:{len(results)}"

    def _unique(self, hint: str, scope: _Scope) -> str:
        if not _HINT_OK.match(hint):
            hint = re.sub(r"[^A-Za-z0-9_$.-]", "_", hint)
            if not hint or hint[0].isdigit() or hint[0] == "-":
                hint = "_" + hint
        name = hint
        n = 1
        while name in scope.used:
            name = f"{hint}_{n}"
            n += 1
        scope.used.add(name)
        return "%" + name

    def _name_block(self, block: Block) -> str:
        name = self._blocks.get(block)
        if name is None:
            scope = self._scopes[-1]
            name = f"^bb{scope.next_block}"
            scope.next_block += 1
            self._blocks[block] = name
        return name

    # ---- ops ----------------------------------------------------------------------------
    def _op_name_text(self, name: str) -> str:
        text = self._op_names.get(name)
        if text is None:
            text = name if name.isprintable() and '"' not in name and "\\" not in name else quote_string(name)[1:-1]
            self._op_names[name] = text
        return text

    def _print_op(self, op: Operation, indent: str) -> None:
        results = op.results
        if (len(results) == 1 and not op.regions and not op.successors and not op.attributes
                and not self.print_locations):  # the common op: one line, one format
            names = self._names
            r = results[0]
            if r.name_hint is None and r not in names:
                scope = self._scopes[-1]
                rname = names[r] = f"%{scope.next_value}"
                scope.next_value += 1
            else:
                rname = self._name_results(op)
            operands = op._operands
            try:
                args = ", ".join([names[v] for v in operands])
            except KeyError:
                args = ", ".join([self.value_name(v) for v in operands])
            key = (tuple([v.type for v in operands]), (r.type,))
            ft = self._ftypes.get(key)
            if ft is None:
                ft = self._ftypes[key] = function_type_text(key[0], key[1])
            self._out.append(f'{indent}{rname} = "{self._op_name_text(op.name)}"({args}) : {ft}\n')
            return
        out = self._out
        names = self._names
        parts = [indent]
        if op.results:
            parts.append(self._name_results(op))
            parts.append(" = ")
        parts.append('"')
        parts.append(self._op_name_text(op.name))
        parts.append('"(')
        try:
            parts.append(", ".join([names[v] for v in op._operands]))
        except KeyError:
            parts.append(", ".join(self.value_name(v) for v in op._operands))
        parts.append(")")
        if op.successors:
            parts.append("[" + ", ".join(self._name_block(b) for b in op.successors) + "]")
        if op.regions:
            out.append("".join(parts))
            parts = []
            self._print_regions(op, indent)
        attrs = op.attributes
        if attrs:
            parts.append(" ")
            parts.append(self._attr_dict(attrs))
        key = (tuple([v.type for v in op._operands]), tuple([r.type for r in op.results]))
        ft = self._ftypes.get(key)
        if ft is None:
            ft = self._ftypes[key] = function_type_text(key[0], key[1])
        parts.append(" : ")
        parts.append(ft)
        if self.print_locations:
            parts.append(" ")
            parts.append(op.location.print())
        parts.append("\n")
        out.append("".join(parts))

    def _print_regions(self, op: Operation, indent: str) -> None:
        from .opdef import IsolatedFromAbove
        isolated = IsolatedFromAbove in op.TRAITS
        if isolated:
            # numbering restarts, but (as in MLIR) names visible outside may not be redefined inside
            outer = self._scopes[-1]
            scope = _Scope()
            scope.next_value, scope.next_arg, scope.used = outer.next_value, outer.next_arg, set(outer.used)
            self._scopes.append(scope)
        out = self._out
        out.append(" (")
        for i, region in enumerate(op.regions):
            if i:
                out.append(", ")
            self._print_region(region, indent)
        out.append(")")
        if isolated:
            self._scopes.pop()

    def _name_args(self, block: Block, scope: _Scope) -> None:
        for a in block.args:
            if a in self._names:
                continue
            hint = a.name_hint
            if hint is not None and self.name_hints:
                self._names[a] = self._unique(hint, scope)
            else:
                name = f"arg{scope.next_arg}"
                scope.next_arg += 1
                while name in scope.used:  # a hint already took it
                    name = f"arg{scope.next_arg}"
                    scope.next_arg += 1
                scope.used.add(name)
                self._names[a] = "%" + name

    def _prename_region(self, region: Region, scope: _Scope) -> None:
        """Name values in printing order before printing: later blocks may define values used earlier."""
        from .opdef import IsolatedFromAbove
        for block in region.blocks:
            self._name_args(block, scope)
            for op in block.ops:
                if op.results:
                    self._name_results(op)
                if op.regions and IsolatedFromAbove not in op.TRAITS:
                    for r in op.regions:
                        self._prename_region(r, scope)

    def _print_region(self, region: Region, indent: str) -> None:
        out = self._out
        out.append("{\n")
        inner = indent + self.indent_unit
        scope = self._scopes[-1]
        if len(region.blocks) > 1:
            self._prename_region(region, scope)
        for bi, block in enumerate(region.blocks):
            self._name_args(block, scope)
            if bi > 0 or block.args or block.first_op is None:  # MLIR reads `{}` as a region without blocks
                label = self._name_block(block)
                if block.args:
                    args = ", ".join(f"{self._names[a]}: {a.type}" for a in block.args)
                    out.append(f"{indent}{label}({args}):\n")
                else:
                    out.append(f"{indent}{label}:\n")
            op = block.first_op
            while op is not None:
                self._print_op(op, inner)
                op = op.next_op
        out.append(indent + "}")

    # ---- attributes ---------------------------------------------------------------------
    def _attr_dict(self, attrs: dict[str, Attribute]) -> str:
        items = []
        for k, v in attrs.items():
            key = attr_name_text(k)
            if isinstance(v, UnitAttr):
                items.append(key)
            else:
                items.append(f"{key} = {self.attr_text(v)}")
        return "{" + ", ".join(items) + "}"

    def attr_text(self, attr: Attribute) -> str:
        if isinstance(attr, DenseResourceElementsAttr):
            return f"dense_resource<{resource_key_text(self._resource_key(attr))}> : {attr.type}"
        if (self.elide_elements is not None and isinstance(attr, DenseElementsAttr)
                and attr.array.size > self.elide_elements and not attr.is_splat()):
            return f"dense_resource<{ELIDED_KEY}> : {attr.type}"
        if isinstance(attr, ArrayAttr) and any(isinstance(a, (DenseResourceElementsAttr, ArrayAttr,
                                                              DictionaryAttr, DenseElementsAttr))
                                               for a in attr.value):
            return "[" + ", ".join(self.attr_text(a) for a in attr.value) + "]"
        if isinstance(attr, DictionaryAttr):
            return self._attr_dict(attr.value)
        return attr.text()

    def _resource_key(self, attr: DenseResourceElementsAttr) -> str:
        key = self._resource_keys.get(id(attr))
        if key is not None:
            return key
        key = attr.key
        existing = self._resources.get(key)
        n = 1
        while existing is not None and existing is not attr and existing.blob != attr.blob:
            key = f"{attr.key}_{n}"
            n += 1
            existing = self._resources.get(key)
        self._resources[key] = attr
        self._resource_keys[id(attr)] = key
        return key


def print_module(op: Operation, *, print_locations: bool = False, name_hints: bool = True,
                 elide_elements_if_larger: int | None = None, elide_resources_if_larger: int | None = None) -> str:
    """Text of `op` (typically a `builtin.module`) with its resources section; the `elide_*` limits as
    `Printer`'s (MLIR's `--mlir-elide-elementsattrs-if-larger` / `--mlir-elide-resource-strings-if-larger`)."""
    return Printer(print_locations=print_locations, name_hints=name_hints,
                   elide_elements_if_larger=elide_elements_if_larger,
                   elide_resources_if_larger=elide_resources_if_larger).print_module(op)

