"""Guest ISA frontends, registered by name in one visible list.

    >>> fe = frontends.get("x86_64")
    >>> fe = frontends.for_elf_machine("EM_X86_64")
"""

from __future__ import annotations

import importlib

from .base import Frontend, translate_block

# isa name -> (module, ELF e_machine); the module exposes FRONTEND
_REGISTRY = {
    "x86_64": ("hqemu.frontends.x86_64", "EM_X86_64"),
}


def get(isa: str) -> Frontend:
    return importlib.import_module(_REGISTRY[isa][0]).FRONTEND


def for_elf_machine(machine: str) -> Frontend | None:
    for isa, (_, m) in _REGISTRY.items():
        if m == machine:
            return get(isa)
    return None


def supported_isas() -> tuple[str, ...]:
    """The ISA names hqemu can run, for error messages ("x86_64 only")."""
    return tuple(_REGISTRY)


__all__ = ["Frontend", "translate_block", "get", "for_elf_machine", "supported_isas"]
