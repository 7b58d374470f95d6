"""Malformed executables: each one gives one clear line, through loader.load (HqemuError) and
through the command line (exit status 1, one stderr line starting with "hqemu: "), never a
traceback. The valid file they are cut from runs on the host kernel, so the corruptions are
what breaks them."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import elfgen
import pytest

from hqemu import frontends
from hqemu.env import Env
from hqemu.errors import HqemuError
from hqemu.linux import loader
from hqemu.linux.memory import GuestMemory
from hqemu.log import Log
from hqemu.params import Params

ROOT = Path(__file__).resolve().parent.parent
M = elfgen.minimal()
B = elfgen.BASE
INTERP = "/lib64/ld-linux-x86-64.so.2"


def _real_dynamic() -> str:
    return os.path.realpath(sys.executable)  # the venv's python: a dynamically linked ELF


# name -> (file contents, or a callable giving a path; expected text after "PATH: ")
CASES = {
    "empty": (b"", "not an ELF file (empty file)"),
    "text": (b"hello world\n", "not an ELF file"),
    "script": (b"#!/bin/sh\necho hi\n", "not an ELF file (a script for /bin/sh; run its interpreter under "
                                        "hqemu instead)"),
    "directory": (lambda tmp: str(tmp), "is a directory"),
    "missing": (lambda tmp: str(tmp / "no-such-file"), "No such file or directory"),
    "device": (lambda tmp: "/dev/null", "not a regular file"),
    "short-header": (M[:40], "truncated ELF: file is 40 bytes, shorter than the 64-byte ELF header"),
    "short-ident": (M[:5], "truncated ELF: file is 5 bytes, shorter than the ELF header"),
    "truncated-phdrs": (M[:64 + 56 * 2 + 10], "truncated ELF: program header 2 beyond end of file"),
    "phoff-beyond-file": (elfgen.with_ehdr(M, e_phoff=1 << 40),
                          "truncated ELF: program header 0 beyond end of file"),
    "elf32": (elfgen.elf32(), "32-bit ELF (ELFCLASS32) is not supported (64-bit only)"),
    "bad-class": (elfgen.with_ident_byte(M, 4, 7), "invalid ELF class 7"),
    "big-endian": (elfgen.with_ident_byte(M, 5, 2), "big-endian ELF is not supported"),
    "aarch64": (elfgen.with_ehdr(M, e_machine=183),
                "ELF for machine EM_AARCH64 is not supported (x86_64 only)"),
    "unknown-machine": (elfgen.with_ehdr(M, e_machine=0xBEEF),
                        "ELF for machine 48879 is not supported (x86_64 only)"),
    "relocatable": (elfgen.with_ehdr(M, e_type=1), "a relocatable object (ET_REL), not an executable"),
    "core": (elfgen.with_ehdr(M, e_type=4), "a core dump (ET_CORE), not an executable"),
    "no-phdrs": (elfgen.with_ehdr(M, e_phnum=0), "no program headers"),
    "phentsize": (elfgen.with_ehdr(M, e_phentsize=32), "bad program header size 32 (expected 56)"),
    "too-many-phdrs": (elfgen.with_ehdr(M, e_phnum=0xFFFF), "too many program headers (65535)"),
    "segment-beyond-eof": (elfgen.with_phdr(M, 2, p_offset=0x100000),
                           "truncated ELF: segment 2 beyond end of file (ends at 0x100010, file is 0x2010 "
                           "bytes)"),
    "overlap": (elfgen.with_phdr(M, 2, p_vaddr=B + 0x1000), "segment 2 overlaps segment 1"),
    "filesz-gt-memsz": (elfgen.with_phdr(M, 2, p_memsz=4),
                        "segment 2: file size 0x10 exceeds memory size 0x4"),
    "misaligned": (elfgen.with_phdr(M, 1, p_vaddr=B + 0x1010),
                   "segment 1: address 0x401010 and file offset 0x1000 differ modulo the page size"),
    "no-load": (elfgen.with_phdr(elfgen.with_phdr(elfgen.with_phdr(M, 0, p_type=4), 1, p_type=4), 2,
                                 p_type=4), "no loadable segment"),
    "page-zero": (elfgen.with_phdr(M, 2, p_vaddr=0x2000), "segment 2 at 0x2000 is below the lowest mappable "
                                                          "address 0x10000"),
    "beyond-space": (elfgen.with_phdr(M, 2, p_vaddr=1 << 40),
                     "segment 2 (0x10000000000-0x10000003000) does not fit in the guest space (0x4000000000 "
                     "bytes with the stack at the top)"),
    "zero-entry": (elfgen.with_ehdr(M, e_entry=0), "entry point 0x0 is not in an executable segment"),
    "entry-in-data": (elfgen.with_ehdr(M, e_entry=B + 0x2000),
                      "entry point 0x402000 is not in an executable segment"),
    "dynamic": (elfgen.dynamic(M), f"dynamically linked programs are not supported (PT_INTERP {INTERP}); "
                                   f"build with -static"),
    "dynamic-host-binary": (lambda tmp: _real_dynamic(),
                            "dynamically linked programs are not supported (PT_INTERP "),
}


def materialize(name: str, tmp: Path) -> str:
    content, _ = CASES[name]
    if callable(content):
        return content(tmp)
    path = tmp / name
    path.write_bytes(content)
    path.chmod(0o755)
    return str(path)


def new_env() -> Env:
    return Env(Params(), frontends.get("x86_64"), GuestMemory(Params().guest_space), Log(set()),
               rng=random.Random(1))


def expect_message(name: str, path: str, text: str) -> None:
    want = f"{path}: {CASES[name][1]}"
    if name == "dynamic-host-binary":
        assert text.startswith(want) and text.endswith("; build with -static"), text
    else:
        assert text == want


def test_the_valid_file_runs_on_the_host(tmp_path):
    path = tmp_path / "ok"
    path.write_bytes(M)
    path.chmod(0o755)
    assert subprocess.run([str(path)]).returncode == 42
    env = new_env()
    try:
        image = loader.load(env, str(path), ["ok"], [])
        assert image.entry == B + 0x1000
        assert env.mem.fetch(image.entry, 12) == elfgen.EXIT42
    finally:
        env.mem.close()


@pytest.mark.parametrize("name", list(CASES))
def test_loader_rejects_with_one_line(name, tmp_path):
    path = materialize(name, tmp_path)
    env = new_env()
    try:
        with pytest.raises(HqemuError) as e:
            loader.load(env, path, [path], [])
        text = str(e.value)
        assert "\n" not in text
        expect_message(name, path, text)
        try:  # probe checks the headers only; where it refuses, it says the same
            loader.probe(path)
        except HqemuError as p:
            assert str(p) == text
    finally:
        env.mem.close()


# one per kind of failure (each CLI run costs a Python start-up)
CLI_CASES = ["empty", "script", "directory", "missing", "short-header", "truncated-phdrs", "elf32", "aarch64",
             "segment-beyond-eof", "overlap", "zero-entry", "dynamic"]


def test_cli_prints_one_line_and_exits_1(tmp_path):
    paths = {name: materialize(name, tmp_path) for name in CLI_CASES}
    procs = {name: subprocess.Popen([sys.executable, "-m", "hqemu", p], cwd=ROOT, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for name, p in paths.items()}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, (name, err)
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("hqemu: "), (name, err)
        expect_message(name, paths[name], lines[0][len("hqemu: "):])
        assert out == ""


def test_random_corruptions_never_escape_as_other_exceptions(tmp_path):
    """Byte flips in the headers: the loader either loads the file or refuses with HqemuError."""
    rng = random.Random(11)
    path = tmp_path / "fuzz"
    loaded = refused = 0
    for _ in range(300):
        data = bytearray(M)
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(0, 64 + 56 * 4)
            data[i] = rng.choice([0, 0xFF, rng.randrange(256), data[i] ^ (1 << rng.randrange(8))])
        if rng.random() < 0.1:
            data = data[:rng.randrange(len(data))]
        path.write_bytes(bytes(data))
        env = new_env()
        try:
            loader.load(env, str(path), ["fuzz"], [])
            loaded += 1
        except HqemuError as e:
            assert "\n" not in str(e) and str(e).startswith(f"{path}: ")
            refused += 1
        finally:
            env.mem.close()
    assert loaded and refused
