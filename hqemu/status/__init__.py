"""The status endpoint (issue 5): live figures of a running guest over HTTP, and its client.

    $ hqemu --status-port 0 ./prog          # prints: hqemu: status endpoint at http://127.0.0.1:PORT/
    $ hqemu status PORT                     # a table of the figures, from another terminal
    $ curl -s http://127.0.0.1:PORT/status  # JSON; also /traces, /metrics (Prometheus) and / (a page)

Modules: server.py (the HTTP server, its safety caps), snapshot.py (consistent copies of the
engine's records, cached for 100 ms; the /traces rows and their query), metrics.py (the
Prometheus text), client.py (`hqemu status`). This package only reads what hqemu.runtime,
hqemu.trace and hqemu.native record; only runtime/process.py and cli.py import it.
docs/status.md documents every field. Nothing is imported here: the client must not pay for
the server's imports (import hqemu.status.server for StatusServer).
"""
