"""fixflow's core IR: types, attributes, operations, blocks, regions, text, passes and rewriting.

Nothing here knows about neural networks.
"""

from .attributes import *  # noqa: F401,F403
from .builder import Builder
from .core import Block, BlockArgument, IRError, Operation, OpResult, Region, Value
from .diagnostics import FixflowError, ParseError, PassError, VerifyError
from .location import (UNKNOWN_LOC, CallSiteLoc, FileLineColLoc, FusedLoc, Location, NameLoc,
                       UnknownLoc)
from .opdef import *  # noqa: F401,F403
from .parser import parse_attribute, parse_module, parse_type
from .printer import Printer, print_module
from .types import (DialectType, FloatType, FunctionType, IndexType, IntegerType, NoneType, OpaqueType,
                    TensorType, Type, UnrankedTensorType, bf16, f16, f32, f64, i1, i8, i16, i32, i64, index)
from .verifier import verify
