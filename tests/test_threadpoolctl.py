"""threadpoolctl sees and limits elman's threads, whether it is imported before or after
elman, and `import elman` alone neither imports it nor changes the environment (its
import sets KMP_DUPLICATE_LIB_OK)."""

import os
import subprocess
import sys
import textwrap

import pytest

import elman
from helpers import MOST_THREADS


def test_threadpoolctl_limits_elman(restore_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl", minversion="3.5")
    elman.set_num_threads(2)
    info = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "elman"]
    assert len(info) == 1 and info[0]["num_threads"] == 2
    with threadpoolctl.threadpool_limits(1):
        assert elman.get_num_threads() == 1
    assert elman.get_num_threads() == 2
    with threadpoolctl.threadpool_limits(1, user_api="elman"):
        assert elman.get_num_threads() == 1
    with threadpoolctl.threadpool_limits(10**6, user_api="elman"):  # C symbols cannot raise: clamped
        assert elman.get_num_threads() == MOST_THREADS


def run_python(code: str, pythonpath=None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KMP_DUPLICATE_LIB_OK"}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_import_elman_leaves_threadpoolctl_and_the_environment_alone():
    run_python("""
        import os, sys
        before = dict(os.environ)
        import elman
        assert "threadpoolctl" not in sys.modules
        assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())
    """)


CHECK_REGISTERED = """
    info = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "elman"]
    assert len(info) == 1, info
    elman.set_num_threads(2)
    with threadpoolctl.threadpool_limits(1, user_api="elman"):
        assert elman.get_num_threads() == 1
    assert elman.get_num_threads() == 2
"""

IMPORT_ORDERS = {
    "elman first": "import elman, threadpoolctl",
    "threadpoolctl first": "import threadpoolctl, elman",
    "from-import after elman": """
        import elman
        from threadpoolctl import threadpool_limits
        import threadpoolctl""",
    # reload runs the module afresh, which forgets registered controllers
    "reloaded": "import elman, threadpoolctl, importlib; threadpoolctl = importlib.reload(threadpoolctl)",
    "elman imported twice": """
        import sys, elman
        del sys.modules["elman"]
        import elman, threadpoolctl""",
}


@pytest.mark.parametrize("order", IMPORT_ORDERS)
def test_threadpoolctl_sees_elman_in_any_import_order(order):
    pytest.importorskip("threadpoolctl", minversion="3.5")
    run_python(textwrap.dedent(IMPORT_ORDERS[order]) + textwrap.dedent(CHECK_REGISTERED))


def test_threadpoolctl_before_3_2_still_imports(tmp_path):
    # threadpoolctl before 3.2 has no register(): elman goes unseen, and nothing fails
    # (import elman raised AttributeError with 3.0 and 3.1 installed).
    (tmp_path / "threadpoolctl.py").write_text("class LibController:\n    pass\nimported = True\n")
    run_python("""
        import elman, threadpoolctl
        assert threadpoolctl.imported and not hasattr(threadpoolctl, "register")
        import inspect; assert "LibController" in inspect.getsource(threadpoolctl)
    """, pythonpath=tmp_path)
