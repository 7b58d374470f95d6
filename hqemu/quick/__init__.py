"""The quick tier: every guest block runs first as a generated Python function.

    >>> from hqemu.quick import compile_unit
    >>> blk = compile_unit(unit, env)
    >>> next_pc = blk.fn()
"""

from .block import QuickBlock
from .codegen import TEMPLATES, compile_unit, generate

__all__ = ["QuickBlock", "TEMPLATES", "compile_unit", "generate"]
