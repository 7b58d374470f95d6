"""Builds small x86-64 ELF executables, valid or deliberately broken, for the loader tests.

The valid one is written field by field with struct (not with the loader's parser), and the host
kernel runs it (it exits with status 42), so it is a real executable; each corruption changes one
field or cuts the file.

    >>> data = elfgen.minimal()                        # ehdr, 4 phdrs, code page, data page
    >>> bad = elfgen.with_phdr(data, 2, p_offset=1 << 20)
    >>> bad = elfgen.with_ehdr(data, e_machine=183)    # EM_AARCH64
"""

from __future__ import annotations

import struct

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")  # e_ident .. e_shstrndx
PHDR = struct.Struct("<IIQQQQQQ")  # p_type p_flags p_offset p_vaddr p_paddr p_filesz p_memsz p_align
EHDR_FIELDS = ("e_ident", "e_type", "e_machine", "e_version", "e_entry", "e_phoff", "e_shoff", "e_flags",
               "e_ehsize", "e_phentsize", "e_phnum", "e_shentsize", "e_shnum", "e_shstrndx")
PHDR_FIELDS = ("p_type", "p_flags", "p_offset", "p_vaddr", "p_paddr", "p_filesz", "p_memsz", "p_align")
PT_LOAD, PT_INTERP, PT_PHDR, PT_GNU_STACK = 1, 3, 6, 0x6474E551
PF_X, PF_W, PF_R = 1, 2, 4
BASE = 0x400000
# mov edi, 42; mov eax, 60; syscall  (exit(42))
EXIT42 = bytes.fromhex("bf2a000000b83c0000000f05")
DATA = b"hqemu-data-bytes"


def _ident(cls: int = 2, enc: int = 1) -> bytes:
    return b"\x7fELF" + bytes([cls, enc, 1, 0]) + bytes(8)


def minimal() -> bytes:
    """Headers at 0x400000 (R), code at 0x401000 (R+X, the entry), 16 data bytes then bss at
    0x402000 (R+W, memsz 0x3000), and PT_GNU_STACK (R+W)."""
    phdrs = [
        (PT_LOAD, PF_R, 0, BASE, BASE, 0x1000, 0x1000, 0x1000),
        (PT_LOAD, PF_R | PF_X, 0x1000, BASE + 0x1000, BASE + 0x1000, len(EXIT42), len(EXIT42), 0x1000),
        (PT_LOAD, PF_R | PF_W, 0x2000, BASE + 0x2000, BASE + 0x2000, len(DATA), 0x3000, 0x1000),
        (PT_GNU_STACK, PF_R | PF_W, 0, 0, 0, 0, 0, 16),
    ]
    ehdr = EHDR.pack(_ident(), 2, 62, 1, BASE + 0x1000, 64, 0, 0, 64, 56, len(phdrs), 64, 0, 0)
    out = bytearray(0x2000 + len(DATA))
    out[:64] = ehdr
    for i, ph in enumerate(phdrs):
        PHDR.pack_into(out, 64 + 56 * i, *ph)
    out[0x1000:0x1000 + len(EXIT42)] = EXIT42
    out[0x2000:] = DATA
    return bytes(out)


def stack_probe() -> bytes:
    """minimal() whose code writes a `ret` onto the stack and calls it before exit(42): it
    exits 42 only if the stack is executable (else SIGSEGV)."""
    # lea rax, [rsp-16]; mov byte [rax], 0xc3; call rax
    code = bytes.fromhex("488d4424f0c600c3ffd0") + EXIT42
    out = bytearray(minimal())
    out[0x1000:0x1000 + len(code)] = code
    return with_phdr(bytes(out), 1, p_filesz=len(code), p_memsz=len(code))


def with_ehdr(data: bytes, **fields) -> bytes:
    vals = dict(zip(EHDR_FIELDS, EHDR.unpack_from(data, 0)))
    vals.update(fields)
    out = bytearray(data)
    EHDR.pack_into(out, 0, *(vals[f] for f in EHDR_FIELDS))
    return bytes(out)


def with_phdr(data: bytes, index: int, **fields) -> bytes:
    off = 64 + 56 * index
    vals = dict(zip(PHDR_FIELDS, PHDR.unpack_from(data, off)))
    vals.update(fields)
    out = bytearray(data)
    PHDR.pack_into(out, off, *(vals[f] for f in PHDR_FIELDS))
    return bytes(out)


def with_ident_byte(data: bytes, index: int, value: int) -> bytes:
    out = bytearray(data)
    out[index] = value
    return bytes(out)


def dynamic(data: bytes, interp: bytes = b"/lib64/ld-linux-x86-64.so.2") -> bytes:
    """PT_GNU_STACK turned into a PT_INTERP naming interp (stored at the end of the file)."""
    off = len(data)
    out = data + interp + b"\0"
    return with_phdr(out, 3, p_type=PT_INTERP, p_flags=PF_R, p_offset=off, p_vaddr=0, p_paddr=0,
                     p_filesz=len(interp) + 1, p_memsz=len(interp) + 1, p_align=1)


def elf32() -> bytes:
    """A 32-bit i386 ELF header and one PT_LOAD: a well-formed ELFCLASS32 file."""
    ehdr = struct.pack("<16sHHIIIIIHHHHHH", _ident(cls=1), 2, 3, 1, 0x8048FF8, 52, 0, 0, 52, 32, 1, 40, 0, 0)
    phdr = struct.pack("<IIIIIIII", PT_LOAD, 0, 0x8048000, 0x8048000, 0x1000, 0x1000, PF_R | PF_X, 0x1000)
    out = bytearray(0x1000)
    out[:52] = ehdr
    out[52:84] = phdr
    out[0x1000 - 8:] = b"\xb8\x01\x00\x00\x00\xcd\x80\x90"
    return bytes(out)
