"""The package ships py.typed: mypy checks code that uses elman, and elman's own code,
without errors, and the public signatures' types catch a wrong argument. Before _core.pyi,
mypy could not resolve the compiled module and stopped with an internal error on any file
that imported elman."""

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("mypy", reason="mypy is not installed (it is in the test extras)")

USER_CODE = textwrap.dedent("""
    import numpy as np
    import elman

    layer = elman.RNN(8, 16, num_layers=2)
    x = np.zeros((5, 3, 8), np.float32)
    y, h_n = layer(x)
    stream = layer.stream(batch_size=3)
    n: int = elman.get_num_threads()
    reveal_type(layer)
""")


def mypy(*args):
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--ignore-missing-imports",
                           *args], capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout + done.stderr


def test_user_code_type_checks(tmp_path):
    path = tmp_path / "user.py"
    path.write_text(USER_CODE)
    code, out = mypy(str(path))
    assert code == 0, out
    assert 'Revealed type is "elman._layer.RNN"' in out


def test_package_type_checks():
    code, out = mypy("-p", "elman")
    assert code == 0, out


def test_wrong_argument_type_is_caught(tmp_path):
    path = tmp_path / "wrong.py"
    path.write_text("import elman\nelman.RNN('80', 256)\nelman.rnn([[[0.0]]], [[0.0]], [[0.0]], clip='1')\n")
    code, out = mypy(str(path))
    assert code == 1, out
    assert 'Argument 1 to "RNN" has incompatible type "str"; expected "int"' in out
    assert '"clip" to "rnn" has incompatible type "str"' in out
