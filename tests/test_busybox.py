"""Debian's busybox-static, a large real-world static guest: each applet under hqemu against
the native run of the same busybox on the same generated input.

Both runs start in fresh directories holding identical inputs (text, archives compressed
by Python's own gzip/bz2/lzma, a tree with fixed times for tar); stdout, stderr, the exit
status and every file written must be byte-identical. hqemu cannot fork (clone returns
-ENOSYS), so applets read and write files, never pipes between processes.

By default every applet runs once in the default mode (hybridm); `make test-slow` adds the
quick tier alone and traces from the first arrival (hybrids, hot threshold 1), and the
option variants below marked slow.

    .venv/bin/pytest tests/test_busybox.py -k gzip          # one applet, default mode
    .venv/bin/pytest tests/test_busybox.py -m slow -k none  # every case, quick tier only
"""

from __future__ import annotations

import bz2
import functools
import gzip
import lzma
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import guestrun
import pytest
from elftools.elf.elffile import ELFFile

# a fixed time for every input file: gzip and tar record mtimes in what they write
FIXED_TIME = 1_000_000_000
WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa")


def _numbers(n: int, seed: int) -> list[int]:
    """A deterministic pseudo-random sequence (an LCG's high bits: its low bits cycle fast)."""
    out, x = [], seed
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out.append(x >> 33)
    return out


def _text(lines: int) -> str:
    """About 27 bytes a line of numbers, words, repeated syllables: sort keys, regex and awk fields."""
    rows = []
    for i, y in enumerate(_numbers(lines, 12345)):
        rows.append(f"{y % 1000} {WORDS[y % 10]} line{i} {WORDS[(y >> 4) % 10]}{'xyz' * ((y >> 8) % 3)} "
                    f"{y % 97}\n")
    return "".join(rows)


TEXT = _text(1200)  # about 33 KB
# factor's stdin: products of two primes-or-not below 2**20 and plain 40-bit values, so trial
# division runs a while but nothing like a 64-bit prime (seconds even natively)
FACTOR_INPUT = "".join(f"{(a >> 11) * (b >> 11) + 1} {c >> 1}\n"
                       for a, b, c in zip(_numbers(60, 1), _numbers(60, 2), _numbers(60, 3)))


def _setup(d: Path) -> None:
    """The inputs every case finds in its working directory."""
    data = TEXT.encode()
    (d / "in.txt").write_bytes(data)
    (d / "words.txt").write_text("".join(sorted(line.split()[1] + "\n" for line in TEXT.splitlines())))
    (d / "in.gz").write_bytes(gzip.compress(data, mtime=0))
    (d / "in.bz2").write_bytes(bz2.compress(data))
    (d / "in.xz").write_bytes(lzma.compress(data))
    tree = d / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_bytes(data[:6000])
    (tree / "sub" / "b.bin").write_bytes(bytes(range(256)) * 24)
    os.symlink("a.txt", tree / "link")
    with tarfile.open(d / "ref.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
        for name in ("tree", "tree/a.txt", "tree/link", "tree/sub", "tree/sub/b.bin"):
            info = tar.gettarinfo(str(d / name), arcname=name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = FIXED_TIME, 1000, 100, "user", "users"
            if info.isreg():
                with open(d / name, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    for p in [d, *d.rglob("*")]:
        os.utime(p, (FIXED_TIME, FIXED_TIME), follow_symlinks=False)


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]  # after "busybox"
    stdin: bytes | None = None
    slow: bool = False  # an option variant: only under `make test-slow`
    gap: str = ""  # a known gap of hqemu's: must fail (strict xfail) until it is closed


AWK_NUMERIC = ("BEGIN { s = 0; f = 0; for (i = 1; i <= 20000; i++) { s += i * i % 7; f += 1.5 / i } "
               "printf \"%d %.9f %e %g\\n\", s, f, f * 1e12, s / 3 }")
AWK_STRINGS = ("{ n[$2]++; t = t length($3); u = u toupper(substr($4, 2, 3)); if (index($4, \"xyz\")) c++ } "
               "END { for (k in n) print k, n[k]; print length(t), length(u), substr(u, 100, 20), c; "
               "print sprintf(\"%-8s|%5.2f|%c\", \"x\", 3.14159, 65) }")
# busybox's awk has no math library here ("Math support is not compiled in")
AWK_FLOATS = ("BEGIN { for (i = 1; i <= 400; i++) { x = i / 7.3; printf \"%g %e %.10f %d %s %o %x %c\\n\", "
              "x * x / 3, -x * 1e10, x - int(x), int(x * 1000), x * x * x, i * 13, i * 977, 64 + i % 60 } }")
AWK_GSUB = ("{ g = $0; n = gsub(/[aeiou]+/, \"<&>\", g); split($4, parts, \"x\"); "
            "if (match($3, /[0-9]+/)) m += substr($3, RSTART, RLENGTH); s = s n parts[1] } "
            "END { print m, length(s), s ~ /^[0-9a-z]*$/, tolower(\"ABC\") }")

CASES: dict[str, Case] = {
    "echo": Case(("echo", "hello", "  spaced  ", "")),
    "sh-arith": Case(("sh", "-c", "i=0 x=0; while [ $i -lt 12 ]; do i=$((i + 1)); x=$((x + i * i)); done; "
                      "echo $x")),
    "sha256sum": Case(("sha256sum", "in.txt", "in.gz")),
    "md5sum": Case(("md5sum", "in.txt", "in.bz2")),
    "sort": Case(("sort", "-k2,2", "-k1n", "in.txt")),
    "uniq-c": Case(("uniq", "-c", "words.txt")),
    "wc": Case(("wc", "in.txt", "words.txt", "in.xz")),
    "grep-E": Case(("grep", "-E", "-n", "(alpha|gamma)[a-z]* line[0-9]*7 ", "in.txt")),
    "sed": Case(("sed", "-e", r"s/\(line\)\([0-9]*\)/\2-\1/g", "-e", "/zeta/d", "-e", "y/abc/ABC/",
                 "in.txt")),
    "awk-numeric": Case(("awk", AWK_NUMERIC)),
    "awk-strings": Case(("awk", AWK_STRINGS, "in.txt")),
    "gzip": Case(("gzip", "-k", "in.txt")),
    "gunzip": Case(("gunzip", "-c", "in.gz")),
    "bzip2": Case(("bzip2", "-k", "in.txt")),
    "bunzip2": Case(("bunzip2", "-c", "in.bz2")),
    "xz-d": Case(("xz", "-d", "-k", "in.xz")),
    "tar-create": Case(("tar", "-cf", "out.tar", "tree")),
    "tar-list": Case(("tar", "-tvf", "ref.tar")),
    "expr": Case(("expr", "123456789", "*", "987", "+", "(", "-55", "%", "7", ")", "/", "2")),
    "printf": Case(("printf", r"%05d|%x|%-6s|%.3f|%e|%g|%c|%o\n", "42", "255", "str", "3.14159", "12345.678",
                    "0.0001234", "z", "64", "7", "1e20", "abcdefgh", "-2.5", "1e300", "0.1", "q", "8")),
    "seq": Case(("seq", "-s", ",", "1", "7", "20000")),
    "factor": Case(("factor",), stdin=FACTOR_INPUT.encode()),
    "cat": Case(("cat", "in.txt", "in.gz", "in.txt")),  # sendfile to stdout
    # option variants, heavier inputs
    "seq-float": Case(("seq", "-w", "0", "0.37", "500"), slow=True),
    "seq-down": Case(("seq", "1000", "-3", "-2000"), slow=True),
    "factor-args": Case(("factor", "18446744073709551615", "9999999967", "600851475143", "4294967297",
                         "1234567890123456789"), slow=True),
    "expr-match": Case(("expr", "abc123def456", ":", r"[a-z]*\([0-9]*\)"), slow=True),
    "expr-limits": Case(("expr", "9223372036854775807", "/", "-3", "+", "100", "-", "-17", "%", "5"),
                        slow=True),
    "awk-floats": Case(("awk", AWK_FLOATS), slow=True),
    "awk-gsub": Case(("awk", "-F", " ", AWK_GSUB, "in.txt"), slow=True),
    "sort-r-u": Case(("sort", "-t", " ", "-k3", "-r", "-u", "in.txt"), slow=True),
    "sort-g": Case(("sort", "-g", "-s", "-k5,5", "in.txt"), slow=True),
    "uniq-d": Case(("uniq", "-c", "-d", "words.txt"), slow=True),
    "grep-o-i": Case(("grep", "-o", "-n", "-i", "-E", "(ALPHA|ka+ppa)[xyz]{2,}", "in.txt"), slow=True),
    "grep-v-w-F": Case(("grep", "-v", "-w", "-F", "-e", "beta", "-e", "zeta", "in.txt"), slow=True),
    "sed-range": Case(("sed", "-n", "-e", "y/abcdefghij/ABCDEFGHIJ/",
                       "-e", r"/ALPHA/,/KAPPA/{s/[0-9]\+/<&>/2;p}", "-e", "$=", "in.txt"), slow=True),
    "gzip-9-c": Case(("gzip", "-9", "-c", "in.txt"), slow=True),
    "gzip-d": Case(("gzip", "-d", "in.gz"), slow=True),
    "bzip2-1-c": Case(("bzip2", "-1", "-c", "in.txt"), slow=True),
    "bzip2-d": Case(("bzip2", "-d", "in.bz2"), slow=True),
    "tar-extract": Case(("tar", "-xvf", "ref.tar", "-C", "tree/sub"), slow=True),
    "sha512sum": Case(("sha512sum", "in.txt", "in.gz"), slow=True),
    "sha1sum": Case(("sha1sum", "in.txt", "in.xz"), slow=True),
    "sha3sum": Case(("sha3sum", "in.txt"), slow=True),
    "od": Case(("od", "-A", "d", "-t", "x2", "-t", "f8", "-N", "512", "in.xz"), slow=True),
    "cut": Case(("cut", "-d", " ", "-f", "2,4", "in.txt"), slow=True),
    "tr-stdin": Case(("tr", "a-z", "A-Z"), stdin=TEXT.encode(), slow=True),
    "cp": Case(("cp", "in.txt", "copy.txt"), slow=True),
    "cp-a": Case(("cp", "-a", "tree", "tree2"), slow=True),
    "fallocate": Case(("fallocate", "-l", "100000", "big"), slow=True),
    "find": Case(("find", ".", "-name", "*.txt", "-o", "-type", "d", "-print"), slow=True),
    "ls-l": Case(("ls", "-lan", "--full-time", "tree", "tree/sub"), slow=True),
    "touch-d": Case(("touch", "-d", "2001-02-03 04:05:06", "new", "in.txt"), slow=True),
    "bc": Case(("bc", "-l"), slow=True,
               stdin=b"scale=40\n4*a(1)\nsqrt(2)\ne(1)\nl(10)\ns(1)+c(1)\n2^100/3\n"
                     b"define f(n) { if (n < 2) return 1; return n * f(n - 1) }\nf(40)\n"),
    "dc": Case(("dc", "-e", "2 200 ^ p 3 7 / p 12345678987654321 3 % p 2 v p"), slow=True),
    "diff": Case(("diff", "-u", "in.txt", "tree/a.txt"), slow=True),
    "sh-read": Case(("sh", "-c", "n=0; t=0; while read a b c d e; do n=$((n+1)); t=$((t+a*e)); "
                     "done < in.txt; echo $n $t"), slow=True),
    "ls": Case(("ls", "-1a", "/"), slow=True),
    # known gaps: both need a second process
    "sh-fork": Case(("sh", "-c", "echo $(echo sub shell) | tr a-z A-Z; ls -1 . | wc -l"), slow=True,
                    gap="fork, wait4 and execve are not emulated (clone returns -ENOSYS)"),
    "tar-z": Case(("tar", "-czf", "out.tgz", "tree"), slow=True,
                  gap="tar -z runs gzip in a vfork child; clone/vfork return -ENOSYS"),
}

MODES = {
    "hybridm": (),
    "none": ("-llvm-mode", "none"),
    "hybrids-hot1": ("-llvm-mode", "hybrids", "-hot-threshold", "1"),
}


@functools.cache
def _static_busybox() -> Path | None:
    path = shutil.which("busybox")
    if path is None:
        return None
    with open(path, "rb") as f:
        if any(seg["p_type"] == "PT_INTERP" for seg in ELFFile(f).iter_segments()):
            return None  # a dynamically linked busybox: hqemu runs static programs only
    return Path(path)


@functools.cache
def _applets(busybox: Path) -> frozenset[str]:
    r = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, timeout=30)
    return frozenset(r.stdout.split())


def _params():
    for case, spec in CASES.items():
        for mode in MODES:
            marks = [pytest.mark.slow] if spec.slow or mode != "hybridm" else []
            if spec.gap:
                marks.append(pytest.mark.xfail(strict=True, reason=spec.gap))
            yield pytest.param(case, mode, id=f"{case}-{mode}", marks=marks)


@pytest.mark.parametrize("case,mode", list(_params()))
def test_busybox(case, mode, tmp_path):
    busybox = _static_busybox()
    if busybox is None:
        pytest.skip("no static busybox (apt-get install busybox-static)")
    spec = CASES[case]
    if spec.args[0] not in _applets(busybox):
        pytest.skip(f"this busybox has no {spec.args[0]} applet")
    dirs = guestrun.fresh_dirs(tmp_path)
    for d in dirs:
        _setup(d)
    env = guestrun.clean_env()
    native = guestrun.run_native(busybox, spec.args, env, dirs[0], stdin=spec.stdin)
    if not spec.gap:
        assert native.returncode in (0, 1), f"the native run itself failed: {native}"
    emu = guestrun.run_hqemu(busybox, spec.args, env, dirs[1], MODES[mode], stdin=spec.stdin)
    guestrun.assert_same_run(native, emu, what=f"busybox {case} ({mode})", files=(dirs[0], dirs[1]))


def test_inputs_are_deterministic_and_big_enough(tmp_path):
    """The two runs must see the same bytes, and enough of them to leave the start-up code."""
    a, b = guestrun.fresh_dirs(tmp_path)
    _setup(a)
    _setup(b)
    assert guestrun.compare_dirs(a, b) == []
    assert len(TEXT) > 20_000 and len(set(TEXT.split())) > 1000
    assert gzip.decompress((a / "in.gz").read_bytes()) == TEXT.encode()
    assert lzma.decompress((a / "in.xz").read_bytes()) == TEXT.encode()
