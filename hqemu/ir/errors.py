"""IRError: a malformed unit or unparsable IR text, located as precisely as known.

    >>> raise IRError("binary op types differ", block_pc=0x401000, index=3, op_text="...")

The text parser sets `line`; the verifier sets the block pc, the op index and the op text.
"""

from __future__ import annotations


class IRError(Exception):
    def __init__(self, msg: str, *, line: int | None = None, block_pc: int | None = None,
                 index: int | None = None, op_text: str | None = None):
        where = []
        if line is not None:
            where.append(f"line {line}")
        if block_pc is not None:
            where.append(f"block 0x{block_pc:x}")
        if index is not None:
            where.append(f"op {index}")
        if op_text is not None:
            where.append(f"`{op_text}`")
        super().__init__(f"{' '.join(where)}: {msg}" if where else msg)
        self.msg = msg
        self.line = line
        self.block_pc = block_pc
        self.index = index
        self.op_text = op_text
