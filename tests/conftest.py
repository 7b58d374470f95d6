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
