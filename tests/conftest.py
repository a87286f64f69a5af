"""Fixtures shared by all tests."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Committed tiny fixtures (written by scripts/make_fixtures.py).
TEST_DATA = REPO_ROOT / "tests" / "data"
#: Real public data kept beside the repository (never inside it); absent on users' machines.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder beside the repository; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available ({SHARED_DATA} is absent)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def test_data() -> Path:
    """The repository's committed fixture folder, tests/data."""
    return TEST_DATA
