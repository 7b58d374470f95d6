"""The persistent translation cache: quick-tier blocks and LLVM objects kept across runs.

    >>> cc = CodeCache.open(env)               # None when -code-cache '' (or no program file)
    >>> blk = cc.lookup(pc)                    # a QuickBlock rebuilt without lifting, or None
    >>> cc.add(blk, window)                    # a block just translated (window: see Window)
    >>> obj = cc.get_obj(key)                  # key = cc.obj_key(ir_text, opt, "trace")
    >>> cc.save()                              # at exit: merge into the file, atomically

One file per guest executable and translation configuration, named by the hash of the
executable's bytes and of the configuration, loaded once at start-up and rewritten at exit.
A cached translation is used only when it is provably the one this process would make:

- the configuration key hashes hqemu's own source (every .py file of hqemu/ and workers/,
  read once per process, ~4 ms), the Python bytecode magic, the guest ISA and every knob that
  changes what the quick tier emits (max_block_insns, the effective loop iterations, which
  -d exec changes, codegen's shape switches); the frontend's translation mode at the time
  (`env.fe.translation_key`, which a run may switch) is part of each entry's key;
- an entry holds the guest bytes its translation saw (from its pc to the end of the
  frontend's last fetch, which may have been cut short by a non-executable page): the live
  guest memory must return exactly those bytes at lookup, else it is a miss;
- objects are keyed by the hash of the IR text, the opt level, the naming scheme, llvmlite's
  and LLVM's versions and the host CPU name and features (as Numba keys its cache); the entry
  symbol is derived from that key, so an object always defines the symbol its key names.

A truncated, corrupt or foreign file fails its magic, length or CRC check and is ignored
(a `-d cache` line, never a crash); the payload is unmarshalled only after the CRC matched.
Writes go to a temporary file renamed over the old one, under an flock, after merging what
another run wrote meanwhile, so concurrent runs of one program never see half a file. The
directory is capped (CACHE_CAP): the least recently used files go first.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import marshal
import os
import struct
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import hqemu
from hqemu.quick import codegen
from hqemu.quick.block import QuickBlock
from hqemu.quick.codegen import bind_recipe, rebuild_block

MAGIC = b"HQEMUCC\x01"  # the file format; a different one is a foreign file
_HEADER = struct.Struct("<8sQI")  # magic, payload length, crc32 of the payload
CACHE_CAP = 512 << 20  # bytes of all cache files in the directory; oldest used evicted first
FILE_CAP = 128 << 20  # bytes of one file; entries not used by this run are dropped first
LOCK_WAIT = 2.0  # seconds to wait for another run's write before giving up ours
NO_CACHE_LOGS = ("in_asm", "op", "op_opt")  # -d items that show each translation: lookups off


@dataclass
class Window:
    """The guest code a translation saw: `length` bytes asked for from the block's pc, and the
    bytes fetch returned (fewer when a non-executable page cut them short)."""

    length: int
    data: bytes


class CachedObject(NamedTuple):
    entry: str  # the symbol it defines (CodeCache.symbol of its key)
    obj: bytes  # the ELF relocatable object


class RecordingSource:
    """A CodeSource for translate_block that remembers how far the frontend fetched."""

    __slots__ = ("mem", "pc", "end")

    def __init__(self, mem: Any, pc: int):
        self.mem, self.pc, self.end = mem, pc, pc

    def fetch(self, addr: int, n: int) -> bytes:
        if addr + n > self.end:
            self.end = addr + n
        return self.mem.fetch(addr, n)

    def window(self) -> Window:
        """What the translation saw (fetched again: the union of the frontend's fetches)."""
        n = self.end - self.pc
        return Window(n, self.mem.fetch(self.pc, n))


# --- keys ----------------------------------------------------------------------------------------
@cache
def source_hash() -> str:
    """Hash of hqemu's own Python source (hqemu/ and workers/) and the bytecode format."""
    h = hashlib.sha256(importlib.util.MAGIC_NUMBER + sys.version.encode())
    root = Path(hqemu.__file__).resolve().parent
    for pkg in (root, root.parent / "workers"):
        for p in sorted(pkg.rglob("*.py")):
            h.update(str(p.relative_to(pkg.parent)).encode() + b"\0")
            h.update(p.read_bytes() + b"\0")
    return h.hexdigest()


def config_key(env: Any) -> str:
    """Everything besides the guest bytes that decides what the quick tier emits for a pc."""
    p = env.params
    parts = (source_hash(), env.fe.isa, p.max_block_insns, codegen.loop_iters_for(env),
             codegen.PACK_MIN_RUN, codegen.INLINE_SINGLE_USE)
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def translation_mode(env: Any) -> str:
    """The translation mode of env's frontend now, part of every entry's key: a frontend that
    switches modes during a run (by replacing env.fe) names it translation_key; the frontends
    of today have one mode, so it is empty."""
    return str(getattr(env.fe, "translation_key", ""))


@cache
def _obj_config() -> str:
    import llvmlite
    import llvmlite.binding as llvm

    from workers.compile import target_key

    parts = (source_hash(), llvmlite.__version__, ".".join(map(str, llvm.llvm_version_info)), *target_key())
    return "\0".join(parts)


def cache_dir(params: Any) -> Path | None:
    """The directory of -code-cache; the default follows $XDG_CACHE_HOME like the dispatcher's."""
    where = params.code_cache
    if not where:
        return None
    if where == "~/.cache/hqemu/code" and os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "hqemu" / "code"
    return Path(where).expanduser()


def _file_hash(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# --- the file ---------------------------------------------------------------------------------
def _encode(payload: dict) -> bytes:
    body = marshal.dumps(payload)
    return _HEADER.pack(MAGIC, len(body), zlib.crc32(body)) + body


def _decode(data: bytes, key: str) -> dict:
    """The payload of a cache file, or ValueError naming why it is not ours."""
    if len(data) < _HEADER.size:
        raise ValueError("truncated header")
    magic, length, crc = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValueError("not an hqemu code cache file of this format")
    body = memoryview(data)[_HEADER.size:]
    if len(body) != length:
        raise ValueError(f"truncated: {len(body)} of {length} bytes")
    if zlib.crc32(body) != crc:
        raise ValueError("checksum mismatch")
    payload = marshal.loads(body)
    if not isinstance(payload, dict) or payload.get("key") != key \
            or not isinstance(payload.get("blocks"), dict) or not isinstance(payload.get("objs"), dict):
        raise ValueError("foreign payload")
    return payload


class CodeCache:
    """The cache file of one guest executable under one configuration, as this run sees it."""

    def __init__(self, env: Any, path: Path, key: str):
        self.env = env
        self.stats = env.stats
        self.path = path
        self.key = key
        self.blocks: dict[tuple, tuple] = {}  # (pc, mode) -> stored entry (see _entry)
        self.objs: dict[str, tuple] = {}  # object key -> (entry symbol, object bytes)
        self.used: set[tuple] = set()  # block keys hit by this run (kept first on eviction)
        self.new_blocks: list[tuple] = []  # (key, blk, code, recipe, window, sigill) to store
        self.new_objs: dict[str, tuple] = {}  # object key -> (entry, obj) to store
        self.loaded_stat: tuple[int, int] | None = None  # (mtime_ns, size) of the file loaded

    @property
    def mode(self) -> str:
        """The translation mode now: a frontend may switch it during a run (x86_64/mxcsr.py)."""
        return translation_mode(self.env)

    @classmethod
    def open(cls, env: Any) -> CodeCache | None:
        """The cache for env's program, loaded; None when off or the program file is unknown."""
        where = cache_dir(env.params)
        if where is None or not env.exe_path or any(env.log.on(i) for i in NO_CACHE_LOGS):
            return None
        t0 = time.perf_counter()
        try:
            exe = _file_hash(env.exe_path)
        except OSError:
            return None
        key = config_key(env)
        cc = cls(env, where / f"{exe[:24]}-{key[:16]}.hqc", key)
        cc._load()
        env.stats.code_cache_seconds += time.perf_counter() - t0
        return cc

    def _load(self) -> None:
        try:
            st = self.path.stat()
            data = self.path.read_bytes()
        except OSError:
            return  # no file yet: a cold run
        try:
            payload = _decode(data, self.key)
        except Exception as e:  # noqa: BLE001 - whatever is wrong with the file, it is only a miss
            self.stats.code_cache_errors += 1
            self._log(f"ignoring {self.path}: {e}")
            return
        self.blocks, self.objs = payload["blocks"], payload["objs"]
        self.loaded_stat = (st.st_mtime_ns, st.st_size) if st.st_size == len(data) else None
        self.stats.code_cache_bytes_read += len(data)
        self._log(f"loaded {self.path}: {len(self.blocks)} blocks, {len(self.objs)} objects")
        try:
            os.utime(self.path)  # recently used: evicted last
        except OSError:
            pass

    def _log(self, line: str) -> None:
        if self.env.log.on("cache"):
            self.env.log.write(f"hqemu: code cache: {line}")

    # --- quick-tier blocks ------------------------------------------------------------------
    def lookup(self, pc: int) -> tuple[QuickBlock, int] | None:
        """The block cached for pc, if the guest bytes it was made from are still there, with
        the pc of the `exit sigill` it ends in (-1: none), which the engine reports."""
        key = (pc, self.mode)
        e = self.blocks.get(key)
        if e is None:
            self.stats.code_cache_misses += 1
            return None
        try:
            live = self.env.mem.fetch(pc, e[0])
        except Exception:  # noqa: BLE001 - a GuestFault (the translation reports it), a bad entry
            live = None
        if live != e[1]:
            self.stats.code_cache_stale += 1
            return None
        try:
            _, _, code, recipe, n_insns, size, exits, line_pcs, unit_text, final, sigill = e
            blk = rebuild_block(pc, marshal.loads(code), dict(recipe), n_insns, size, tuple(exits),
                                tuple(line_pcs), unit_text.decode(), final, self.env)
        except Exception as ex:  # noqa: BLE001 - a bad entry is a miss, never a crash
            self.stats.code_cache_errors += 1
            self._log(f"bad entry for 0x{pc:x}: {type(ex).__name__}: {ex}")
            del self.blocks[key]
            return None
        self.used.add(key)
        self.stats.code_cache_hits += 1
        return blk, sigill

    def add(self, blk: QuickBlock, window: Window, sigill: int = -1) -> None:
        """Remember a block this run translated, to store at exit (if it can be recreated)."""
        recipe = bind_recipe(blk)
        if recipe is None or blk.unit_text() is None:  # (the text now: exit stays quick)
            self.stats.code_cache_uncacheable += 1
            return
        self.new_blocks.append(((blk.pc, self.mode), blk, blk.fn.__code__, recipe, window, sigill))

    @staticmethod
    def _entry(blk: QuickBlock, code: Any, recipe: dict, window: Window, sigill: int) -> tuple:
        return (window.length, window.data, marshal.dumps(code), tuple(recipe.items()), blk.n_insns,
                blk.size, tuple(blk.exits), tuple(blk.line_pcs), blk.unit_text().encode(), blk.final, sigill)

    # --- LLVM objects ---------------------------------------------------------------------------
    def obj_key(self, ir_text: str, opt: str, kind: str) -> str:
        """The key of the object compiled from hqemu IR text at opt; kind names the symbol
        scheme ("trace", "block"): see symbol()."""
        parts = (_obj_config(), kind, opt, ir_text)
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]

    @staticmethod
    def symbol(prefix: str, pc: int, key: str) -> str:
        """The entry symbol of an object with this key: the same code always has the same name,
        so a cached object defines what its key says."""
        return f"{prefix}_{pc:x}_h{key[:16]}"

    def get_obj(self, key: str) -> CachedObject | None:
        got = self.objs.get(key) or self.new_objs.get(key)
        if got is None:
            self.stats.obj_cache_misses += 1
            return None
        self.stats.obj_cache_hits += 1
        return CachedObject(got[0], got[1])

    def put_obj(self, key: str, entry: str, obj: bytes) -> None:
        if key not in self.objs:
            self.new_objs[key] = (entry, bytes(obj))

    # --- writing -------------------------------------------------------------------------------
    def save(self) -> None:
        """Merge this run's new entries into the file (atomically); a no-op when nothing is new.
        Never raises: a cache that cannot be written only costs the next run its hits."""
        st = self.stats
        self._log(f"this run: blocks {st.code_cache_hits} hits, {st.code_cache_misses} misses, "
                  f"{st.code_cache_stale} stale; objects {st.obj_cache_hits} hits, "
                  f"{st.obj_cache_misses} misses")
        if not self.new_blocks and not self.new_objs:
            return
        t0 = time.perf_counter()
        try:
            self._save()
        except Exception as e:  # noqa: BLE001 - the guest's exit must not fail on the cache
            self.stats.code_cache_errors += 1
            self._log(f"not written: {type(e).__name__}: {e}")
        self.stats.code_cache_seconds += time.perf_counter() - t0

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a+b") as lock:
            deadline = time.monotonic() + LOCK_WAIT
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        self._log("another run holds the lock: not written")
                        return
                    time.sleep(0.01)
            blocks, objs = self._on_disk()
            new_keys = set()
            for key, blk, code, recipe, window, sigill in self.new_blocks:
                if not blk.size:
                    continue
                entry = self._entry(blk, code, recipe, window, sigill)
                try:
                    marshal.dumps(entry)  # one odd constant must not cost the whole file
                except ValueError:
                    self.stats.code_cache_uncacheable += 1
                    continue
                blocks[key] = entry
                new_keys.add(key)
            objs.update(self.new_objs)
            blocks, objs = self._cap(blocks, objs, self.used | new_keys, set(self.new_objs))
            data = _encode({"key": self.key, "blocks": blocks, "objs": objs})
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".hqc-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, self.path)
            except BaseException:
                os.unlink(tmp)
                raise
        self.stats.code_cache_bytes_written += len(data)
        self._log(f"wrote {self.path}: {len(blocks)} blocks, {len(objs)} objects, {len(data)} bytes")
        self.new_blocks, self.new_objs = [], {}
        _evict(self.path.parent, CACHE_CAP, keep=self.path)

    def _on_disk(self) -> tuple[dict, dict]:
        """The file's entries now (another run may have added some since we loaded it)."""
        try:
            st = self.path.stat()
            if (st.st_mtime_ns, st.st_size) == self.loaded_stat:  # unchanged: no need to decode it again
                return dict(self.blocks), dict(self.objs)
            payload = _decode(self.path.read_bytes(), self.key)
            return payload["blocks"], payload["objs"]
        except OSError:
            return {}, {}
        except Exception:  # noqa: BLE001 - a bad file is replaced
            return {}, {}

    @staticmethod
    def _cap(blocks: dict, objs: dict, keep_blocks: set, keep_objs: set) -> tuple[dict, dict]:
        """Entries within FILE_CAP: this run's first (used or new), then the others."""
        def size(e: tuple) -> int:
            return sum(len(x) for x in e if isinstance(x, (bytes, str)))

        total = sum(size(e) for e in blocks.values()) + sum(size(e) for e in objs.values())
        if total <= FILE_CAP:
            return blocks, objs
        out_b, out_o, used = {}, {}, 0
        order = [(k in keep_blocks, True, k) for k in blocks] + [(k in keep_objs, False, k) for k in objs]
        order.sort(key=lambda t: not t[0])  # kept first; stable otherwise
        for _, is_block, k in order:
            e = blocks[k] if is_block else objs[k]
            if used + size(e) > FILE_CAP:
                continue
            used += size(e)
            (out_b if is_block else out_o)[k] = e
        return out_b, out_o


def _evict(where: Path, cap: int, keep: Path) -> None:
    """Delete the least recently used cache files until the directory is within cap bytes."""
    try:
        files = [(p.stat().st_mtime, p.stat().st_size, p) for p in where.glob("*.hqc")]
    except OSError:
        return
    total = sum(s for _, s, _ in files)
    for _, s, p in sorted(files, key=lambda t: t[0]):
        if total <= cap:
            break
        if p == keep:
            continue
        try:
            p.unlink()
            p.with_suffix(".lock").unlink(missing_ok=True)
            total -= s
        except OSError:
            pass
