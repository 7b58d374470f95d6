"""The status endpoint: a read-only HTTP server inside the hqemu process, in daemon threads.

    >>> server = StatusServer("127.0.0.1", 0)      # binds now: HqemuError if the port is taken
    >>> server.start(engine)                       # serves GET /, /status, /traces, /metrics
    >>> server.url                                 # 'http://127.0.0.1:41234/'
    >>> server.stop()                              # process.run does this at exit

Safety. The handlers only read (hqemu.status.snapshot); nothing a client sends reaches the
emulation. Every thread is a daemon, so the server never keeps the process alive. A client
has REQUEST_DEADLINE seconds for a whole request head, however it trickles the bytes (408,
or a silent close if it sent nothing), and WRITE_TIMEOUT for each write of the answer, so a
slow one holds its thread for seconds, not minutes; at most MAX_CONNECTIONS are served at
once (one thread each), the next ones get a 503 at once from the accepting thread; the
request line and the headers are capped (414 and 431); other methods than GET and HEAD get
405, unknown paths 404, and every error is a JSON body. Nothing is printed: the guest's
stderr is the same with and without the endpoint.

The quick tier holds the GIL while the guest runs in Python; a request thread gets it at
the interpreter's switch interval (5 ms) after each blocking call, so an answer takes a few
switch intervals (docs/status.md has the measured times).
"""

from __future__ import annotations

import io
import json
import math
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from hqemu.errors import HqemuError

from .metrics import CONTENT_TYPE as METRICS_TYPE
from .metrics import render
from .snapshot import Snapshots, select

if TYPE_CHECKING:
    from hqemu.runtime.engine import Engine

REQUEST_DEADLINE = 5.0  # seconds a client has for a whole request head: line and headers
WRITE_TIMEOUT = 5.0  # seconds each write of an answer may block on a client that does not read
MAX_CONNECTIONS = 64  # connections served at once, a thread each; more get a 503 at once
MAX_REQUEST_LINE = 8192  # bytes; longer is 414
MAX_HEADER_BYTES = 16384  # all header lines together; more is 431
POLL_INTERVAL = 0.1  # serve_forever's shutdown check: bounds how long stop() waits
PAGE = Path(__file__).with_name("page.html")
FALLBACK_PAGE = (b"<!doctype html><html><head><meta charset='utf-8'><title>hqemu status</title></head>"
                 b"<body><h1>hqemu status</h1><ul><li><a href='/status'>/status</a> (JSON)</li>"
                 b"<li><a href='/traces'>/traces</a> (JSON)</li><li><a href='/metrics'>/metrics</a> "
                 b"(Prometheus)</li></ul></body></html>\n")


_BUSY_BODY = b'{"error": "too many connections", "status": 503}\n'
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nServer: hqemu-status\r\n"
        b"Content-Type: application/json; charset=utf-8\r\nContent-Length: %d\r\nRetry-After: 1\r\n"
        b"Connection: close\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))


class _DeadlineReader(io.RawIOBase):
    """The connection's reads, each bounded by what is left of one deadline for the request
    (a socket timeout alone is per read: one byte every 3 s would hold the thread forever)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.deadline = math.inf
        self.received = 0  # bytes since the deadline was set
        self.expired = False

    def readable(self) -> bool:
        return True

    def start(self, seconds: float) -> None:
        self.deadline, self.received, self.expired = time.monotonic() + seconds, 0, False

    def readinto(self, b: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.expired = True
            raise TimeoutError("request deadline passed")
        self.sock.settimeout(left)
        try:
            n = self.sock.recv_into(b)
        except TimeoutError:
            self.expired = True
            raise
        self.received += n
        return n


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a request thread never keeps the process alive
    block_on_close = False
    request_queue_size = 1024  # a burst of connections waits in the backlog instead of a SYN retry
    # SO_REUSEADDR: a restart may take a port whose old connections are in TIME_WAIT; a port
    # another socket listens on is still EADDRINUSE on Linux (that would take SO_REUSEPORT)
    allow_reuse_address = True
    snapshots: Snapshots
    max_connections = MAX_CONNECTIONS

    def server_activate(self) -> None:
        self.active = 0  # connections being served (each has its thread)
        self._active_lock = threading.Lock()
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        """On the accepting thread: a thread for the connection, or a 503 if all are taken."""
        with self._active_lock:
            full = self.active >= self.max_connections
            if not full:
                self.active += 1
        if full:
            try:
                request.setblocking(False)  # the answer fits the send buffer; never wait for a client
                request.send(BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started (cannot start a new thread)
            self._done()
            self.shutdown_request(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done()

    def _done(self) -> None:
        with self._active_lock:
            self.active -= 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away; printing would change the guest's stderr


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = WRITE_TIMEOUT  # StreamRequestHandler puts it on the socket; reads set their own

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the stdlib's reader: reads go through the deadline instead
        self._reader = _DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        """One request; its head (line and headers) must arrive within REQUEST_DEADLINE."""
        self._reader.start(REQUEST_DEADLINE)
        # what send_error and log_request read, in case the request line never parses
        self.command, self.requestline, self.request_version = "", "", "HTTP/1.1"
        super().handle_one_request()  # a timeout there only closes the connection
        if self._reader.expired:
            self.close_connection = True
            if self._reader.received:  # a client that started a request learns why it ends
                self.send_error(HTTPStatus.REQUEST_TIMEOUT, f"request head not received within "
                                f"{REQUEST_DEADLINE:g} s")

    def end_headers(self) -> None:
        self.connection.settimeout(WRITE_TIMEOUT)  # the reads left a shorter timeout on the socket
        super().end_headers()

    def version_string(self) -> str:
        return "hqemu-status"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # silent: stderr belongs to the guest

    # --- request parsing: the stdlib's (64 KiB per line, 100 headers), tighter caps, JSON errors ---
    def parse_request(self) -> bool:
        if len(self.raw_requestline) > MAX_REQUEST_LINE:
            self.command, self.request_version = "", "HTTP/1.0"
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG, "request line too long")
            return False
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":  # a line without a version: no status line, no headers
            self.send_error(HTTPStatus.BAD_REQUEST, "HTTP/0.9 requests are not supported")
            return False
        size = sum(len(k) + len(v) + 4 for k, v in self.headers.items())
        if size > MAX_HEADER_BYTES:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request headers too large")
            return False
        if self.command not in ("GET", "HEAD"):
            self.send_error(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not allowed: the endpoint is "
                            "read-only (GET, HEAD)")
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        status = HTTPStatus(code)
        body = _json({"error": message or status.phrase, "status": int(status)})
        self.close_connection = True  # the rest of a bad request is not worth reading
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # else send_response writes no status line
        try:
            self.send_response(code, status.phrase)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            if code == HTTPStatus.METHOD_NOT_ALLOWED:
                self.send_header("Allow", "GET, HEAD")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass

    # --- the endpoints ----------------------------------------------------------------------
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        snaps = self.server.snapshots
        try:
            if path == "/":
                self._send(200, "text/html; charset=utf-8", _page())
            elif path == "/status":
                self._send(200, "application/json; charset=utf-8", _json(snaps.status()))
            elif path == "/traces":
                rows = snaps.traces()
                try:
                    query = parse_qs(url.query, keep_blank_values=True, strict_parsing=bool(url.query))
                    body = select(rows, query)
                except ValueError as e:
                    self.send_error(HTTPStatus.BAD_REQUEST, str(e))
                    return
                self._send(200, "application/json; charset=utf-8", _json(body))
            elif path == "/metrics":
                text = render(snaps.status(), snaps.stage_seconds())
                self._send(200, METRICS_TYPE, text.encode())
            else:
                self.send_error(HTTPStatus.NOT_FOUND, f"no such path {url.path!r} (try /, /status, /traces, "
                                "/metrics)")
        except (OSError, TimeoutError):
            self.close_connection = True
        except Exception as e:  # a bug of ours: the guest runs on, the client learns what
            self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(e).__name__}: {e}")

    do_HEAD = do_GET  # _send and send_error leave the body out for HEAD

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True).encode() + b"\n"


def _page() -> bytes:
    try:
        return PAGE.read_bytes()
    except OSError:
        return FALLBACK_PAGE


class StatusServer:
    def __init__(self, bind: str = "127.0.0.1", port: int = 0):
        cls = _Server
        if ":" in bind:  # an IPv6 address
            cls = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
        try:
            self.httpd = cls((bind, port), _Handler, bind_and_activate=True)
        except OSError as e:
            raise HqemuError(f"status endpoint: cannot listen on {bind} port {port}: "
                             f"{e.strerror or e}") from None
        self.bind = bind
        self.port = self.httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"http://{host}:{self.port}/"

    def start(self, engine: Engine, max_age: float = 0.1) -> None:
        self.httpd.snapshots = Snapshots(engine, max_age)
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(POLL_INTERVAL,),
                                        name="hqemu-status", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting and close the socket; requests in flight end with the process."""
        if self._thread is not None:
            self.httpd.shutdown()  # returns within POLL_INTERVAL
            self._thread = None
        self.httpd.server_close()
