"""Make tests/helpers.py importable whatever pytest's import mode; fixtures shared by test
files. Imports no engine at collection (a fixture imports elman when it runs)."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))


@pytest.fixture
def restore_threads():
    """Puts elman's thread count back after a test that changes it."""
    import elman
    before = elman.get_num_threads()
    yield
    elman.set_num_threads(before)
