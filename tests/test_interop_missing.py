"""Without the framework installed, each interop entry point raises a clear ImportError
(simulated: a None entry in sys.modules makes `import name` fail)."""

import numpy as np
import pytest

import elman


@pytest.mark.parametrize("module,call", [
    ("torch", lambda: elman.from_torch(object())),
    ("torch", lambda: elman.RNN(2, 3).to_torch()),
    ("keras", lambda: elman.from_keras(object())),
    ("onnx", lambda: elman.from_onnx("model.onnx")),
    ("onnx", lambda: elman.RNN(2, 3).to_onnx()),
])
def test_missing_framework(module, call, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, module, None)
    with pytest.raises(ImportError, match=f"needs {module} \\(pip install {module}\\)"):
        call()


def test_onnx_operator_needs_no_framework(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)
    Y, Y_h = elman.onnx.rnn(np.ones((2, 1, 3)), np.zeros((1, 4, 3)), np.zeros((1, 4, 4)))
    assert Y.shape == (2, 1, 1, 4) and np.all(Y == 0)
