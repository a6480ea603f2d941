"""The suite tests the installed package, not the source tree; the oracle ships with it."""

import ast
import pathlib
import sysconfig

import numpy as np

import elman
from helpers import REFERENCE_PATH, ROOT, ref


def test_imported_from_site_packages():
    path = pathlib.Path(elman.__file__).resolve()
    site = {pathlib.Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    assert any(s in path.parents for s in site), f"elman imported from {path}, not site-packages"
    assert ROOT / "python" not in path.parents


def test_installed_reference_is_the_source_oracle():
    import elman.reference as installed
    assert pathlib.Path(installed.__file__).read_text() == REFERENCE_PATH.read_text()
    assert set(installed.ACTIVATIONS) == set(ref.ACTIVATIONS)


def test_oracle_imports_only_numpy():
    """The oracle must never import or call the compiled engine."""
    tree = ast.parse(REFERENCE_PATH.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import in reference.py"
            imported.add(node.module.split(".")[0])
    assert imported <= {"numpy", "math"}, imported


def test_public_api_present():
    for name in ("RNN", "rnn", "set_num_threads", "get_num_threads"):
        assert hasattr(elman, name), name
    y, h = elman.rnn(np.zeros((2, 1, 1), np.float32), np.ones((1, 1), np.float32), np.ones((1, 1), np.float32))
    assert y.shape == (2, 1, 1) and np.array_equal(y, np.zeros((2, 1, 1)))
