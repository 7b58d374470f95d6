"""The text form: exact round trip on random units of every op and type, bit-exact floats,
parse errors with line numbers."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from irgen import random_unit

from hqemu.frontends.x86_64.cpu import LAYOUT
from hqemu.ir import F64, I32, I64, I128, Builder, Const, Unit
from hqemu.ir.errors import IRError
from hqemu.ir.text import format_unit, parse_float, parse_unit, structure
from hqemu.ir.verify import verify

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def assert_same_unit(a: Unit, b: Unit) -> None:
    """Field by field, independently of the printer: ops, temps, types, consts, float bits."""
    assert a.isa == b.isa
    assert list(a.globals.values()) == list(b.globals.values())
    assert [blk.pc for blk in a.blocks] == [blk.pc for blk in b.blocks]
    for ba, bb in zip(a.blocks, b.blocks):
        assert len(ba.ops) == len(bb.ops)
        for x, y in zip(ba.ops, bb.ops):
            assert x.name == y.name
            assert tuple(x.consts) == tuple(y.consts) or [tuple(c) if isinstance(c, list) else c
                                                          for c in x.consts] == list(y.consts)
            assert [(t.id, t.ty) for t in x.outs] == [(t.id, t.ty) for t in y.outs]
            assert len(x.ins) == len(y.ins)
            for v, w in zip(x.ins, y.ins):
                assert type(v) is type(w) and v.ty == w.ty
                if isinstance(v, Const):
                    if v.ty.is_float:
                        assert bits(v.value) == bits(w.value)
                    else:
                        assert v.value == w.value
                else:
                    assert v.id == w.id


@SETTINGS
@given(st.data())
def test_round_trip_random_units(data):
    unit = random_unit(data, LAYOUT, n_ops=25)
    s = format_unit(unit)
    back = parse_unit(s, LAYOUT)
    assert format_unit(back) == s
    assert_same_unit(unit, back)
    assert structure(back) == structure(unit)
    verify(back)


def test_round_trip_covers_every_op():
    import random

    from hqemu.ir import OPS

    seen = set()
    for seed in range(40):
        unit = random_unit(random.Random(seed), LAYOUT, n_ops=60)
        seen |= {op.name for op in unit.ops()}
        s = format_unit(unit)
        assert format_unit(parse_unit(s)) == s
    assert seen == set(OPS)


SPECIAL = [0.0, -0.0, math.inf, -math.inf, 5e-324, -1.7976931348623157e308, 1 / 3,
           struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000000))[0],
           struct.unpack("<d", struct.pack("<Q", 0xFFF8000000000001))[0],
           struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000001))[0],  # signalling
           struct.unpack("<d", struct.pack("<Q", 0x7FFFFFFFE0000000))[0]]


@pytest.mark.parametrize("x", SPECIAL, ids=[f"{bits(x):016x}" for x in SPECIAL])
def test_float_constants_bit_exact(x):
    u = Unit("x86_64", LAYOUT)
    b = Builder(u, u.new_block(0x1000))
    v = b.bitcast(Const(x, F64), I64)
    b.put("rax", v)
    b.exit("jump", 0x1000)
    back = parse_unit(format_unit(u))
    assert bits(back.blocks[0].ops[0].ins[0].value) == bits(x)


@given(st.integers(0, 2**64 - 1))
def test_any_double_bits_round_trip(b):
    x = struct.unpack("<d", struct.pack("<Q", b))[0]
    from hqemu.ir.text import format_float

    assert bits(parse_float(format_float(x))) == b


def test_i128_and_sel_and_multi_results():
    from hqemu.ir.helpers import HELPERS

    assert "irgen_two" in HELPERS  # registered by irgen
    u = Unit("x86_64", LAYOUT)
    b = Builder(u, u.new_block(0x1000))
    x = b.get("xmm3")
    y = b.vop("vshuf", 32, x, Const(2**128 - 1, I128), extra=((7, 0, 5, 1),))
    b.put("xmm3", y)
    r = b.call("irgen_two", Const(1, I32), Const(-0.0, F64))
    assert len(r) == 2
    b.exit("jump", 0x1004)
    s = format_unit(u)
    assert "[7,0,5,1]" in s and "%2:i32, %3:f64 = call irgen_two" in s
    assert format_unit(parse_unit(s)) == s


BAD = [
    ("global rax i64 0\nblock 0x1\n  exit jump, 0x1\n", 1, "unit"),
    ("unit x86_64\nblock 0x1\n  %0:i64 = frob 0x1:i64\n", 3, "unknown op"),
    ("unit x86_64\nblock 0x1\n  %0:i64 = add %1, 0x1:i64\n", 3, "before its definition"),
    ("unit x86_64\nblock 0x1\n  %0:i64 = mov 0x1:i64\n  %0:i64 = mov 0x1:i64\n", 4, "twice"),
    ("unit x86_64\nblock 0x1\n  %0:i64 = mov 0x1\n", 3, "no type"),
    ("unit x86_64\nblock 0x1\n  %0:i65 = mov 0x1:i64\n", 3, "unknown type"),
    ("unit x86_64\nblock 0x1\n  %0:f64 = mov 1.5:f64\n", 3, "float.hex"),
    ("unit x86_64\nblock 0x1\n  %0:f64 = mov nan(0x3ff0000000000000):f64\n", 3, "not a NaN"),
    ("unit x86_64\nblock 0x1\n  %0:i1 = setcond\n", 3, "constant attribute"),
    ("unit x86_64\n  exit jump, 0x1\n", 2, "before the first block"),
    ("unit x86_64\nglobal rax i64 8\nblock 0x1\n  exit jump, 0x1\n", 2, "layout"),
]


@pytest.mark.parametrize("text,line,what", BAD)
def test_parse_errors_name_the_line(text, line, what):
    with pytest.raises(IRError) as e:
        parse_unit(text, LAYOUT)
    assert e.value.line == line
    assert what in str(e.value)


def test_comments_and_blank_lines_are_ignored():
    text = ("; a comment\nunit x86_64\n\nglobal rax i64 0\n; another\n"
            "block 0x10\n  put rax, 0x1:i64\n  exit jump, 0x11\n")
    u = parse_unit(text, LAYOUT)
    kept = [ln for ln in text.splitlines(keepends=True) if ln.strip() and not ln.startswith(";")]
    assert format_unit(u) == "".join(kept)
    assert u.layout is LAYOUT and u.next_temp == 0
