"""Shared pytest set-up: the tests directory on sys.path (helper modules such as guestrun,
elfgen and x86oracle import by plain name) and the guest programs, built once per session.

    def test_x(guest):                      # guest(variant, name) -> Path, skips if unbuildable
        path = guest("x86_64-musl", "hello")
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

# The persistent caches (hqemu's code cache, the dispatcher's object) go to a directory of this
# session: tests never read a user's ~/.cache nor leave anything there. Runs in a clean_env()
# (HOME=/nonexistent) have no writable cache at all.
_CACHE_HOME = tempfile.mkdtemp(prefix="hqemu-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE_HOME
os.environ["HQEMU_CODE_CACHE"] = os.path.join(_CACHE_HOME, "hqemu", "code")
atexit.register(shutil.rmtree, _CACHE_HOME, True)

import guestrun  # noqa: E402  (needs the path above)


@pytest.fixture(scope="session")
def guest_build() -> None:
    """Runs `make guest` once (incremental); a failing build fails the tests that need it."""
    error = guestrun.build_guests()
    if error is not None:
        pytest.fail(error, pytrace=False)


@pytest.fixture
def guest(guest_build):
    """guest(variant, name): the path of a built guest program; skips when the variant's
    compiler is missing."""

    def get(variant: str, name: str) -> Path:
        why = guestrun.VARIANTS[variant].missing()
        if why is not None:
            pytest.skip(f"variant {variant}: {why}")
        path = guestrun.binary(variant, name)
        if not path.exists():
            pytest.fail(f"{path} was not built by `make guest`", pytrace=False)
        return path

    return get


# --- differential case counts (issue 3): how many cases each instruction family ran -----------
# (test module, its Counter of cases per form, the family it reports under); the modules are
# read after the session, so a counter of a module that did not run is simply absent
DIFF_COUNTERS = (("test_x86_int", "RAN", "integer"), ("test_x86_int", "SEQ_RAN", "integer sequences"),
                 ("test_x86_sse", "CASE_COUNT", "sse"),
                 ("test_x86_mxcsr", "CASE_COUNT", "sse mxcsr"),
                 ("test_x87", "CASE_COUNT", "x87"), ("test_x87_transcendental", "CASE_COUNT", "x87"))
# the documented exceptions (tests/known_differences.py) report how often each was applied
DIFF_COUNTS_FILE = TESTS.parent / "build" / "test-artifacts" / "diff-counts.json"


def diff_counts() -> dict:
    """{family: {"cases": n, "forms": {form: n}}, "known differences": {name: {form: n}}} from the
    counters."""
    out: dict = {}
    for module, attr, family in DIFF_COUNTERS:
        counter = getattr(sys.modules.get(module), attr, None)
        if not counter:
            continue
        entry = out.setdefault(family, {"cases": 0, "forms": {}})
        for form, n in counter.items():
            entry["forms"][form] = entry["forms"].get(form, 0) + n
            entry["cases"] += n
    kd = sys.modules.get("known_differences")
    if out:
        out["known differences"] = kd.report() if kd is not None else {}
    return out


def _merge_counts(into: dict, more: dict) -> None:
    for family, v in more.items():
        if family == "known differences":
            known = into.setdefault(family, {})
            for what, forms in v.items():
                have = known.setdefault(what, {})
                for form, n in forms.items():
                    have[form] = have.get(form, 0) + n
            continue
        entry = into.setdefault(family, {"cases": 0, "forms": {}})
        entry["cases"] += v["cases"]
        for form, n in v["forms"].items():
            entry["forms"][form] = entry["forms"].get(form, 0) + n


_WORKER_COUNTS: list[dict] = []  # pytest-xdist: the counts each worker process sent back


def pytest_sessionfinish(session) -> None:
    out = getattr(session.config, "workeroutput", None)
    if out is not None:  # an xdist worker: its counters live here, the summary is the controller's
        out["diff_counts"] = diff_counts()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    counts = getattr(node, "workeroutput", {}).get("diff_counts")
    if counts:
        _WORKER_COUNTS.append(counts)


def pytest_terminal_summary(terminalreporter) -> None:
    counts = diff_counts()
    for more in _WORKER_COUNTS:
        _merge_counts(counts, more)
    if not counts:
        return
    import json

    import known_differences

    known = counts.get("known differences", {})
    counts["known difference reasons"] = {name: known_differences.KNOWN[name].reason for name in known}
    DIFF_COUNTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    DIFF_COUNTS_FILE.write_text(json.dumps(counts, indent=1, sort_keys=True) + "\n")
    line = ", ".join(f"{family} {v['cases']} ({len(v['forms'])} forms)"
                     for family, v in sorted(counts.items()) if not family.startswith("known difference"))
    where = DIFF_COUNTS_FILE.relative_to(TESTS.parent)
    terminalreporter.write_line(f"differential cases: {line}; written to {where}")
    if known:
        applied = ", ".join(f"{name} {sum(forms.values())}" for name, forms in sorted(known.items()))
        terminalreporter.write_line(f"known differences applied (tests/known_differences.py): {applied}")
