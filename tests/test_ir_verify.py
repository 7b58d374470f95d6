"""The verifier accepts every generated unit and rejects each class of malformed one, naming
the block pc, the op index and the op's text."""

from __future__ import annotations

import random

import pytest
from irgen import random_unit

from hqemu.frontends.x86_64.cpu import LAYOUT
from hqemu.ir import I8, I64, Const, Op, Temp
from hqemu.ir.errors import IRError
from hqemu.ir.text import parse_unit
from hqemu.ir.verify import verify

HEAD = """unit x86_64
global rax i64 0
global xmm0 i128 216
block 0x1000
  %0:i64 = get rax
  %1:i128 = get xmm0
  %2:f64 = bitcast %0
  %3:i32 = trunc %0
"""
TAIL = "  exit jump, 0x1004\n"
BAD_INDEX = 4  # the op under test comes after the four of HEAD

# (the bad op, a fragment of the expected message)
BAD_OPS = [
    ("%4:i64 = add %0, %3", "equal types"),
    ("%4:i32 = add %0, %0", "equal types"),
    ("%4:f64 = add %2, %2", "integer type"),
    ("%4:i64 = add %0", "takes 2 input"),
    ("%4:i64 = neg %0, %0", "takes 1 input"),
    ("put rax, %0, %0", "takes 1 input"),
    ("%4:i64 = put rax, %0", "defines 0 output"),
    ("%4:i64 = setcond eq, %0, %0", "returns i1"),
    ("%4:i1 = setcond lt, %0, %3", "equal types"),
    ("%4:i1 = setcond olt, %0, %0", "condition"),
    ("%4:i1 = fcmp lt, %2, %2", "condition"),
    ("%4:i1 = fcmp oeq, %0, %0", "float types"),
    ("%4:i64 = select %0, %0, %0", "condition must be i1"),
    ("%4:i64 = select 0x1:i1, %0, %3", "equal types"),
    ("%4:i16 = zext %0", "narrow"),
    ("%4:i16 = sext %0", "narrow"),
    ("%4:i128 = trunc %0", "widen"),
    ("%4:f32 = bitcast %0", "equal sizes"),
    ("%4:f64 = fadd %2, 0x0.0p+0:f32", "float types"),
    ("%4:i64 = fsqrt %0", "float types"),
    ("%4:f64 = fext %2", "f32 -> f64"),
    ("%4:f64 = ftrunc %2", "f64 -> f32"),
    ("%4:f64 = sitofp %2", "integer type"),
    ("%4:f64 = fptosi %2", "integer type"),
    ("%4:f64 = fround up, %2", "rounding mode"),
    ("%4:i64 = vadd 8, %0, %0", "i128"),
    ("%4:i128 = vadd 12, %1, %1", "lane width"),
    ("%4:i64 = vmsb 8, %1", "i128 -> i32"),
    ("%4:i128 = vshuf 64, [0,1,2], %1, %1", "sel"),
    ("%4:i128 = vshuf 64, [0,4], %1, %1", "sel"),
    ("%4:i8 = bswap 0x1:i8", "multiple of 16"),
    ("%4:i64 = get xmm0", "type i128"),
    ("%4:i64 = get rbx", "not declared"),
    ("put xmm0, %0", "type i128"),
    ("%4:i64 = ld %3", "address must be i64"),
    ("%4:i1 = ld %0", "i1"),
    ("st %3, %0", "address must be i64"),
    ("exit_if jump, 0x1000, %0", "must be i1"),
    ("exit_if leave, 0x1000, 0x1:i1", "exit kind"),
    ("insn 0x1000, 0", "length"),
    ("%4:i8 = mov 0x100:i8", "unsigned 8-bit"),
    ("%4:f32 = mov 0x1.0000000000001p+0:f32", "single precision"),
    ("%4:i64 = call irgen_mix, %0", "takes"),
    ("%4:i32 = call irgen_mix, %0, %0", "returns"),
    ("exit jump, 0x1004", "nothing may follow"),
    ("exit_ind %3", "target must be i64"),
]


@pytest.mark.parametrize("line,what", BAD_OPS, ids=[b[0] for b in BAD_OPS])
def test_rejects(line, what):
    unit = parse_unit(HEAD + "  " + line + "\n" + TAIL, LAYOUT)
    unit.next_temp = 100
    with pytest.raises(IRError) as e:
        verify(unit)
    err = e.value
    assert what in err.msg, err
    assert err.block_pc == 0x1000 and err.index == BAD_INDEX and err.op_text == line
    assert "block 0x1000 op 4" in str(err)


def test_accepts_the_template():
    unit = parse_unit(HEAD + "  put rax, %0\n" + TAIL, LAYOUT)
    verify(unit)


def _unit(extra_ops=()):
    unit = parse_unit(HEAD + TAIL, LAYOUT)
    blk = unit.blocks[0]
    blk.ops[-1:-1] = list(extra_ops)
    return unit


@pytest.mark.parametrize("op,what", [
    (Op("setcond", (Temp(4, I64),), (Const(1, I64), Const(1, I64)), ()), "constant attribute"),
    (Op("get", (Temp(4, I64),), (), ("rax", "rax")), "constant attribute"),
    (Op("exit_if", (), (Const(1, I8),), ("jump", "0x10")), "pc"),
    (Op("insn", (), (), (True, 3)), "pc"),
    (Op("add", (Temp(4, I64),), (Const(True, I64), Const(1, I64)), ()), "unsigned"),
    (Op("add", (Temp(4, I64),), (Const(-1, I64), Const(1, I64)), ()), "unsigned"),
    (Op("add", (Temp(4, I64),), (Const(1.0, I64), Const(1, I64)), ()), "unsigned"),
    (Op("add", (Temp(4, I64),), (Temp(0, I8), Const(1, I64)), ()), "used as i8"),
    (Op("add", (Temp(4, I64),), [Const(1, I64), Const(1, I64)], ()), "tuples"),
    (Op("frob", (), (), ()), "unknown op"),
    (Op("mov", (Temp(4, I64),), (Temp(9, I64),), ()), "before it is defined"),
    (Op("mov", (Temp(0, I64),), (Const(1, I64),), ()), "defined twice"),
    (Op("add", (Temp(400, I64),), (Const(1, I64), Const(1, I64)), ()), "next_temp"),
])
def test_rejects_built_ops(op, what):
    unit = _unit([op])
    unit.next_temp = 5
    with pytest.raises(IRError) as e:
        verify(unit)
    assert what in e.value.msg and e.value.index == 4


def test_rejects_block_structure():
    unit = parse_unit(HEAD, LAYOUT)  # no terminator
    with pytest.raises(IRError, match="must end with a terminator"):
        verify(unit)
    unit.blocks[0].ops.clear()
    with pytest.raises(IRError, match="empty block"):
        verify(unit)
    unit.blocks.clear()
    with pytest.raises(IRError, match="no blocks"):
        verify(unit)


def test_rejects_globals_not_matching_the_layout():
    from hqemu.ir import Global

    unit = _unit()
    unit.globals["rax"] = Global("rax", I64, 8)
    with pytest.raises(IRError, match="layout"):
        verify(unit)


def test_ssa_across_blocks():
    text = HEAD + TAIL + "block 0x1004\n  put rax, %0\n  exit jump, 0x1008\n"
    verify(parse_unit(text, LAYOUT))  # a later block may use an earlier block's temps
    unit = parse_unit(text, LAYOUT)
    unit.blocks[1].ops.insert(0, Op("get", (Temp(0, I64),), (), ("rax",)))
    with pytest.raises(IRError, match="defined twice") as e:
        verify(unit)
    assert e.value.block_pc == 0x1004 and e.value.index == 0


def test_accepts_random_units():
    for seed in range(50):
        verify(random_unit(random.Random(seed), LAYOUT, n_ops=40))
