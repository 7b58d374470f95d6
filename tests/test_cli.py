"""The command line end to end: what the guest receives, the options, their HQEMU_* twins,
and the errors. The oracle is the native run of the same guest binary wherever one exists.

Guests: args (prints argv and chosen variables, exits with a given status), entropy (AT_RANDOM
and getrandom bytes with "show"), hello, cat (for -L) from tests/guest.
"""

from __future__ import annotations

import re

import guestrun
import pytest

from hqemu.params import PARAMS_FIELDS

VARIANT = "x86_64-glibc"  # the CLI does not depend on the libc; one variant is enough


def env_twin(field: str) -> str:
    """The HQEMU_* variable of a Params field (the rule of hqemu.cli)."""
    f = PARAMS_FIELDS[field]
    return f.metadata.get("env") or "HQEMU_" + field.upper()


def both(guest, tmp_path, name, args=(), *, opts=(), native_env=None, hqemu_env=None, argv0=None):
    """Run a guest natively and under hqemu with opts; the two Runs."""
    path = guest(VARIANT, name)
    nd, hd = guestrun.fresh_dirs(tmp_path)
    native = guestrun.run_native(path, args, native_env or guestrun.clean_env(), nd, argv0=argv0)
    emu = guestrun.run_hqemu(path, args, hqemu_env or native_env or guestrun.clean_env(), hd, opts)
    return native, emu


@pytest.mark.parametrize("args", [
    ("plain", "with space", "", "  lead and trail  ", "tab\there", "quote'\"", "ünïcödé"),
    ("-d", "foo", "-strace", "-E", "X=1", "--", "--help"),  # options after the program are the guest's
    ("exit:0",), ("exit:255",), ("exit:256",), ("exit:42", "x"),
], ids=["strings", "options-after-program", "exit0", "exit255", "exit256", "exit42"])
def test_arguments_reach_the_guest(guest, tmp_path, args):
    native, emu = both(guest, tmp_path, "args", args)
    guestrun.assert_same_run(native, emu, what=f"args {args!r}")


def test_double_dash_ends_hqemu_options(guest, tmp_path):
    native, emu = both(guest, tmp_path, "args", ["-strace", "x"], opts=["--"])
    guestrun.assert_same_run(native, emu, what="hqemu -- prog -strace x")


def test_E_sets_and_U_unsets_guest_variables(guest, tmp_path):
    base = guestrun.clean_env({"HQEMU_T_KEEP": "kept", "HQEMU_T_GONE": "present", "HQEMU_T_OVER": "old"})
    expected = {k: v for k, v in base.items() if k != "HQEMU_T_GONE"}
    expected.update({"HQEMU_T_NEW": "a=b c", "HQEMU_T_OVER": "new", "HQEMU_T_EMPTY": ""})
    args = [f"env:HQEMU_T_{n}" for n in ("KEEP", "GONE", "OVER", "NEW", "EMPTY")]
    opts = ["-E", "HQEMU_T_NEW=a=b c", "-E", "HQEMU_T_OVER=new", "-E", "HQEMU_T_EMPTY=", "-U", "HQEMU_T_GONE"]
    native, emu = both(guest, tmp_path, "args", args, opts=opts, native_env=expected, hqemu_env=base)
    guestrun.assert_same_run(native, emu, what="-E/-U")


def test_argv0(guest, tmp_path):
    native, emu = both(guest, tmp_path, "args", ["x"], opts=["-0", "renamed prog"], argv0="renamed prog")
    guestrun.assert_same_run(native, emu, what="-0 ARGV0")


STRACE_WRITE = re.compile(rb"\bwritev?\(1,")
STRACE_EXIT = re.compile(rb"\bexit_group\(0\)")


def test_strace_logs_write_and_exit_group(guest, tmp_path):
    native, emu = both(guest, tmp_path, "hello", opts=["-strace"])
    guestrun.assert_same_run(native, emu, what="-strace", compare_stderr=False)
    assert STRACE_WRITE.search(emu.stderr) and STRACE_EXIT.search(emu.stderr), \
        f"-strace: no write/exit_group lines on stderr:\n{emu.stderr.decode(errors='replace')[-2000:]}"


def test_strace_environment_twin(guest, tmp_path):
    env = guestrun.clean_env()
    native, emu = both(guest, tmp_path, "hello", native_env=env, hqemu_env={**env, env_twin("strace"): "1"})
    guestrun.assert_same_run(native, emu, what=f"{env_twin('strace')}=1", compare_stderr=False)
    assert STRACE_WRITE.search(emu.stderr) and STRACE_EXIT.search(emu.stderr), \
        f"{env_twin('strace')}=1: no strace lines:\n{emu.stderr.decode(errors='replace')[-2000:]}"


def test_log_file_takes_the_log(guest, tmp_path):
    log = tmp_path / "hqemu.log"
    native, emu = both(guest, tmp_path, "hello", opts=["-D", str(log), "-strace"])
    guestrun.assert_same_run(native, emu, what="-D FILE -strace")  # stderr stays as empty as native's
    text = log.read_bytes() if log.exists() else b""
    assert STRACE_WRITE.search(text) and STRACE_EXIT.search(text), f"-D: no strace lines in it:\n{text!r}"


def test_log_items_go_to_the_log_file(guest, tmp_path):
    log = tmp_path / "in_asm.log"
    native, emu = both(guest, tmp_path, "hello", opts=["-d", "in_asm", "-D", str(log)])
    guestrun.assert_same_run(native, emu, what="-d in_asm -D FILE")
    assert log.exists() and log.stat().st_size > 0, "-d in_asm -D FILE: nothing logged"


def _entropy(guest, tmp_path, tag, opts=(), extra_env=None):
    path = guest(VARIANT, "entropy")
    d = tmp_path / tag
    d.mkdir()
    r = guestrun.run_hqemu(path, ["show"], guestrun.clean_env(extra_env), d, opts)
    assert r.returncode == 0 and r.stderr == b"", f"entropy {opts}: {r}"
    return r.stdout


def _random_lines(out: bytes) -> list[bytes]:
    return [line for line in out.splitlines() if line.startswith((b"AT_RANDOM:", b"getrandom:"))]


def test_seed_makes_random_bytes_reproducible(guest, tmp_path):
    native = guestrun.run_native(guest(VARIANT, "entropy"), ["show"], guestrun.clean_env(), tmp_path)
    a = _entropy(guest, tmp_path, "a", ["-seed", "5"])
    b = _entropy(guest, tmp_path, "b", ["-seed", "5"])
    c = _entropy(guest, tmp_path, "c", ["-seed", "6"])
    d = _entropy(guest, tmp_path, "d")
    e = _entropy(guest, tmp_path, "e")
    # the same lines as natively, apart from the random bytes themselves
    shape = [re.sub(rb"( [0-9a-f]{2}){16}", b" XX", line) for line in native.stdout.splitlines()]
    assert [re.sub(rb"( [0-9a-f]{2}){16}", b" XX", line) for line in a.splitlines()] == shape
    assert a == b, "-seed 5 twice gave different bytes"
    for x, y in zip(_random_lines(a), _random_lines(c)):
        assert x != y, "-seed 5 and -seed 6 gave the same bytes"
    for x, y in zip(_random_lines(d), _random_lines(e)):
        assert x != y, "two unseeded runs gave the same random bytes"
    assert len(_random_lines(a)) == 2


def test_argv_wins_over_environment(guest, tmp_path):
    want = _entropy(guest, tmp_path, "want", ["-seed", "5"])
    got = _entropy(guest, tmp_path, "got", ["-seed", "5"], {env_twin("seed"): "6"})
    env_only = _entropy(guest, tmp_path, "env", (), {env_twin("seed"): "6"})
    other = _entropy(guest, tmp_path, "other", ["-seed", "6"])
    assert got == want, f"-seed 5 with {env_twin('seed')}=6 did not follow the command line"
    assert env_only == other, f"{env_twin('seed')}=6 alone is not the same as -seed 6"


def test_sysroot_prefix(guest, tmp_path):
    root = tmp_path / "sysroot"
    (root / "hqemu-test-etc").mkdir(parents=True)
    inside = root / "hqemu-test-etc" / "data.txt"
    inside.write_bytes(b"from the sysroot\n")
    outside = tmp_path / "outside.txt"  # absolute, not under the prefix: the host path is used
    outside.write_bytes(b"from the host\n")
    path = guest(VARIANT, "cat")
    nd, hd = guestrun.fresh_dirs(tmp_path)
    env = guestrun.clean_env()
    native = guestrun.run_native(path, [str(inside), str(outside)], env, nd)
    emu = guestrun.run_hqemu(path, ["/hqemu-test-etc/data.txt", str(outside)], env, hd, ["-L", str(root)])
    guestrun.assert_same_run(native, emu, what="-L PREFIX")


def _hqemu(args, **kw):
    cmd, add = guestrun.hqemu_command()
    return guestrun.run_command([*cmd, *args], {**guestrun.clean_env(), **add}, kw.get("cwd"), None, 60)


@pytest.mark.parametrize("flag", ["--version", "-version"])
def test_version(flag):
    r = _hqemu([flag])
    assert r.returncode == 0 and b"hqemu" in r.stdout.lower() and r.stderr == b"", r


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(flag):
    r = _hqemu([flag])
    text = r.stdout.decode()
    assert r.returncode == 0 and r.stderr == b"", r
    for needle in ("usage", "-strace", "-seed", "-E", "-U", "-L", "-0", "-D", "-d"):
        assert needle in text, f"--help does not mention {needle}"


@pytest.mark.parametrize("args", [
    ["-no-such-option", "prog"],
    ["--no-such-option"],
    [],
    ["-seed"],
    ["-seed", "banana", "prog"],
    ["/nonexistent/hqemu-test-program"],
], ids=["unknown", "unknown-double-dash", "no-program", "missing-value", "bad-number", "missing-program"])
def test_usage_errors_are_one_line(args):
    r = _hqemu(args)
    assert r.returncode == 1, f"hqemu {args}: exit status {r.returncode}, expected 1"
    assert r.stdout == b"", f"hqemu {args}: stdout {r.stdout!r}"
    problem = guestrun.one_error_line(r.stderr)
    assert problem is None, f"hqemu {args}: {problem}"


def test_not_an_elf_is_one_line(tmp_path):
    text = tmp_path / "script.sh"
    text.write_text("#!/bin/sh\necho hi\n")
    text.chmod(0o755)
    r = _hqemu([str(text)])
    assert r.returncode == 1 and guestrun.one_error_line(r.stderr) is None, r
