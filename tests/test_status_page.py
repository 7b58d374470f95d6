"""The status page (hqemu/status/page.html) rendered by headless Chromium.

Two servers feed it. A canned one (stdlib http.server, in this process) answers /status with
distinctive values, some keys missing, and /traces as a bare list once, then HTTP 500: the
rendered DOM must show those values as the page formats them, "-" for the missing keys, the
last good trace table and a visible error line. Then a real guest under `--status-port 0`
(hqemu's own server, in a clean environment and without the persistent code cache, so
nothing of the user's can change the run): the DOM must show the run's program and pid and a
traces-installed figure between two /status reads taken before and after, and after a few
refreshes both charts must hold drawn lines and areas, one point per refresh; a screenshot
is kept in build/test-artifacts/status-page.png. The page must be self-contained: the served
text names no other origin (src/href attributes, CSS @import and url(), any http(s) URL but
the SVG namespace), and Chromium's network log shows every request the page made going to
the hqemu server.

Chromium's --virtual-time-budget runs the page's one-second polling timers without waiting for
them in real time (network loads still take real time), so a few polls take about a second.
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import struct
import subprocess
import threading
import time
import urllib.request
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import guestrun
import pytest
from test_sampler import LOOP_C, build

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "hqemu" / "status" / "page.html"
ARTIFACTS = ROOT / "build" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install "
                                "chromium; `make deps` installs it)")


def chromium(tmp: Path, url: str, *args: str, budget_ms: int = 3000) -> str:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={tmp / 'chromium-profile'}",
           f"--virtual-time-budget={budget_ms}", *args, url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


class Dom(HTMLParser):
    """What the page shows: data-path -> text, the error line, the table rows by tbody id."""

    def __init__(self, html: str):
        super().__init__()
        self.figures: dict[str, str] = {}
        self.rows: dict[str, list[list[str]]] = {}
        self.error: tuple[bool, str] | None = None  # (hidden, text)
        self.conn = ""
        self._into: tuple[str, dict] | None = None  # (what, its attributes) collecting text now
        self._text: list[str] = []
        self._tbody: str | None = None
        self.shapes: dict[str, list[tuple[str, dict]]] = {}  # chart svg id -> (tag, attributes) drawn
        self._svg: str | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg" and a.get("id", "").startswith("chart-"):
            self._svg = a["id"]
            self.shapes[self._svg] = []
        elif self._svg is not None and tag in ("polyline", "polygon", "path"):
            self.shapes[self._svg].append((tag, a))
        if tag == "tbody":
            self._tbody = a.get("id")
            self.rows[self._tbody] = []
        elif tag == "tr" and self._tbody:
            self.rows[self._tbody].append([])
        elif "data-path" in a or a.get("id") in ("error", "conn") or (tag == "td" and self._tbody):
            self._into, self._text = (tag, a), []

    def handle_data(self, data):
        if self._into is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._tbody = None
        if tag == "svg":
            self._svg = None
        if self._into is None or tag != self._into[0]:
            return
        attrs, text = self._into[1], "".join(self._text).strip()
        self._into = None
        if "data-path" in attrs:
            self.figures.setdefault(attrs["data-path"], text)
        elif attrs.get("id") == "error":
            self.error = ("hidden" in attrs, text)
        elif attrs.get("id") == "conn":
            self.conn = text
        else:
            self.rows[self._tbody][-1].append(text)


# --- the canned server -------------------------------------------------------------------------
CANNED_STATUS = {
    "guest": {"program": "/canned/guest-7f3a", "pid": 31337, "uptime_seconds": 75.5, "isa": "x86_64"},
    "params": {"llvm_mode": "hybridm"},
    "tiers": {"native_share": 0.8766, "quick_insns": 1234567, "native_insns": 8765432},
    "traces": {"formed": 4444, "installed": 4321},  # no "merged", no "failed": they show "-"
    "quick": {"block_cache": 9876, "blocks_translated": 10001},
    "queue": {"depth": 3, "high_water": 17},
    "workers": [{"pid": 424242, "busy": True, "compiles": 12, "cpu_seconds": 1.5, "rss_bytes": 3 << 20},
                {"pid": 424243, "busy": False, "compiles": 7, "cpu_seconds": 0.25, "rss_bytes": 1536}],
}
CANNED_TRACES = [  # the bare-list shape, head pcs as an int and as a hex string
    {"id": 31, "head_pc": 0x401ABC, "symbol": "spin+0x8", "blocks": 2, "samples": 555, "state": "installed"},
    {"id": 32, "head_pc": "0x401def", "symbol": None, "blocks": 1, "samples": 0, "state": "queued"},
]


class Canned(BaseHTTPRequestHandler):
    traces_left = 1  # good /traces answers before it fails

    def do_GET(self):
        if self.path == "/":
            self._send(200, "text/html; charset=utf-8", PAGE.read_bytes())
        elif self.path == "/status":
            self._send(200, "application/json", json.dumps(CANNED_STATUS).encode())
        elif self.path.startswith("/traces"):
            if Canned.traces_left > 0:
                Canned.traces_left -= 1
                self._send(200, "application/json", json.dumps(CANNED_TRACES).encode())
            else:
                self._send(500, "application/json", b'{"error": "canned failure"}')
        else:
            self._send(404, "text/plain", b"no")

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_page_shows_the_json_and_a_failed_fetch(tmp_path):
    Canned.traces_left = 1
    server = ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        dom = Dom(chromium(tmp_path, f"http://127.0.0.1:{server.server_port}/", "--dump-dom"))
    finally:
        server.shutdown()
        server.server_close()
    assert Canned.traces_left == 0, "the page never fetched /traces"
    f = dom.figures
    expected = {
        "guest.program": "/canned/guest-7f3a", "guest.pid": "31337", "guest.uptime_seconds": "1m 15s",
        "params.llvm_mode": "hybridm", "tiers.native_share": f"{100 * 0.8766:.1f}%",
        "tiers.native_insns": f"{8765432:,}", "tiers.quick_insns": f"{1234567:,}",
        "traces.installed": f"{4321:,}", "traces.formed": f"{4444:,}",
        "traces.merged": "-", "traces.failed": "-", "quick.block_cache": f"{9876:,}",
        "queue.depth": "3", "queue.high_water": "17", "samples.native": "-",
    }
    assert {k: f.get(k) for k in expected} == expected
    assert dom.rows["workers"] == [["424242", "busy", "12", "1.50", "3.0 MiB"],
                                   ["424243", "idle", "7", "0.25", "1.5 KiB"]]
    assert dom.rows["traces"] == [["31", "0x401abc", "spin+0x8", "2", "555", "installed"],
                                  ["32", "0x401def", "-", "1", "0", "queued"]]
    hidden, text = dom.error
    assert not hidden and "/traces" in text and "500" in text, dom.error
    assert dom.conn == "live"  # /status still answers


# --- a real guest ----------------------------------------------------------------------------------
def fetch(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def live_guest(tmp_path):
    """A guest looping for hours in hybridm with --status-port 0: its base URL; killed after."""
    exe = build(tmp_path, "loop", LOOP_C)
    cmd, extra = guestrun.hqemu_command(("-llvm-mode", "hybridm", "--status-port", "0", "-code-cache="))
    proc = subprocess.Popen([*cmd, str(exe), str(10**13)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env={**guestrun.clean_env(), **extra}, cwd=tmp_path)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True).start()
    try:
        url = None
        while url is None:
            line = lines.get(timeout=30)
            if "status endpoint at " in line:
                url = line.split("status endpoint at ", 1)[1].strip()
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_page_on_a_live_guest(live_guest, tmp_path):
    url, pid = live_guest
    deadline = time.monotonic() + 30
    while (before := fetch(url + "status"))["traces"]["installed"] < 1:
        assert time.monotonic() < deadline, "no trace installed in 30 s"
        time.sleep(0.2)
    with urllib.request.urlopen(url, timeout=5) as r:
        served = r.read().decode()
    assert served == PAGE.read_text(), "GET / serves hqemu/status/page.html"
    assert not external_references(served), external_references(served)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "status-page.png"
    shot.unlink(missing_ok=True)
    netlog = tmp_path / "netlog.json"
    # one browser start for all (it is most of the cost): the screenshot shows the DOM we check
    dom = Dom(chromium(tmp_path, url, "--dump-dom", f"--screenshot={shot}", "--window-size=1200,900",
                       "--hide-scrollbars", f"--log-net-log={netlog}", budget_ms=4000))
    after = fetch(url + "status")
    traces = fetch(url + "traces")
    traces = traces["traces"] if isinstance(traces, dict) else traces
    f = dom.figures
    assert f["guest.program"] == after["guest"]["program"] and f["guest.pid"] == str(pid)
    shown = int(f["traces.installed"].replace(",", ""))
    assert before["traces"]["installed"] <= shown <= after["traces"]["installed"]
    assert before["traces"]["merged"] <= int(f["traces.merged"]) <= after["traces"]["merged"]  # never absent
    assert dom.error[0], f"the error line is visible: {dom.error[1]}"
    assert dom.conn == "live"
    heads = {r[1] for r in dom.rows["traces"]}
    assert heads & {t["head_pc"] if isinstance(t["head_pc"], str) else f"0x{t['head_pc']:x}" for t in traces}
    # no code cache: the first trace went through the worker pool, which the page lists
    rows, pids = [r[0] for r in dom.rows["workers"]], {str(w["pid"]) for w in after["workers"]}
    assert before["workers"] and rows and set(rows) <= pids, (rows, pids)
    assert png_size(shot) == (1200, 900)
    # every request of the page went to hqemu, and it polled /status a few times
    origin = url.rstrip("/")
    requests = page_requests(netlog, origin)
    assert requests and all(u.startswith(origin + "/") for u in requests), requests
    polls = sum(1 for u in requests if urlsplit(u).path == "/status")
    assert polls >= 3, requests
    # ... and each poll that came back drew a point on both charts (a line, and the tiers' areas)
    for chart, kinds in (("chart-traces", {"polyline"}), ("chart-tiers", {"polyline", "polygon"})):
        drawn = [(tag, shape_points(tag, a)) for tag, a in dom.shapes.get(chart, [])]
        assert kinds <= {tag for tag, pts in drawn if len(pts) >= 2}, (chart, drawn)
        lines = [pts for tag, pts in drawn if tag == "polyline"]
        assert all(polls - 1 <= len(pts) <= polls for pts in lines), (chart, polls, lines)
        assert all(0 <= x <= 560 and 0 <= y <= 200 for _, pts in drawn for x, y in pts), (chart, drawn)


# --- self-containment -------------------------------------------------------------------------------
# the only absolute URLs the page may hold: XML namespace names, identifiers that are never fetched
NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xhtml", "http://www.w3.org/1999/xlink"}
ABSOLUTE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.I)  # http://x, https://x, //x: another origin
CSS_REFS = re.compile(r"@import\s+(?:url\(\s*)?[\"']?([^\"')\s;]+)|url\(\s*[\"']?([^\"')\s]+)", re.I)


class _Refs(HTMLParser):
    """Every attribute value and every piece of CSS (style elements and attributes) of a page."""

    def __init__(self, html: str):
        super().__init__()
        self.attrs: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.css: list[str] = []
        self._in_style = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self._in_style = tag == "style"
        for k, v in attrs:
            self.attrs.append((tag, k, v or ""))
            if k == "style":
                self.css.append(v or "")

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.css.append(data)


def external_references(html: str) -> list[str]:
    """What in html would load something from another origin."""
    refs = _Refs(html)
    bad = [f"<{t} {k}={v!r}>" for t, k, v in refs.attrs if ABSOLUTE.match(v)]
    for css in refs.css:
        bad += [f"CSS {m.group(0)!r}" for m in CSS_REFS.finditer(css)
                if ABSOLUTE.match(m.group(1) or m.group(2))]
    bad += [f"URL {u!r}" for u in re.findall(r"https?://[^\s\"'`)<>]+", html, re.I) if u not in NAMESPACES]
    return bad


def test_external_references_finds_other_origins():
    """The checker itself, on pages that do load something from elsewhere."""
    for page in ('<script src="https://cdn.example/x.js"></script>',
                 '<link rel="stylesheet" href="//cdn.example/a.css">',
                 '<style>@import url("https://fonts.example/f.css");</style>',
                 "<style>@import 'http://e.x/a.css';</style>",
                 '<div style="background: url(https://e.x/i.png)"></div>', '<img src="HTTP://e.x/i.png">',
                 '<script>fetch("https://e.x/api")</script>'):
        assert external_references(page), page
    assert external_references(PAGE.read_text()) == []
    same_origin = ('<a href="/status">s</a><style>b{background:url(data:image/png;base64,AA)}</style>'
                   '<script>document.createElementNS("http://www.w3.org/2000/svg", "g")</script>')
    assert external_references(same_origin) == []


def page_requests(netlog: Path, origin: str) -> list[str]:
    """The URLs of the requests the page made (the page itself included), from Chromium's net
    log: those whose network isolation key is the page's site. The browser's own background
    requests (update checks, ...) carry another key and are left out."""
    log = json.loads(netlog.read_text())
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    site = urlsplit(origin)._replace(netloc=urlsplit(origin).hostname).geturl()
    out = []
    for e in log["events"]:
        params = e.get("params") or {}
        if names.get(e["type"]) == "URL_REQUEST_START_JOB" and "url" in params:
            if str(params.get("network_isolation_key", "")).split(" ")[0] == site:
                out.append(params["url"])
    return out


def shape_points(tag: str, attrs: dict) -> list[tuple[float, float]]:
    """The vertices of a polyline or polygon (its points), or of a path (the numbers of its d)."""
    numbers = [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", attrs.get("d" if tag == "path" else
                                                                                       "points", ""))]
    return list(zip(numbers[::2], numbers[1::2]))
