"""Fixtures shared by every test file, and the native kernel built once per run.

The native C++ kernel is built (or loaded from its cache) once, at session start, before
collection. Where it cannot be built its tests skip, naming why; with
``GRUKIT_REQUIRE_NATIVE=1`` in the environment (``.ci/run`` sets it) the run fails
instead, with the build's failure and compiler output, so CI always tests the default path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import ModuleType

import pytest
import torch

from grukit.backends.native import build

REQUIRE_NATIVE = os.environ.get("GRUKIT_REQUIRE_NATIVE", "").strip().lower() in ("1", "true", "yes")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Build the native kernel once; with GRUKIT_REQUIRE_NATIVE=1, fail the run if it can't."""
    if build.load() is None and REQUIRE_NATIVE:
        log = (build.failure_log() or "").strip().splitlines()
        detail = "\n".join(log[-40:]) if len(log) > 1 else ""
        pytest.exit(
            "GRUKIT_REQUIRE_NATIVE=1, but the native kernel is unavailable: "
            f"{build.failure()}" + (f"\n{detail}" if detail else ""),
            returncode=pytest.ExitCode.TESTS_FAILED,
        )


@pytest.fixture(scope="session")
def native_kernel() -> ModuleType:
    """The compiled native kernel (built at session start); skips the test, naming why,
    where it is unavailable."""
    ext = build.load()
    if ext is None:
        pytest.skip(f"no native kernel: {build.failure()}")
    return ext


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for the test, the count restored after it (also where the code
    under test sets its own, as the CLI does): the problems are tiny, and on a shared 2-core
    machine OpenMP's waits make them many times slower. Results do not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same global torch seed."""
    torch.manual_seed(0)


@pytest.fixture
def two_threads() -> Iterator[None]:
    """Two torch threads for the test (the native loops' row split and bidirectional pair
    need at least two), the count restored after it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)
