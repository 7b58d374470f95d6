"""The persistent translation cache (hqemu/runtime/codecache.py): a second run of a program
rebuilds its blocks (and installs its LLVM objects) from the cache, and never runs stale code.

The oracle of every end-to-end test is the native run of the same program; the counters come
from `-d cache` ("this run: blocks H hits, M misses, S stale; objects ..."). In-process tests
check that a rebuilt block is the compiled one (same code, same bindings) and that changed
guest bytes are a miss.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from dataclasses import replace
from pathlib import Path

import guestrun
import pytest

from hqemu.env import Env
from hqemu.errors import GuestExit
from hqemu.ir.text import format_unit
from hqemu.linux import loader
from hqemu.linux.memory import GuestMemory
from hqemu.log import Log
from hqemu.params import Params
from hqemu.quick.codegen import bind_recipe, rebuild_block
from hqemu.runtime import codecache
from hqemu.runtime.engine import Engine

SUMMARY = re.compile(r"this run: blocks (\d+) hits, (\d+) misses, (\d+) stale; "
                     r"objects (\d+) hits, (\d+) misses")

SMC_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
/* Writes `mov eax, imm32; ret` at a fixed address, calls it, rewrites it: code that changes
   between calls and between runs (argv[1] picks the constants). */
typedef int (*fn_t)(void);
static void put(unsigned char *p, int v) { p[0] = 0xb8; memcpy(p + 1, &v, 4); p[5] = 0xc3; }
int main(int argc, char **argv) {
    int a = argc > 1 ? atoi(argv[1]) : 1;
    unsigned char *p = mmap((void *)0x7000000, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED) return 2;
    fn_t f = (fn_t)p;
    long sum = 0;
    for (int round = 0; round < 3; round++) {
        put(p, a * 10 + round);
        __builtin___clear_cache((char *)p, (char *)p + 6);
        for (int i = 0; i < 20; i++) sum += f();
        printf("round %d: %d\n", round, f());
    }
    printf("sum %ld\n", sum);
    return 0;
}
"""


def _run(path: Path, cache: Path | str, tmp_path: Path, *opts: str, args: tuple[str, ...] = ()
         ) -> tuple[guestrun.Run, str]:
    """hqemu with the cache at `cache` and -d cache; the run and its log."""
    log = tmp_path / f"log{len(list(tmp_path.glob('log*')))}"
    run = guestrun.run_hqemu(path, args, guestrun.clean_env(), tmp_path,
                             ("-code-cache", str(cache), "-d", "cache", "-D", str(log), *opts))
    return run, log.read_text() if log.exists() else ""


def _summary(log: str) -> tuple[int, ...]:
    m = SUMMARY.search(log)
    assert m is not None, log
    return tuple(map(int, m.groups()))


def _check(native: guestrun.Run, emu: guestrun.Run, what: str) -> None:
    guestrun.assert_same_run(native, emu, what=what)


# --- end to end ------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["hybrids", "block"])
def test_second_run_hits_every_block_and_object(guest, tmp_path, mode):
    """hybrids records the same traces in both runs, block compiles every block: the second
    run compiles nothing."""
    path = guest("x86_64-musl", "hello")
    native = guestrun.run_native(path, (), guestrun.clean_env(), tmp_path)
    cache = tmp_path / "cache"
    opts = ("-llvm-mode", mode, "-hot-threshold", "2")
    cold, log1 = _run(path, cache, tmp_path, *opts)
    _check(native, cold, "cold run")
    hits, misses, stale, ohits, omisses = _summary(log1)
    assert hits == 0 and misses > 50 and omisses > 0, log1
    assert "wrote" in log1 and len(list(cache.glob("*.hqc"))) == 1
    warm, log2 = _run(path, cache, tmp_path, *opts)
    _check(native, warm, "warm run")
    hits2, misses2, stale2, ohits2, omisses2 = _summary(log2)
    assert (hits2, misses2, stale2) == (misses, 0, 0), log2
    assert (ohits2, omisses2) == (omisses, 0), log2
    assert "wrote" not in log2  # nothing new: the file is left alone


def test_changed_binary_at_the_same_path_misses(guest, tmp_path):
    prog = tmp_path / "prog"
    shutil.copy(guest("x86_64-musl", "hello"), prog)
    cache = tmp_path / "cache"
    first, log1 = _run(prog, cache, tmp_path, "-llvm-mode", "none")
    _check(guestrun.run_native(prog, (), guestrun.clean_env(), tmp_path), first, "hello")
    shutil.copy(guest("x86_64-musl", "args"), prog)
    native = guestrun.run_native(prog, ("a", "b"), guestrun.clean_env(), tmp_path)
    second, log2 = _run(prog, cache, tmp_path, "-llvm-mode", "none", args=("a", "b"))
    _check(native, second, "args at hello's path")
    assert "loaded" not in log2 and _summary(log2)[0] == 0, log2


@pytest.mark.parametrize("damage", ["truncate", "flip", "foreign", "empty"])
def test_a_damaged_file_is_ignored_and_replaced(guest, tmp_path, damage):
    path = guest("x86_64-musl", "hello")
    native = guestrun.run_native(path, (), guestrun.clean_env(), tmp_path)
    cache = tmp_path / "cache"
    _run(path, cache, tmp_path, "-llvm-mode", "none")
    (f,) = cache.glob("*.hqc")
    data = f.read_bytes()
    if damage == "truncate":
        f.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        f.write_bytes(data[:-100] + bytes([data[-100] ^ 0x40]) + data[-99:])
    elif damage == "foreign":
        f.write_bytes(b"\x7fELF" + os.urandom(4000))
    else:
        f.write_bytes(b"")
    run, log = _run(path, cache, tmp_path, "-llvm-mode", "none")
    _check(native, run, f"after {damage}")
    assert "ignoring" in log and _summary(log)[0] == 0, log
    again, log3 = _run(path, cache, tmp_path, "-llvm-mode", "none")  # the file was rewritten whole
    _check(native, again, "third run")
    assert _summary(log3)[1] == 0, log3


def test_cache_off_writes_nothing(guest, tmp_path, monkeypatch):
    path = guest("x86_64-musl", "hello")
    native = guestrun.run_native(path, (), guestrun.clean_env(), tmp_path)
    home = tmp_path / "xdg"
    env = guestrun.clean_env({"XDG_CACHE_HOME": str(home)})
    cmd, add = guestrun.hqemu_command(("-code-cache", "", "-llvm-mode", "none", "-d", "cache"))
    r = guestrun.run_command([*cmd, str(path)], {**env, **add}, tmp_path, None, 120)
    _check(native, guestrun.Run(r.returncode, r.stdout, r.stderr), "cache off")
    assert not list(home.rglob("*.hqc")) and b"code cache" not in r.stderr


@pytest.fixture(scope="module")
def smc(tmp_path_factory) -> Path:
    cc = shutil.which("musl-gcc") or shutil.which("gcc")  # musl: a small start-up, a fast test
    if cc is None:
        pytest.skip("no C compiler")
    d = tmp_path_factory.mktemp("smc")
    (d / "smc.c").write_text(SMC_C)
    subprocess.run([cc, "-O1", "-static", "-o", str(d / "smc"), str(d / "smc.c")], check=True)
    return d / "smc"


@pytest.mark.parametrize("mode", ["none", "hybrids"])
def test_self_modifying_code_across_runs(smc, tmp_path, mode):
    """The code at 0x7000000 is rewritten within a run and differs between runs: every
    cached translation of it that does not match the live bytes must be a miss."""
    cache = tmp_path / "cache"
    stale = 0
    for arg in ("1", "1", "2"):
        native = guestrun.run_native(smc, (arg,), guestrun.clean_env(), tmp_path)
        emu, log = _run(smc, cache, tmp_path, "-llvm-mode", mode, args=(arg,))
        _check(native, emu, f"smc {arg}")
        stale += _summary(log)[2]
    assert stale > 0  # the cache held the last version of the rewritten code


def test_concurrent_runs_share_one_file(guest, tmp_path):
    path = guest("x86_64-musl", "hello")
    native = guestrun.run_native(path, (), guestrun.clean_env(), tmp_path)
    cache = tmp_path / "cache"
    cmd, add = guestrun.hqemu_command(("-code-cache", str(cache), "-llvm-mode", "none"))
    env = {**guestrun.clean_env(), **add}
    procs = [subprocess.Popen([*cmd, str(path)], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(3)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        _check(native, guestrun.Run(p.returncode, out, err), "concurrent run")
    assert len(list(cache.glob("*.hqc"))) == 1 and not list(cache.glob(".hqc-*"))
    warm, log = _run(path, cache, tmp_path, "-llvm-mode", "none")
    _check(native, warm, "after concurrent runs")
    assert "ignoring" not in log and _summary(log)[1:3] == (0, 0), log


# --- in process ------------------------------------------------------------------------------
def _engine(path: Path, cache: Path) -> tuple[Engine, int]:
    params = replace(Params(), code_cache=str(cache), llvm_mode="none")
    fe = loader.probe(str(path))
    env = Env(params, fe, GuestMemory(params.guest_space), Log(set()), exe_path=str(path),
              argv=[str(path)], pid=os.getpid())
    image = loader.load(env, str(path), [str(path)], [])
    fe.init_cpu(env.cpu, image.entry, image.sp)
    return Engine(env), image.entry


def _run_in_process(eng: Engine, entry: int) -> None:
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            with pytest.raises(GuestExit):
                eng.run(entry)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        eng.shutdown()


def _same_binding(name: str, a: object, b: object, blk_a: object, blk_b: object) -> bool:
    if a is blk_a:
        return b is blk_b
    if isinstance(a, float):
        return isinstance(b, float) and struct.pack("<d", a) == struct.pack("<d", b)
    if name.startswith("PK"):
        return a.__self__.format == b.__self__.format
    return a is b or a == b  # bound methods of the same object compare equal


def test_rebuilt_blocks_are_the_compiled_ones(guest, tmp_path):
    """Every block of a floating-point program: the rebuilt function has the same code and bindings,
    and its lazily parsed unit prints as the original one."""
    path = guest("x86_64-musl", "fpu")
    eng, entry = _engine(path, tmp_path / "cache")
    _run_in_process(eng, entry)
    env, n = eng.env, 0
    for blk in list(eng.cache.values()):
        recipe = bind_recipe(blk)
        assert recipe is not None, blk
        again = rebuild_block(blk.pc, blk.fn.__code__, recipe, blk.n_insns, blk.size, blk.exits,
                              blk.line_pcs, format_unit(blk.unit), blk.final, env)
        assert again.fn.__code__ == blk.fn.__code__
        names = blk.fn.__code__.co_varnames[:blk.fn.__code__.co_argcount]
        for name, a, b in zip(names, blk.fn.__defaults__ or (), again.fn.__defaults__ or (), strict=True):
            assert _same_binding(name, a, b, blk, again), (hex(blk.pc), name, a, b)
        assert again.final == blk.final and format_unit(again.unit) == format_unit(blk.unit)
        n += 1
    assert n > 200


def test_changed_guest_bytes_are_a_miss(guest, tmp_path):
    path = guest("x86_64-musl", "hello")
    cache = tmp_path / "cache"
    eng, entry = _engine(path, cache)
    _run_in_process(eng, entry)
    eng2, _ = _engine(path, cache)
    cc = eng2.codecache
    assert cc is not None and cc.blocks
    (pc, _), entry_ = next(iter(cc.blocks.items()))
    mem = eng2.env.mem
    real = mem.fetch

    def changed(addr: int, n: int) -> bytes:
        data = bytearray(real(addr, n))
        data[-1] ^= 0xFF
        return bytes(data)

    mem.fetch = changed
    assert cc.lookup(pc) is None and eng2.env.stats.code_cache_stale == 1
    mem.fetch = lambda addr, n: real(addr, n)[:-1]  # a page that became non-executable
    assert cc.lookup(pc) is None and eng2.env.stats.code_cache_stale == 2
    mem.fetch = real
    blk, _ = cc.lookup(pc)
    assert blk.pc == pc and eng2.env.stats.code_cache_hits == 1


def test_two_writers_merge(guest, tmp_path):
    """Two runs that loaded the same (empty) file and translated different blocks: the file
    ends with both sets."""
    path = guest("x86_64-musl", "hello")
    cache = tmp_path / "cache"
    a, entry = _engine(path, cache)
    b, _ = _engine(path, cache)
    a.translate(entry)
    blk = b.translate(entry)
    assert blk.exits
    b.translate(blk.exits[-1])
    b.codecache.new_blocks = b.codecache.new_blocks[1:]  # b stores only its second block
    a.codecache.save()
    b.codecache.save()
    c, _ = _engine(path, cache)
    assert {pc for pc, _ in c.codecache.blocks} == {entry, *blk.exits[-1:]}


def test_a_foreign_payload_is_refused():
    """A file with a valid header whose payload is for another configuration."""
    data = codecache._encode({"key": "other", "blocks": {}, "objs": {}})
    codecache._decode(data, "other")
    with pytest.raises(ValueError):
        codecache._decode(data, "mine")
