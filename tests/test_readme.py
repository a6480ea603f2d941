"""The README's API and interop tours run as written (so the README stays true)."""

import os
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_first_python_block(heading):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index(heading):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, f"README.md ({heading})", "exec"), {})


def test_api_tour_runs():
    run_first_python_block("## API tour")


# Keras's variables warn under NumPy 2 when converted; not ours to fix (as test_interop_keras).
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_interop_tour_runs(tmp_path, monkeypatch):
    if "KERAS_BACKEND" not in os.environ:
        monkeypatch.setenv("KERAS_BACKEND", "jax")  # as the interop tests (no TensorFlow here)
    for module in ("torch", "keras", "onnx"):
        pytest.importorskip(module, reason=f"the interop tour needs {module}")
    monkeypatch.chdir(tmp_path)  # it writes model.onnx and layer.npz
    run_first_python_block("## Interop")
