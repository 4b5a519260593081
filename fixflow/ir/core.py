"""The IR data structures: values with use lists, operations, blocks (intrusive op lists) and regions."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from .attributes import Attribute, to_attribute
from .location import UNKNOWN_LOC, Location
from .types import Type


class IRError(Exception):
    """Misuse of the IR API (a programming error, not a user-input error)."""


class Value:
    """An SSA value. `uses` maps each using operation to the number of its operands that are this value."""

    __slots__ = ("type", "uses", "name_hint")

    def __init__(self, type: Type):
        self.type = type
        self.uses: dict[Operation, int] = {}
        self.name_hint: str | None = None

    @property
    def users(self) -> list["Operation"]:
        return list(self.uses)

    def has_uses(self) -> bool:
        return bool(self.uses)

    @property
    def num_uses(self) -> int:
        return sum(self.uses.values())

    def replace_all_uses_with(self, new: "Value") -> None:
        """Make every user of this value use `new` instead."""
        if new is self:
            return
        for user in list(self.uses):
            ops = user._operands
            for i, v in enumerate(ops):
                if v is self:
                    ops[i] = new
            new.uses[user] = new.uses.get(user, 0) + self.uses[user]
        self.uses.clear()

    def replace_uses_where(self, new: "Value", pred: Callable[["Operation"], bool]) -> None:
        for user in list(self.uses):
            if pred(user):
                for i, v in enumerate(user._operands):
                    if v is self:
                        user.set_operand(i, new)

    @property
    def owner(self):  # pragma: no cover - overridden
        raise NotImplementedError


class OpResult(Value):
    __slots__ = ("op", "index")

    def __init__(self, type: Type, op: "Operation", index: int):
        self.type = type
        self.uses = {}
        self.name_hint = None
        self.op = op
        self.index = index

    @property
    def owner(self) -> "Operation":
        return self.op

    def __repr__(self) -> str:
        return f"<OpResult #{self.index} of {self.op.name}: {self.type}>"


class BlockArgument(Value):
    __slots__ = ("block", "index")

    def __init__(self, type: Type, block: "Block", index: int):
        self.type = type
        self.uses = {}
        self.name_hint = None
        self.block = block
        self.index = index

    @property
    def owner(self) -> "Block":
        return self.block

    def __repr__(self) -> str:
        return f"<BlockArgument #{self.index}: {self.type}>"


OpT = TypeVar("OpT", bound="Operation")


class Operation:
    """A generic operation. Registered ops are subclasses (see `fixflow.ir.opdef`)."""

    __slots__ = ("name", "_operands", "results", "attributes", "regions", "successors", "location",
                 "parent", "prev_op", "next_op", "__weakref__")

    #: set on registered subclasses
    OP_NAME: str | None = None
    TRAITS: frozenset = frozenset()

    def __init__(self, name: str, operands: Sequence[Value] = (), result_types: Sequence[Type] = (),
                 attributes: dict[str, Attribute] | None = None, regions: Sequence["Region"] = (),
                 successors: Sequence["Block"] = (), location: Location = UNKNOWN_LOC):
        self.name = name
        self._operands = ops = list(operands)
        for v in ops:
            u = v.uses
            u[self] = u.get(self, 0) + 1
        self.results = [OpResult(t, self, i) for i, t in enumerate(result_types)]
        self.attributes = attributes if attributes is not None else {}
        self.regions = []
        for r in regions:
            self.add_region(r)
        self.successors = list(successors)
        self.location = location
        self.parent = None
        self.prev_op = None
        self.next_op = None

    # ---- construction -------------------------------------------------------------------
    @staticmethod
    def _new_leaf(cls: type, name: str, operands: list[Value], result_types: Sequence[Type],
                  attributes: dict[str, Attribute], location: Location) -> "Operation":
        """`cls` instance without regions or successors (the parser's hot path; same state as `__init__`)."""
        op = object.__new__(cls)
        op.name = name
        op._operands = operands
        for v in operands:
            u = v.uses
            u[op] = u.get(op, 0) + 1
        op.results = [OpResult(t, op, i) for i, t in enumerate(result_types)]
        op.attributes = attributes
        op.regions = []
        op.successors = []
        op.location = location
        op.parent = op.prev_op = op.next_op = None
        return op

    @staticmethod
    def create(name: str, operands: Sequence[Value] = (), result_types: Sequence[Type] = (),
               attributes: dict[str, Attribute] | None = None, regions: Sequence["Region"] = (),
               successors: Sequence["Block"] = (), location: Location = UNKNOWN_LOC) -> "Operation":
        """Create an op by name: an instance of the registered class if there is one."""
        from .opdef import lookup_op_class
        cls = lookup_op_class(name) or Operation
        op = object.__new__(cls)
        Operation.__init__(op, name, operands, result_types, attributes, regions, successors, location)
        return op

    def add_region(self, region: "Region | None" = None) -> "Region":
        region = region if region is not None else Region()
        if region.parent is not None:
            raise IRError("region already belongs to an operation")
        region.parent = self
        self.regions.append(region)
        return region

    # ---- operands and results -----------------------------------------------------------
    @property
    def operands(self) -> list[Value]:
        """The operand list (do not mutate it directly: use `set_operand(s)`)."""
        return self._operands

    def set_operand(self, index: int, value: Value) -> None:
        old = self._operands[index]
        if old is value:
            return
        self._drop_use(old)
        self._operands[index] = value
        value.uses[self] = value.uses.get(self, 0) + 1

    def set_operands(self, values: Sequence[Value]) -> None:
        for v in self._operands:
            self._drop_use(v)
        self._operands = list(values)
        for v in self._operands:
            v.uses[self] = v.uses.get(self, 0) + 1

    def _drop_use(self, v: Value) -> None:
        n = v.uses.get(self, 0)
        if n <= 1:
            v.uses.pop(self, None)
        else:
            v.uses[self] = n - 1

    @property
    def result(self) -> OpResult:
        """The single result (error if the op does not have exactly one)."""
        if len(self.results) != 1:
            raise IRError(f"'{self.name}' has {len(self.results)} results, not one")
        return self.results[0]

    @property
    def result_types(self) -> list[Type]:
        return [r.type for r in self.results]

    @property
    def operand_types(self) -> list[Type]:
        return [v.type for v in self._operands]

    # ---- attributes ---------------------------------------------------------------------
    def get_attr(self, name: str, default: Any = None) -> Any:
        return self.attributes.get(name, default)

    def set_attr(self, name: str, value: Any) -> None:
        self.attributes[name] = to_attribute(value)

    def has_trait(self, trait: type) -> bool:
        return trait in self.TRAITS

    # ---- structure ----------------------------------------------------------------------
    @property
    def parent_block(self) -> "Block | None":
        return self.parent

    @property
    def parent_region(self) -> "Region | None":
        return self.parent.parent if self.parent is not None else None

    @property
    def parent_op(self) -> "Operation | None":
        b = self.parent
        if b is None or b.parent is None:
            return None
        return b.parent.parent

    def is_ancestor_of(self, other: "Operation") -> bool:
        op: Operation | None = other
        while op is not None:
            if op is self:
                return True
            op = op.parent_op
        return False

    def walk(self, op_type: type | tuple | None = None, *, reverse: bool = False,
             post_order: bool = False) -> Iterator["Operation"]:
        """All ops nested in this one, this one included (pre-order by default)."""
        if op_type is None or isinstance(self, op_type):
            if not post_order:
                yield self
        regions = reversed(self.regions) if reverse else self.regions
        for region in regions:
            for block in (reversed(region.blocks) if reverse else region.blocks):
                op = block.last_op if reverse else block.first_op
                while op is not None:
                    nxt = op.prev_op if reverse else op.next_op
                    if op.regions:
                        yield from op.walk(op_type, reverse=reverse, post_order=post_order)
                    elif op_type is None or isinstance(op, op_type):
                        yield op
                    op = nxt
        if post_order and (op_type is None or isinstance(self, op_type)):
            yield self

    def detach(self) -> "Operation":
        """Unlink from the parent block (uses are kept)."""
        b = self.parent
        if b is not None:
            b._unlink(self)
        return self

    def erase(self, *, drop_uses: bool = False) -> None:
        """Remove this op. Refuses while a result is still used unless `drop_uses` is set."""
        if not drop_uses:
            for r in self.results:
                if r.uses:
                    users = ", ".join(sorted({u.name for u in r.uses}))
                    raise IRError(f"cannot erase '{self.name}': result #{r.index} is still used by {users}")
        self.detach()
        self.drop_all_references()

    def drop_all_references(self) -> None:
        """Drop operand uses of this op and of everything nested in it."""
        for v in self._operands:
            v.uses.pop(self, None)
        self._operands = []
        for region in self.regions:
            for block in region.blocks:
                for op in list(block.ops):
                    op.drop_all_references()

    def move_before(self, other: "Operation") -> None:
        self.detach()
        other.parent.insert_before(other, self)

    def move_after(self, other: "Operation") -> None:
        self.detach()
        other.parent.insert_after(other, self)

    def replace_all_uses_with(self, values: Sequence[Value] | "Operation") -> None:
        if isinstance(values, Operation):
            values = values.results
        if len(values) != len(self.results):
            raise IRError(f"replacing '{self.name}' needs {len(self.results)} values, got {len(values)}")
        for r, v in zip(self.results, values):
            r.replace_all_uses_with(v)

    def clone(self, value_map: dict[Value, Value] | None = None) -> "Operation":
        """Deep copy, with operands remapped through `value_map` (which is extended)."""
        value_map = {} if value_map is None else value_map
        block_map: dict[Block, Block] = {}
        operands = [value_map.get(v, v) for v in self._operands]
        op = object.__new__(type(self))
        Operation.__init__(op, self.name, operands, [r.type for r in self.results], dict(self.attributes),
                           (), [], self.location)
        for r_old, r_new in zip(self.results, op.results):
            value_map[r_old] = r_new
            r_new.name_hint = r_old.name_hint
        for region in self.regions:
            op.add_region(region.clone(value_map, block_map))
        op.successors = [block_map.get(b, b) for b in self.successors]
        return op

    # ---- verification and printing ------------------------------------------------------
    def verify(self) -> None:
        """Verify this op and everything nested in it; raises `VerifyError`."""
        from .verifier import verify
        verify(self)

    def __str__(self) -> str:
        from .printer import Printer
        return Printer().print_op_to_string(self)

    def __repr__(self) -> str:
        return f"<{self.name} at {self.location.describe()}>"


class Block:
    """A list of operations (intrusive doubly linked) with block arguments."""

    __slots__ = ("args", "first_op", "last_op", "parent", "_len", "__weakref__")

    def __init__(self, arg_types: Iterable[Type] = ()):
        self.args: list[BlockArgument] = []
        self.first_op: Operation | None = None
        self.last_op: Operation | None = None
        self.parent: Region | None = None
        self._len = 0
        for t in arg_types:
            self.add_argument(t)

    def add_argument(self, type: Type) -> BlockArgument:
        arg = BlockArgument(type, self, len(self.args))
        self.args.append(arg)
        return arg

    def erase_argument(self, index: int) -> None:
        arg = self.args[index]
        if arg.uses:
            raise IRError(f"cannot erase block argument #{index}: it is still used")
        del self.args[index]
        for i, a in enumerate(self.args):
            a.index = i

    @property
    def ops(self) -> Iterator[Operation]:
        op = self.first_op
        while op is not None:
            nxt = op.next_op
            yield op
            op = nxt

    def __iter__(self) -> Iterator[Operation]:
        return self.ops

    def __len__(self) -> int:
        return self._len

    @property
    def terminator(self) -> Operation | None:
        return self.last_op

    @property
    def parent_op(self) -> Operation | None:
        return self.parent.parent if self.parent is not None else None

    def _link(self, op: Operation, prev: Operation | None, nxt: Operation | None) -> None:
        if op.parent is not None:
            raise IRError(f"'{op.name}' is already in a block; detach it first")
        op.parent = self
        op.prev_op = prev
        op.next_op = nxt
        if prev is None:
            self.first_op = op
        else:
            prev.next_op = op
        if nxt is None:
            self.last_op = op
        else:
            nxt.prev_op = op
        self._len += 1

    def _unlink(self, op: Operation) -> None:
        prev, nxt = op.prev_op, op.next_op
        if prev is None:
            self.first_op = nxt
        else:
            prev.next_op = nxt
        if nxt is None:
            self.last_op = prev
        else:
            nxt.prev_op = prev
        op.parent = op.prev_op = op.next_op = None
        self._len -= 1

    def append(self, op: Operation) -> Operation:
        self._link(op, self.last_op, None)
        return op

    def add_ops(self, ops: Iterable[Operation]) -> None:
        for op in ops:
            self._link(op, self.last_op, None)

    def insert_before(self, anchor: Operation, op: Operation) -> Operation:
        self._link(op, anchor.prev_op, anchor)
        return op

    def insert_after(self, anchor: Operation, op: Operation) -> Operation:
        self._link(op, anchor, anchor.next_op)
        return op

    def prepend(self, op: Operation) -> Operation:
        self._link(op, None, self.first_op)
        return op

    def index_of(self, op: Operation) -> int:
        for i, o in enumerate(self.ops):
            if o is op:
                return i
        raise IRError("op is not in this block")


class Region:
    """A list of blocks owned by an operation."""

    __slots__ = ("blocks", "parent", "__weakref__")

    def __init__(self, blocks: Iterable[Block] = ()):
        self.blocks: list[Block] = []
        self.parent: Operation | None = None
        for b in blocks:
            self.add_block(b)

    def add_block(self, block: Block | None = None) -> Block:
        block = block if block is not None else Block()
        if block.parent is not None:
            raise IRError("block already belongs to a region")
        block.parent = self
        self.blocks.append(block)
        return block

    @property
    def block(self) -> Block:
        """The single block (error if there is not exactly one)."""
        if len(self.blocks) != 1:
            raise IRError(f"region has {len(self.blocks)} blocks, not one")
        return self.blocks[0]

    @property
    def entry(self) -> Block | None:
        return self.blocks[0] if self.blocks else None

    def ops(self) -> Iterator[Operation]:
        for b in self.blocks:
            yield from b.ops

    def clone(self, value_map: dict[Value, Value] | None = None,
              block_map: dict[Block, Block] | None = None) -> "Region":
        value_map = {} if value_map is None else value_map
        block_map = {} if block_map is None else block_map
        new = Region()
        for b in self.blocks:
            nb = new.add_block(Block())
            block_map[b] = nb
            for a in b.args:
                na = nb.add_argument(a.type)
                na.name_hint = a.name_hint
                value_map[a] = na
        for b in self.blocks:
            nb = block_map[b]
            for op in b.ops:
                nb.append(op.clone(value_map))
        # successors may refer forward to blocks cloned later
        for nb in new.blocks:
            for op in nb.ops:
                if op.successors:
                    op.successors = [block_map.get(s, s) for s in op.successors]
        return new
