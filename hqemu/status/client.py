"""`hqemu status [URL]`: a running hqemu's figures as a table, from another terminal.

    $ hqemu status 41234                    # or 127.0.0.1:41234, or http://host:41234/
    $ hqemu status --port 41234 --json      # the raw /status JSON
    >>> main(["41234", "--top", "5"])       # exit status: 0, or 1 with one line on stderr

It fetches /status and /traces (the hottest traces) with urllib; it imports nothing of the
emulator, so it starts fast.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

TIMEOUT = 5.0  # seconds per request


def normalize(target: str | None, port: int | None) -> str:
    """The base URL (ending in /) for a URL, host:port, a plain port, or --port."""
    if target is None:
        if port is None:
            raise ValueError("give the endpoint's URL or port (hqemu status PORT, or --port PORT)")
        return f"http://127.0.0.1:{port}/"
    if target.isdigit():
        return f"http://127.0.0.1:{int(target)}/"
    if "://" not in target:
        target = "http://" + target
    url = urlsplit(target)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"not an endpoint URL: {target!r}")
    try:
        _ = url.port
    except ValueError:
        raise ValueError(f"bad port in {target!r}") from None
    return f"{url.scheme}://{url.netloc}/"


def fetch(base: str, path: str, timeout: float = TIMEOUT) -> Any:
    with urllib.request.urlopen(base + path.lstrip("/"), timeout=timeout) as r:
        return json.loads(r.read())


def _fmt_int(n: int) -> str:
    return f"{n:,}".replace(",", " ")


def format_status(d: dict[str, Any], traces: dict[str, Any] | None) -> str:
    g, t, tiers, q, qu = d["guest"], d["traces"], d["tiers"], d["quick"], d["queue"]
    total = tiers["quick_insns"] + tiers["native_insns"]
    rows = [
        ("program", " ".join([g["program"], *g["argv"][1:]])),
        ("pid, isa, mode", f"{g['pid']}, {g['isa']}, {d['params']['llvm_mode']}"),
        ("uptime", f"{g['uptime_seconds']:.1f} s"),
        ("guest instructions", f"{_fmt_int(total)} (native {100 * tiers['native_share']:.1f}%, "
                               f"quick {100 * (1 - tiers['native_share']) if total else 0:.1f}%)"),
        ("quick tier", f"{_fmt_int(q['block_cache'])} blocks cached, {_fmt_int(q['blocks_translated'])} "
                       f"translated in {q['translate_seconds']:.2f} s"),
        ("traces", f"formed {t['formed']}, queued {t['queued']}, compiling {t['compiling']}, installed "
                   f"{t['installed']}, failed {t['failed']}, aborted {t['aborted']}, merged {t['merged']}"),
        ("queue", f"depth {qu['depth']} (high water {qu['high_water']}), submitted {qu['submitted']}, "
                  f"refused {qu['refused_full']}, worker crashes {qu['worker_crashes']}"),
    ]
    for stage in ("total", "latency"):
        s = t["compile_seconds"].get(stage)
        if s:
            rows.append((f"compile {stage}", f"n={s['count']} sum {s['total']:.3f} s, "
                                             f"p50 {1e3 * s['p50']:.1f} ms, p90 {1e3 * s['p90']:.1f} ms, "
                                             f"max {1e3 * s['max']:.1f} ms"))
    for w in d["workers"]:
        state = ("busy" if w["busy"] else "idle") if w["alive"] else "dead"
        rows.append((f"worker {w['slot']}", f"pid {w['pid']} {state}, {w['compiles']} compiles, "
                                            f"{w['cpu_seconds']:.2f} s CPU, "
                                            f"{w['rss_bytes'] / 2**20:.1f} MiB"))
    returns = d["native"]["returns_to_python"]
    if returns:
        rows.append(("native -> Python", ", ".join(f"{k} {v}" for k, v in sorted(returns.items()))))
    sc = sorted(d["syscalls"].items(), key=lambda kv: -kv[1])
    rows.append(("syscalls", f"{sum(d['syscalls'].values())}: " +
                 ", ".join(f"{k} {v}" for k, v in sc[:8]) + (", ..." if len(sc) > 8 else "")))
    w = max(len(k) for k, _ in rows)
    out = [f"{k:<{w}}  {v}" for k, v in rows]
    if traces and traces["traces"]:
        out += ["", f"hottest traces ({len(traces['traces'])} of {traces['count']}, by {traces['sort']}):",
                f"  {'id':>5} {'v':>2} {'state':<11} {'head':>10} {'samples':>8} {'blocks':>6} {'insns':>6} "
                f"{'exits':>5} {'compile':>9}  symbol"]
        for r in traces["traces"]:
            out.append(f"  {r['id']:>5} {r['version']:>2} {r['state']:<11} {r['head_pc']:>10} "
                       f"{r['samples']:>8} {r['blocks']:>6} {r['guest_insns']:>6} {r['exits']:>5} "
                       f"{1e3 * r['compile_seconds']:>7.1f}ms  {r['symbol'] or ''}")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="hqemu status", description="Show the figures of a running hqemu "
                                 "started with --status-port.")
    ap.add_argument("url", nargs="?", help="http://HOST:PORT/, HOST:PORT or PORT (host 127.0.0.1)")
    ap.add_argument("--port", type=int, help="the endpoint's port on 127.0.0.1")
    ap.add_argument("--json", action="store_true", help="print the raw /status JSON")
    ap.add_argument("--top", type=int, default=10, metavar="N", help="hottest traces to list [10]")
    ap.add_argument("--timeout", type=float, default=TIMEOUT, metavar="S", help="seconds per request [5]")
    args = ap.parse_args(argv)
    try:
        base = normalize(args.url, args.port)
        status = fetch(base, "status", args.timeout)
        if args.json:
            print(json.dumps(status, indent=1, sort_keys=True))
            return 0
        traces = fetch(base, f"traces?limit={max(0, args.top)}", args.timeout) if args.top else None
    except ValueError as e:
        print(f"hqemu status: {e}", file=sys.stderr)
        return 1
    except urllib.error.HTTPError as e:
        print(f"hqemu status: {e.url}: HTTP {e.code} {e.reason}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        print(f"hqemu status: cannot reach {base}: {getattr(reason, 'strerror', None) or reason}",
              file=sys.stderr)
        return 1
    try:
        print(format_status(status, traces))
    except (KeyError, TypeError) as e:
        print(f"hqemu status: {base} did not answer like an hqemu status endpoint (missing {e})",
              file=sys.stderr)
        return 1
    return 0
