"""hqemu's IR: one TCG-like IR for every guest ISA (see docs/ir.md).

This package imports nothing else of hqemu's: frontends, the quick tier and the LLVM
workers all depend on it, never the other way round.
"""

from .builder import Builder
from .core import (
                   F32,
                   F64,
                   I1,
                   I8,
                   I16,
                   I32,
                   I64,
                   I128,
                   INT_BY_BITS,
                   TYPES,
                   Block,
                   Const,
                   Global,
                   Op,
                   StateLayout,
                   Temp,
                   Ty,
                   Unit,
                   Value,
)
from .helpers import HELPERS, IMPLS, NATIVE, Helper, HostInsn, register
from .ops import CONDS, EXIT_KINDS, FCONDS, OPS, F, OpDef

__all__ = [
    "Builder", "F32", "F64", "I1", "I8", "I16", "I32", "I64", "I128", "INT_BY_BITS", "TYPES",
    "Block", "Const", "Global", "Op", "StateLayout", "Temp", "Ty", "Unit", "Value", "HELPERS",
    "IMPLS", "NATIVE", "Helper", "HostInsn", "register", "CONDS", "EXIT_KINDS", "FCONDS", "OPS", "F", "OpDef",
]
