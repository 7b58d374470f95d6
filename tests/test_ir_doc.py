"""docs/ir.md's op table is generated from OPS: it must be in sync (python -m hqemu.ir.doc)."""

from __future__ import annotations

from hqemu.ir import OPS
from hqemu.ir.doc import BEGIN, DOC_PATH, END, render


def test_docs_op_table_in_sync():
    text = DOC_PATH.read_text()
    assert render(text) == text, "docs/ir.md is out of date: run python -m hqemu.ir.doc"


def test_every_op_is_documented():
    text = DOC_PATH.read_text()
    table = text[text.index(BEGIN):text.index(END)]
    for name, d in OPS.items():
        assert f"| `{name}` |" in table and d.doc.replace("|", "\\|") in table


def test_the_text_form_example_is_valid():
    from hqemu.frontends.x86_64.cpu import LAYOUT
    from hqemu.ir.text import format_unit, parse_unit
    from hqemu.ir.verify import verify

    text = DOC_PATH.read_text()
    example = text.split("```\nunit ", 1)[1].split("```", 1)[0]
    unit = parse_unit("unit " + example, LAYOUT)
    verify(unit)
    assert format_unit(unit) == "unit " + example
