"""The status endpoint (issue 5) against a live guest: real HTTP clients poll it while it runs.

The guest (built here with gcc -static) prints a checksum of a fixed amount of work, then
keeps computing until a stop file appears, so it is busy for as long as the test probes it;
its output must equal the native run's and a run without the endpoint. The JSON is checked
against a schema (jsonschema), /metrics with prometheus_client's parser (the two are test
dependencies, not hqemu's), the abuse cases with raw sockets.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import guestrun
import psutil
import pytest

if str(guestrun.ROOT) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(guestrun.ROOT))
from bench import status_latency  # noqa: E402

jsonschema = pytest.importorskip("jsonschema")
prom_parser = pytest.importorskip("prometheus_client.parser")

PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static unsigned long table[256];

__attribute__((noinline)) unsigned long mix(unsigned long x, long i) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    if (x & 0x10) table[x & 255] += (unsigned long)i; else table[(x >> 8) & 255] ^= x;
    return x;
}

__attribute__((noinline)) unsigned long work(unsigned long x, long n) {
    for (long i = 0; i < n; i++)
        x = mix(x, i);
    return x;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000;
    unsigned long x = work(0x9E3779B97F4A7C15UL, n), acc = 0;
    for (int i = 0; i < 256; i++) acc = acc * 31 + table[i];
    printf("checksum %lu %lu\n", x, acc);
    fflush(stdout);
    /* busy until the test says stop: this part prints nothing, so the output is deterministic */
    while (argc > 2 && access(argv[2], F_OK) != 0)
        x = work(x, 2000);
    puts("done");
    return 0;
}
"""
WORK = "20000"  # iterations before the checksum: well under a second in every tier
SECTIONS = ("hqemu", "guest", "tiers", "quick", "native", "traces", "queue", "samples")
CLIENT = (sys.executable, "-m", "hqemu", "status")
CLIENT_ENV = {**guestrun.clean_env(), "PYTHONPATH": str(guestrun.ROOT)}


def _hqemu(*opts: str) -> tuple[list[str], dict[str, str]]:
    cmd, add = guestrun.hqemu_command(opts)
    return cmd, {**guestrun.clean_env(), **add}


# --- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc not found")
    d = tmp_path_factory.mktemp("status_guest")
    (d / "busy.c").write_text(PROGRAM)
    subprocess.run(["gcc", "-static", "-O1", "-o", str(d / "busy"), str(d / "busy.c")], check=True)
    return d / "busy"


class Live:
    """An hqemu run with --status-port 0 (unless env or opts say otherwise): the busy program
    runs until stop(); another program (args given) until kill()."""

    def __init__(self, program: Path, tmp: Path, *opts: str, args: tuple[str, ...] | None = None,
                 env: dict[str, str] | None = None, port_opt: bool = True):
        self.stopfile = tmp / "stop"
        cmd, hq_env = _hqemu(*opts, *(("-status-port", "0") if port_opt else ()))
        args = (WORK, str(self.stopfile)) if args is None else args
        self.proc = subprocess.Popen([*cmd, str(program), *args], cwd=tmp, env={**hq_env, **(env or {})},
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        first = _readline(self.proc.stderr, 60.0)
        m = re.fullmatch(rb"hqemu: status endpoint at (http://(127\.0\.0\.1|\[::1\]):(\d+)/)\n", first)
        assert m, f"no endpoint line on stderr: {first!r}"
        self.base, self.port = m.group(1).decode(), int(m.group(3))
        self.host = m.group(2).decode().strip("[]")
        self.result: tuple[int, bytes, bytes] | None = None

    def get(self, path: str, **kw) -> tuple[int, dict, bytes]:
        return _get(self.base + path.lstrip("/"), **kw)

    def json(self, path: str) -> dict:
        code, _, body = self.get(path)
        assert code == 200, body
        return json.loads(body)

    def stop(self) -> tuple[int, bytes, bytes]:
        if self.result is None:
            self.stopfile.touch()
            try:
                out, err = self.proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                out, err = self.proc.communicate()
            self.result = (self.proc.returncode, out, err)
        return self.result

    def kill(self) -> None:
        """End the run (SIGKILL to its process group) unless stop() or kill() already did."""
        if self.result is None:
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
            out, err = self.proc.communicate()
            self.result = (self.proc.returncode, out, err)

    def listening(self) -> set[tuple[str, int]]:
        """(address, port) of hqemu's listening TCP sockets, as the kernel has them (psutil)."""
        return {(c.laddr.ip, c.laddr.port) for c in psutil.Process(self.proc.pid).net_connections("tcp")
                if c.status == psutil.CONN_LISTEN}


def _nm(program: Path) -> dict[str, tuple[int, int]]:
    """Function name -> (address, size), from binutils' nm: the oracle of the symbol names."""
    out = subprocess.run(["nm", "-S", "--defined-only", str(program)], capture_output=True, text=True,
                         check=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "TtWi":
            syms[parts[3]] = (int(parts[0], 16), int(parts[1], 16))
    return syms


def _readline(pipe, timeout: float) -> bytes:
    ready, _, _ = select.select([pipe], [], [], timeout)
    assert ready, "hqemu printed nothing on stderr"
    return pipe.readline()


def _get(url: str, method: str = "GET", timeout: float = 10.0) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _wait_for_hot_traces(run: Live, program: Path) -> None:
    """Until the workers compiled traces and one of the hot functions runs natively."""
    hot = [(a, a + size) for name, (a, size) in _nm(program).items() if name in ("mix", "work")]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        s = run.json("status")
        if s["workers"] and s["queue"]["compiled"] >= 2 and any(
                r["state"] == "installed" and any(a <= r["head_pc_int"] < b for a, b in hot)
                for r in run.json("traces")["traces"]):
            return
        time.sleep(0.1)


# no persistent code cache: the traces go through the workers, whose figures are checked
LIVE_OPTS = ("-llvm-mode", "hybridm", "-hot-threshold", "5", "-code-cache=")


@pytest.fixture(scope="module")
def live(program, tmp_path_factory):
    run = Live(program, tmp_path_factory.mktemp("live"), *LIVE_OPTS)
    _wait_for_hot_traces(run, program)
    yield run
    run.stop()


# --- /status ----------------------------------------------------------------------------------
NUM = {"type": "number", "minimum": 0}
INT = {"type": "integer", "minimum": 0}
COUNTS = {"type": "object", "additionalProperties": INT}


def _obj(props: dict, extra: bool = True) -> dict:
    return {"type": "object", "required": list(props), "properties": props, "additionalProperties": extra}


DIST = _obj({k: NUM for k in ("count", "total", "max", "p50", "p90", "p99")})
SCHEMA = _obj({
    "hqemu": _obj({"version": {"type": "string"}}),
    "generated_at": NUM,
    "params": _obj({"llvm_mode": {"enum": ["hybridm", "hybrids", "block", "none"]}, "status_port": INT,
                    "status_bind": {"type": "string"}, "hot_threshold": INT}),
    "guest": _obj({"program": {"type": "string"}, "argv": {"type": "array", "items": {"type": "string"}},
                   "isa": {"type": "string"}, "pid": INT, "uptime_seconds": NUM, "started_at": NUM}),
    "tiers": _obj({"quick_insns": INT, "native_insns": INT, "native_share": {"type": "number", "minimum": 0,
                                                                             "maximum": 1},
                   "quick_share": {"type": "number", "minimum": 0, "maximum": 1}}),
    "quick": _obj({"block_cache": INT, "blocks_translated": INT, "guest_insns_translated": INT,
                   "translate_seconds": NUM, "code_invalidations": INT}),
    "native": _obj({"units_entered": INT, "blocks_compiled": INT, "returns_to_python": COUNTS}),
    "syscalls": COUNTS, "unknown_syscalls": COUNTS, "unsupported_instructions": COUNTS,
    "traces": _obj({"formed": INT, "queued": INT, "compiling": INT, "installed": INT, "failed": INT,
                    "aborted": INT, "aborted_by": COUNTS, "ended_by": COUNTS, "merged": INT,
                    "versions": COUNTS,
                    "candidate_heads": INT, "blacklisted_heads": INT, "compile_failed": COUNTS,
                    "compile_seconds": {"type": "object", "additionalProperties": DIST},
                    "guest_code_bytes": INT, "host_code_bytes": INT}),
    "queue": _obj({"depth": INT, "high_water": INT, "in_flight": INT, "capacity": INT, "submitted": INT,
                   "refused_full": INT, "worker_crashes": INT}),
    "workers": {"type": "array", "items": _obj({"slot": {"type": "integer"}, "pid": INT,
                                                "busy": {"type": "boolean"}, "alive": {"type": "boolean"},
                                                "compiles": INT, "cpu_seconds": NUM, "rss_bytes": INT})},
    "samples": _obj({"total": INT, "native": INT, "python": INT}),
})


def test_status_is_live_json_of_the_running_guest(live, program):
    a = live.json("status")
    jsonschema.validate(a, SCHEMA)
    g = a["guest"]
    assert g["pid"] == live.proc.pid and g["program"] == str(program) and g["isa"] == "x86_64"
    assert g["argv"][1:] == [WORK, str(live.stopfile)]
    assert a["params"]["status_port"] == 0 and a["traces"]["installed"] >= 2
    versions = a["traces"]["versions"]  # merged regions are the installed units of version 2 and up
    assert a["traces"]["merged"] == sum(n for v, n in versions.items() if int(v) > 1)
    assert a["quick"]["block_cache"] > 0
    # the workers are the real processes (psutil, independently), children of hqemu
    children = {p.pid for p in psutil.Process(live.proc.pid).children(recursive=True)}
    assert a["workers"] and all(w["pid"] in children and w["alive"] for w in a["workers"])
    doc = (guestrun.ROOT / "docs" / "status.md").read_text()
    undocumented = [k for k in sorted(_key_paths(a)) if f"`{k}" not in doc]
    assert not undocumented, f"/status fields missing from docs/status.md: {undocumented}"
    time.sleep(0.25)  # past the 100 ms cache
    b = live.json("status")
    assert b["guest"]["uptime_seconds"] > g["uptime_seconds"]
    total = lambda d: d["tiers"]["quick_insns"] + d["tiers"]["native_insns"]  # noqa: E731
    assert total(b) > total(a), "the guest runs: its instruction count must grow"


# --- /metrics ---------------------------------------------------------------------------------
def test_metrics_parse_as_prometheus_text(live):
    merged_before = live.json("status")["traces"]["merged"]
    code, headers, body = live.get("metrics")
    assert code == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    fams = {f.name: f for f in prom_parser.text_string_to_metric_families(text)}
    assert all(name.startswith("hqemu_") for name in fams)
    for f in fams.values():
        assert f.documentation, f"{f.name} has no HELP"
        if f.type == "counter":
            assert f"# TYPE {f.name}_total counter\n" in text, f"counter {f.name} must end in _total"
    assert fams["hqemu_traces_installed"].type == "counter"
    doc = (guestrun.ROOT / "docs" / "status.md").read_text()
    undocumented = [n for n in re.findall(r"^# TYPE (\S+) ", text, re.M) if f"`{n}" not in doc]
    assert not undocumented, f"metrics missing from docs/status.md: {undocumented}"
    assert fams["hqemu_traces_merged"].samples[0].value >= merged_before  # a counter: zero, never absent
    hist = fams["hqemu_trace_compile_seconds"]
    assert hist.type == "histogram"
    stages = {s.labels["stage"] for s in hist.samples}
    assert {"total", "codegen"} <= stages
    status = live.json("status")
    for stage in stages:
        buckets = [s for s in hist.samples if s.name.endswith("_bucket") and s.labels["stage"] == stage]
        values = [s.value for s in buckets]
        assert values == sorted(values) and buckets[-1].labels["le"] == "+Inf"
        count = next(s.value for s in hist.samples
                     if s.name.endswith("_count") and s.labels["stage"] == stage)
        assert values[-1] == count
    assert fams["hqemu_trace_queue_high_water"].samples[0].value <= status["queue"]["high_water"]
    installed = fams["hqemu_traces_installed"].samples[0].value
    assert 2 <= installed <= status["traces"]["installed"]


# --- /traces ----------------------------------------------------------------------------------
def test_traces_sort_limit_and_bad_queries(live, program):
    all_ = live.json("traces")
    rows = all_["traces"]
    assert all_["count"] == len(rows) >= 2 and all_["sort"] == "samples" and all_["order"] == "desc"
    samples = [r["samples"] for r in rows]
    assert samples == sorted(samples, reverse=True)
    for r in rows:
        assert int(r["head_pc"], 16) == r["head_pc_int"]
        assert r["state"] in ("queued", "compiling", "installed", "superseded", "invalidated", "failed")
        assert r["blocks"] >= 1 and r["guest_insns"] >= 1 and r["exits"] == len(r["exit_list"]) >= 1
        assert all(e["target"] is None or int(e["target"], 16) > 0 for e in r["exit_list"])
    # the program has symbols: each trace head is named as nm places it, the hot loop included
    syms = _nm(program)
    for r in rows:
        assert r["symbol"], r
        name, _, off = r["symbol"].partition("+")
        start, size = syms[name]
        assert start + int(off or "0", 16) == r["head_pc_int"] and (size == 0 or int(off or "0", 16) < size)
    assert any(r["symbol"].split("+")[0] in ("mix", "work") for r in rows)
    ids = [r["id"] for r in live.json("traces?sort=id")["traces"]]
    assert ids == sorted(ids)
    blocks = [r["blocks"] for r in live.json("traces?sort=-blocks")["traces"]]
    assert blocks == sorted(blocks, reverse=True)
    hot = [r["samples"] for r in live.json("traces?sort=samples&limit=3")["traces"]]  # hottest first
    assert hot == sorted(hot, reverse=True) and 1 <= len(hot) <= 3
    insns = [r["guest_insns"] for r in live.json("traces?sort=guest_insns&order=asc")["traces"]]
    assert insns == sorted(insns)
    pcs = [r["head_pc_int"] for r in live.json("traces?sort=head_pc&order=desc")["traces"]]
    assert pcs == sorted(pcs, reverse=True)
    assert len(live.json("traces?sort=id&limit=1")["traces"]) == 1
    assert live.json("traces?limit=0")["traces"] == []
    for bad in ("sort=bogus", "limit=-1", "limit=x", "order=up", "colour=red", "limit=1&limit=2", "sort",
                *(f"limit={v}" for v in NOT_ASCII_COUNTS)):
        code, headers, body = live.get(f"traces?{bad}")
        assert code == 400 and headers["Content-Type"].startswith("application/json"), bad
        error = json.loads(body)
        assert error["status"] == 400 and error["error"] and "\n" not in error["error"], (bad, error)
        if bad.startswith("limit=") and "&" not in bad:
            assert error["error"].startswith("limit must be"), (bad, error)


# limit values str.isdigit() (or int()) would take: Arabic-Indic and fullwidth three, a
# superscript two, Devanagari seven, then signs, blanks, an empty value, and more than 18 digits
NOT_ASCII_COUNTS = ("%D9%A3", "%EF%BC%93", "%C2%B2", "%E0%A5%AD", "+3", "%203", "3%20", "", "9" * 19)


def test_numeric_query_parameters_take_ascii_digits_only():
    """select() itself: Python's own int() and str.isdigit() are the oracle of what to refuse."""
    from urllib.parse import unquote

    from hqemu.status.snapshot import select

    rows = [{"id": i, "samples": 10 - i} for i in range(5)]
    for text in ("0", "3", "007", "5", "99"):
        assert [r["id"] for r in select(rows, {"limit": [text]})["traces"]] == list(range(min(int(text), 5)))
    for raw in NOT_ASCII_COUNTS:
        text = unquote(raw)
        if raw.startswith("%") and len(text) == 1:  # one non-ASCII digit: Python alone would take it
            assert text.isdigit() and not text.isascii(), raw
        with pytest.raises(ValueError, match=r"^limit must be a non-negative integer in ASCII digits") as e:
            select(rows, {"limit": [text]})
        assert "\n" not in str(e.value) and len(str(e.value)) < 120


def test_symbols_agree_with_nm(program):
    """hqemu.linux.symbols against binutils: every function start, an offset inside, a bias."""
    from hqemu.linux.symbols import Symbols

    bias = 0x10000
    syms, by_addr = Symbols(str(program), bias), {}
    for name, (addr, _size) in _nm(program).items():
        by_addr.setdefault(addr, set()).add(name)
    assert len(by_addr) > 100
    for addr, names in by_addr.items():
        assert syms.lookup(addr + bias) in names, (hex(addr), names)
    start, size = _nm(program)["work"]
    assert syms.lookup(start + bias + size - 1) == f"work+0x{size - 1:x}"
    assert syms.lookup(bias + 0x1000) is None  # below the first segment
    assert Symbols("/nonexistent").lookup(0x401000) is None


# --- HTTP errors and abuse --------------------------------------------------------------------
def test_unknown_paths_and_methods(live):
    code, headers, body = live.get("nope")
    assert code == 404 and json.loads(body)["status"] == 404
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        code, headers, body = live.get("status", method=method)
        assert code == 405 and headers["Allow"] == "GET, HEAD", method
    code, headers, body = live.get("status", method="HEAD")
    assert code == 200 and body == b"" and int(headers["Content-Length"]) > 100
    code, headers, body = live.get("")
    assert code == 200 and headers["Content-Type"].startswith("text/html") and b"<html" in body.lower()


def _raw(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# --- the client -------------------------------------------------------------------------------
def test_client_prints_a_table_and_json(live):
    r = subprocess.run([*CLIENT, str(live.port)], env=CLIENT_ENV, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert f"pid, isa, mode      {live.proc.pid}, x86_64, hybridm" in out and "hottest traces" in out
    r = subprocess.run([*CLIENT, "--json", f"127.0.0.1:{live.port}"], env=CLIENT_ENV, capture_output=True,
                       timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout).keys() == live.json("status").keys()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_client_against_a_closed_port():
    port = _free_port()
    r = subprocess.run([*CLIENT, "--port", str(port)], env=CLIENT_ENV, capture_output=True, timeout=60)
    assert r.returncode == 1 and r.stdout == b""
    assert len(r.stderr.decode().strip().splitlines()) == 1 and "refused" in r.stderr.decode()


def test_a_port_in_use_is_one_line_and_exit_1(program, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        cmd, env = _hqemu("-llvm-mode", "none", "-status-port", str(s.getsockname()[1]))
        r = subprocess.run([*cmd, str(program), WORK], cwd=tmp_path, env=env, capture_output=True, timeout=60)
    assert r.returncode == 1 and r.stdout == b"", r  # the guest never ran
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hqemu: status endpoint: cannot listen"), lines


# --- the guest is not disturbed; --stats-file is /status ---------------------------------------
def _key_paths(d: dict) -> set[str]:
    out = set(d)
    for section in SECTIONS:
        out |= {f"{section}.{k}" for k in d[section]}
    return out


REQUEST = b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n"


def test_abuse_leaves_the_guest_output_identical(program, tmp_path):
    """Malformed, huge and slow requests, more connections than the server takes, and a burst
    of 1,000 requests against one run, whose output must then equal the native run's and a run
    without the endpoint. One test on purpose: pytest-xdist may build a module fixture once per
    worker, so a separate output check might look at a run the abuse never reached."""
    run = Live(program, tmp_path, *LIVE_OPTS)
    try:
        _wait_for_hot_traces(run, program)
        _malformed_huge_and_slow(run)
        _connection_cap(run)
        _burst(run)
        status = run.json("status")
        # clients that never finish their request must not keep hqemu alive (daemon threads)
        idle = socket.create_connection(("127.0.0.1", run.port))
        half = socket.create_connection(("127.0.0.1", run.port))
        half.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.2)
        t0 = time.monotonic()
        code, out, err = run.stop()
        assert time.monotonic() - t0 < 3.0, "hqemu waited for its status clients"
        idle.close(), half.close()
    finally:
        run.kill()
    assert code == 0 and err == b"", err  # only the endpoint line (read by Live) went to stderr
    native = guestrun.run_native(program, [WORK, str(run.stopfile)], guestrun.clean_env(), tmp_path)
    stats = tmp_path / "stats.json"
    plain = guestrun.run_hqemu(program, [WORK, str(run.stopfile)], guestrun.clean_env(), tmp_path,
                               (*LIVE_OPTS, "-stats-file", str(stats)))
    assert native.returncode == plain.returncode == 0
    assert out == native.stdout == plain.stdout and out.startswith(b"checksum ")
    assert plain.stderr == b""
    assert _key_paths(json.loads(stats.read_text())) == _key_paths(status)


def _malformed_huge_and_slow(run: Live) -> None:
    idle = socket.create_connection(("127.0.0.1", run.port), timeout=15)  # sends nothing at all
    slow = socket.create_connection(("127.0.0.1", run.port), timeout=15)  # a byte every 0.5 s
    t0 = time.monotonic()
    try:
        slow.sendall(REQUEST[:1])
        assert _raw(run.port, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        assert _raw(run.port, b"GET /status HTTP/9.9\r\n\r\n").split(b" ")[1] in (b"400", b"505")
        assert _raw(run.port, b"\x00\xff\x16\x03\x01binary\r\n\r\n").split(b" ")[1] == b"400"
        huge_header = b"GET /status HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
        assert _raw(run.port, huge_header).startswith(b"HTTP/1.1 431 ")
        many = b"GET /status HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n"
        assert _raw(run.port, many).startswith(b"HTTP/1.1 431 ")
        for n in (9000, 100000):  # over our 8 KiB cap, and over the stdlib's 64 KiB
            long_line = b"GET /" + b"a" * n + b" HTTP/1.1\r\n\r\n"
            assert _raw(run.port, long_line).split(b" ")[1] == b"414", n
        # the idle and the slow client hold only their own threads: others are served meanwhile
        t1 = time.monotonic()
        assert run.get("status")[0] == 200 and time.monotonic() - t1 < 2.0
        # the slow one would finish its request after 17 s: the whole head has 5 s, then a 408
        answered_at, answer = _trickle(slow, REQUEST[1:], 0.5, t0 + 12.0)
        assert answered_at is not None, "the server still waits for the slow client after 12 s"
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert 4.5 <= answered_at - t0 <= 7.5, answered_at - t0
        # ... and hangs up on the idle one at the same deadline, without an answer
        assert idle.recv(1024) == b""
        assert time.monotonic() - t0 < 8.0
    finally:
        idle.close(), slow.close()


def _trickle(sock: socket.socket, data: bytes, every: float, until: float) -> tuple[float | None, bytes]:
    """Send data a byte every `every` seconds until the server answers or hangs up (when,
    what it sent), or until the time `until` (None, b"")."""
    for i in range(len(data) + 1):
        ready, _, _ = select.select([sock], [], [], every)
        if ready:
            try:
                return time.monotonic(), sock.recv(65536)
            except ConnectionResetError:
                return time.monotonic(), b""
        if time.monotonic() > until:
            break
        if i < len(data):
            try:
                sock.send(data[i:i + 1])
            except OSError:
                return time.monotonic(), b""
    return None, b""


def _connection_cap(run: Live) -> None:
    """More connections than MAX_CONNECTIONS: the excess ones get a 503 at once, and hqemu's
    thread count (psutil's, not the server's own figure) grows by at most the cap."""
    from hqemu.status.server import MAX_CONNECTIONS

    hqemu = psutil.Process(run.proc.pid)
    time.sleep(0.3)  # the threads of the requests before have ended
    before = hqemu.num_threads()
    n = MAX_CONNECTIONS + 36
    conns = [socket.create_connection(("127.0.0.1", run.port), timeout=10) for _ in range(n)]
    try:
        deadline, answered = time.monotonic() + 3.0, []
        while len(answered) < n - MAX_CONNECTIONS and time.monotonic() < deadline:
            answered = [c for c in conns if select.select([c], [], [], 0)[0]]
            time.sleep(0.05)
        answers = [c.recv(4096) for c in answered]
        assert len(answered) == n - MAX_CONNECTIONS, f"{len(answered)} of {n} connections answered"
        assert all(a.startswith(b"HTTP/1.1 503 ") for a in answers), answers[:3]
        threads = hqemu.num_threads()
        assert threads - before <= MAX_CONNECTIONS + 3, (before, threads)
        assert _raw(run.port, REQUEST).startswith(b"HTTP/1.1 503 ")  # all slots are still taken
    finally:
        for c in conns:
            c.close()
    deadline = time.monotonic() + 3.0  # the held connections end with their clients: served again
    while (code := run.get("status")[0]) != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert code == 200 and run.proc.poll() is None


def _burst(run: Live) -> None:
    paths = ["status", "metrics", "traces?limit=5", "nope"] * 250
    with ThreadPoolExecutor(32) as ex:
        codes = list(ex.map(lambda p: run.get(p, timeout=30)[0], paths))
    assert codes.count(200) == 750 and codes.count(404) == 250
    assert run.proc.poll() is None, "the guest must still run"


# --- response time under load --------------------------------------------------------------------
@pytest.fixture(scope="module")
def int_loop(tmp_path_factory) -> Path:
    """bench/kernels/int_loop.c: a loop whose traces merge (hybrids), hours long at 10**12."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not found")
    return status_latency.build_int_loop(tmp_path_factory.mktemp("int_loop"))


@pytest.mark.parametrize("mode", status_latency.MODES)
def test_response_time_under_load(mode, int_loop, tmp_path):
    """Every endpoint answers in under 100 ms at the median while the guest runs, in every llvm
    mode (the quick tier holds the GIL). 7 requests of each, 120 ms apart (past the snapshot
    cache: each answer is built afresh); bench/status_latency.py measures the table of
    docs/status.md the same way with 40."""
    r = status_latency.measure(mode, int_loop, samples=7, cwd=tmp_path)
    assert r.running and r.insns[1] > r.insns[0], "the guest must run during the measurement"
    for endpoint, times in r.seconds.items():
        median = r.median(endpoint)
        assert median < 0.100, (f"{mode} /{endpoint}: median {median * 1e3:.1f} ms, all: "
                                f"{[round(t * 1e3, 1) for t in times]}")


# --- options and their environment twins ------------------------------------------------------------
def test_status_port_from_the_environment(program, tmp_path):
    """HQEMU_STATUS_PORT=0 alone starts the endpoint on a port it prints; psutil sees hqemu listen
    there. With a port taken in HQEMU_STATUS_PORT, --status-port 0 on the command line wins."""
    run = Live(program, tmp_path, "-llvm-mode", "none", env={"HQEMU_STATUS_PORT": "0"}, port_opt=False)
    try:
        assert ("127.0.0.1", run.port) in run.listening()
        s = run.json("status")
        assert s["params"]["status_port"] == 0 and s["guest"]["pid"] == run.proc.pid
    finally:
        code, out, err = run.stop()
    assert code == 0 and out.startswith(b"checksum ") and err == b""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        (tmp_path / "stop").unlink()
        run = Live(program, tmp_path, "-llvm-mode", "none", env={"HQEMU_STATUS_PORT": str(busy)})
        try:
            assert run.port != busy and ("127.0.0.1", run.port) in run.listening()
            assert run.json("status")["params"]["status_port"] == 0
        finally:
            assert run.stop()[0] == 0


def _ipv6_loopback() -> str | None:
    """Why this host cannot listen on ::1, or None."""
    if not socket.has_ipv6:
        return "Python has no IPv6 support"
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError as e:
        return f"no IPv6 loopback on this host ({e.strerror or e})"
    return None


def test_status_bind_ipv6_loopback(program, tmp_path):
    if (why := _ipv6_loopback()) is not None:
        pytest.skip(why)
    run = Live(program, tmp_path, "-llvm-mode", "none", "-status-bind", "::1")
    try:
        assert run.host == "::1" and run.base == f"http://[::1]:{run.port}/"
        listening = run.listening()
        assert ("::1", run.port) in listening, listening
        assert not {a for a, p in listening if p == run.port} - {"::1"}, listening  # ::1 only
        assert run.json("status")["params"]["status_bind"] == "::1"
        with pytest.raises(ConnectionRefusedError):  # nothing on the IPv4 loopback
            socket.create_connection(("127.0.0.1", run.port), timeout=5).close()
    finally:
        code, out, err = run.stop()
    assert code == 0 and out.startswith(b"checksum ") and err == b""


# --- trace merging as /traces and /metrics show it ---------------------------------------------------
@pytest.mark.parametrize("merge", ["on", "off"])
def test_merged_regions_supersede_the_trace_at_their_head(merge, int_loop, tmp_path):
    """hybrids merges int_loop's loop traces into a region at once (tests/test_trace_tier.py):
    the region is the current unit at its head, the version-1 trace there is "superseded"
    with no samples, and each native sample is counted once (the sum over /traces lies
    between the sampler's native totals of two /status reads around it). With
    -trace-merge=off the same run has no region, and /metrics says 0 merged, not nothing."""
    run = Live(int_loop, tmp_path, "-llvm-mode", "hybrids", f"-trace-merge={merge}", "-code-cache=",
               args=(status_latency.FOREVER,))
    try:
        deadline = time.monotonic() + 30
        while True:  # the loop runs natively (in its region, when merging is on)
            s = run.json("status")
            if s["samples"]["native"] >= 20 and (merge == "off" or s["traces"]["merged"] >= 1):
                break
            assert time.monotonic() < deadline, s["traces"]
            time.sleep(0.1)
        time.sleep(0.15)  # each read below past the 100 ms cache
        before = run.json("status")
        rows = run.json("traces?sort=id")["traces"]
        time.sleep(0.15)
        after = run.json("status")
        metrics_text = run.get("metrics")[2].decode()
    finally:
        run.kill()
    assert {r["state"] for r in rows} <= {"installed", "superseded"}  # hybrids: nothing queued
    # versions as report.statistics counts them from the tier's own list
    assert dict(Counter(str(r["version"]) for r in rows)) == after["traces"]["versions"]
    by_head: dict[int, list[dict]] = {}
    for r in rows:
        by_head.setdefault(r["head_pc_int"], []).append(r)
    for units in by_head.values():
        current = [r for r in units if r["state"] == "installed"]
        assert len(current) == 1, units
        newest = max(units, key=lambda r: r["installed_at"])
        assert current[0]["id"] == newest["id"] and current[0]["version"] == max(r["version"] for r in units)
        assert all(r["samples"] == 0 for r in units if r is not current[0]), units
    fams = {f.name: f for f in prom_parser.text_string_to_metric_families(metrics_text)}
    total = sum(r["samples"] for r in rows)
    assert before["samples"]["native"] <= total <= after["samples"]["native"] + 1, (before["samples"], total)
    merged = [r for r in rows if r["version"] >= 2]
    assert fams["hqemu_traces_merged"].samples[0].value == len(merged) == after["traces"]["merged"]
    assert re.search(r"^hqemu_traces_merged_total (\S+)$", metrics_text, re.M)
    if merge == "off":
        assert not merged and all(r["state"] == "installed" for r in rows)
        assert re.search(r"^hqemu_traces_merged_total 0$", metrics_text, re.M), "present, and zero"
        return
    assert merged
    for region in merged:
        replaced = [r for r in by_head[region["head_pc_int"]] if r is not region]
        assert region["state"] == "installed" and region["samples"] > 0, region  # the loop runs in it
        assert replaced and all(r["state"] == "superseded" and r["version"] < region["version"]
                                for r in replaced), replaced
