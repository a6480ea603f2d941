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


def test_installed_framework_that_fails_to_import_says_why(monkeypatch):
    """Keras installed without its backend (tensorflow by default) was reported as 'needs
    keras (pip install keras)'; the message now gives the failure and, for Keras, the
    backend. A stand-in module whose import fails as Keras's does shows it."""
    import importlib

    def failing_import(name, *args, **kwargs):
        if name in ("keras", "torch", "onnx"):
            raise ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")
        return real_import(name, *args, **kwargs)

    real_import = importlib.import_module
    monkeypatch.setattr(importlib, "import_module", failing_import)
    with pytest.raises(ImportError, match="^elman's Keras interop could not import keras, which is "
                                          "installed: No module named 'tensorflow'; Keras runs on "
                                          "the backend that KERAS_BACKEND"):
        elman.from_keras(object())
    with pytest.raises(ImportError, match="^elman's PyTorch interop could not import torch, which "
                                          "is installed: No module named 'tensorflow'$"):
        elman.from_torch(object())


def test_installed_framework_with_a_failing_import_inside_is_not_called_missing(monkeypatch):
    """"cannot import name X from keras" (an ImportError inside an installed package) names
    keras too, but is no ModuleNotFoundError: not reported as 'pip install keras'."""
    import importlib

    def failing_import(name, *args, **kwargs):
        raise ImportError(f"cannot import name 'backend' from partially initialized module {name!r}", name=name)

    monkeypatch.setattr(importlib, "import_module", failing_import)
    with pytest.raises(ImportError, match="^elman's ONNX model interop could not import onnx, which is "
                                          "installed: cannot import name 'backend'"):
        elman.from_onnx("model.onnx")


def test_onnx_operator_needs_no_framework(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)
    Y, Y_h = elman.onnx.rnn(np.ones((2, 1, 3)), np.zeros((1, 4, 3)), np.zeros((1, 4, 4)))
    assert Y.shape == (2, 1, 1, 4) and np.all(Y == 0)
