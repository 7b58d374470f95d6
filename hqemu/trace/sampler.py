"""A sampling profiler of native code: which trace the guest thread is in, every few milliseconds.

    >>> s = Sampler(tier.disp.sample_pc, interval=0.005)
    >>> s.start()                                # a daemon thread; idempotent
    >>> ...                                      # the guest runs
    >>> s.stop()
    >>> s.counts.most_common(3), s.python, s.total
    ([(0x401130, 812), (0x401160, 40), ...], 9, 861)

HQEMU merges traces by hardware samples mapped to traces (FACTS.md: 1 per million
instructions); these VMs expose no PMU, so a thread reads, at a fixed interval, the guest pc of
the unit the native dispatcher entered last (it stores that pc at every transition anyway:
ExitRecord.unit_pc). `read_pc()` returns that pc while the guest thread is inside native guest
code and a negative number otherwise; the negative samples are counted in `python` (the quick
tier, syscalls, the engine), the others in `counts`, keyed by the head pc of the trace (a trace
looping inside itself never comes back to the dispatcher, so its head is what is seen).

With read_edge, each native sample also reads the last indirect jump a unit took (its unit's
entry pc and its target: returns and calls through pointers, which no static exit shows):
trace merging adds those edges to its graph (`take_edges()`).

The sampler only reads: it cannot change the emulation. Its cost is one GIL acquisition per
sample: free while the guest thread runs native code (ctypes released the GIL), and while it
runs Python a pending sample waits for the interpreter's switch interval (5 ms), so samples
of Python time are late and rarer than the time spent there: `python` is a lower bound.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

DEFAULT_INTERVAL = 0.005  # seconds; 200 samples/s cost under 0.1% (measured in tests/test_sampler.py)


class Sampler:
    """Counts the native unit being run, by its guest pc, every `interval` seconds."""

    def __init__(self, read_pc: Callable[[], int], interval: float = DEFAULT_INTERVAL,
                 read_edge: Callable[[], tuple[int, int]] | None = None):
        if interval <= 0:
            raise ValueError("the sampling interval must be positive")
        self.read_pc = read_pc
        self.read_edge = read_edge  # (unit entry pc, target pc) of the last indirect jump, or None
        self.interval = interval
        self.counts: Counter[int] = Counter()  # guest pc of the unit entered -> samples
        self.edges: Counter[tuple[int, int]] = Counter()  # indirect edges seen, since take_edges()
        self.python = 0  # samples while the guest thread was not in native code
        self.total = 0  # all samples taken
        self._window_base: Counter[int] = Counter()  # the counts at the last take_window()
        self._lock = threading.Lock()  # snapshots from other threads see whole samples
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start sampling in a daemon thread (it never keeps the process alive)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="hqemu-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling; the counts stay. Another start() may follow."""
        t, self._thread = self._thread, None
        if t is not None:
            self._stop.set()
            t.join(timeout=1.0)

    def sample(self) -> None:
        """Take one sample now (the thread calls this; tests may too)."""
        pc = self.read_pc()
        edge = self.read_edge() if self.read_edge is not None and pc >= 0 else (0, 0)
        with self._lock:
            self.total += 1
            if pc < 0:
                self.python += 1
            else:
                self.counts[pc] += 1
            if edge[1]:
                self.edges[edge] += 1

    def _loop(self) -> None:
        wait, sample = self._stop.wait, self.sample
        while not wait(self.interval):
            sample()

    def snapshot(self) -> dict[int, int]:
        """A copy of the counts, safe to iterate while sampling goes on."""
        with self._lock:
            return dict(self.counts)

    def take_edges(self) -> dict[tuple[int, int], int]:
        """The indirect edges sampled since the last call (unit entry pc, target pc) -> samples."""
        with self._lock:
            out, self.edges = dict(self.edges), Counter()
            return out

    def take_window(self) -> dict[int, int]:
        """The counts since the last call, and start a new window (for trace merging's
        'seen in the last N windows' stability test)."""
        with self._lock:
            out = dict(self.counts - self._window_base)
            self._window_base = self.counts.copy()
            return out


__all__ = ["DEFAULT_INTERVAL", "Sampler"]
