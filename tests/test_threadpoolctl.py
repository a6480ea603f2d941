"""threadpoolctl sees and limits elman's threads, whether it is imported before or after
elman (or reloaded, or imported by another thread at the same time), and `import elman`
alone neither imports it nor changes the environment (its import sets
KMP_DUPLICATE_LIB_OK)."""

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
    for most in (10**6, 2**31, 2**32 + 1):  # C symbols cannot raise: clamped (not wrapped to 1)
        with threadpoolctl.threadpool_limits(most, user_api="elman"):
            assert elman.get_num_threads() == MOST_THREADS


def run_python(code: str, pythonpath=None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "KMP_DUPLICATE_LIB_OK"}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stderr


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

# reload runs the module afresh, which forgets registered controllers
IMPORT_ORDERS = {
    "elman first": "import elman, threadpoolctl",
    "threadpoolctl first": "import threadpoolctl, elman",
    "from-import after elman": """
        import elman
        from threadpoolctl import threadpool_limits
        import threadpoolctl""",
    "elman first, reloaded": "import elman, threadpoolctl, importlib; threadpoolctl = importlib.reload(threadpoolctl)",
    "threadpoolctl first, reloaded": """
        import threadpoolctl, elman, importlib
        threadpoolctl = importlib.reload(threadpoolctl)""",
    "threadpoolctl first, imported again": """
        import sys, threadpoolctl, elman
        del sys.modules["threadpoolctl"]
        import threadpoolctl""",
    "elman imported twice": """
        import sys, threadpoolctl, elman
        del sys.modules["elman"]
        import elman""",
    # A finder that asks every finder, this one too, must not make them ask each other forever.
    "a greedy finder after elman's": """
        import sys, elman
        class Greedy:
            def find_spec(self, name, path, target=None):
                if name != "threadpoolctl":
                    return None
                for f in sys.meta_path:
                    spec = f.find_spec(name, path, target) if f is not self and hasattr(f, "find_spec") else None
                    if spec is not None:
                        return spec
        sys.meta_path.insert(1, Greedy())
        import threadpoolctl""",
}


@pytest.mark.parametrize("order", IMPORT_ORDERS)
def test_threadpoolctl_sees_elman_in_any_import_order(order):
    pytest.importorskip("threadpoolctl", minversion="3.5")
    run_python(textwrap.dedent(IMPORT_ORDERS[order]) + textwrap.dedent(CHECK_REGISTERED))


def test_the_wrapped_loader_copies_and_reads_source():
    pytest.importorskip("threadpoolctl", minversion="3.5")
    run_python("""
        import copy, inspect, elman, threadpoolctl
        assert copy.copy(threadpoolctl.__loader__).get_filename() == threadpoolctl.__file__
        assert "threadpool_limits" in inspect.getsource(threadpoolctl)
    """)


def test_threadpoolctl_before_3_2_still_imports(tmp_path):
    # threadpoolctl before 3.2 has no register(): elman goes unseen, and nothing fails
    # (import elman raised AttributeError with 3.0 and 3.1 installed).
    (tmp_path / "threadpoolctl.py").write_text("class LibController:\n    pass\nimported = True\n")
    run_python("""
        import elman, threadpoolctl
        assert threadpoolctl.imported and not hasattr(threadpoolctl, "register")
    """, pythonpath=tmp_path)


def test_a_failing_register_warns_and_the_import_goes_on(tmp_path):
    (tmp_path / "threadpoolctl.py").write_text(
        "class LibController:\n    pass\ndef register(controller):\n    raise RuntimeError('no')\n")
    stderr = run_python("import elman, threadpoolctl", pythonpath=tmp_path)
    assert "elman could not register its threads with threadpoolctl: RuntimeError('no')" in stderr


def test_threadpoolctl_being_imported_by_another_thread(tmp_path):
    # import elman while another thread runs threadpoolctl's module: elman waits for it,
    # then registers once (before, it could find no register() yet, or half a module).
    (tmp_path / "threadpoolctl.py").write_text(textwrap.dedent("""
        import time
        started = True
        time.sleep(0.5)
        class LibController:
            pass
        registered = []
        def register(controller):
            registered.append(controller)
    """))
    run_python("""
        import sys, threading, time
        thread = threading.Thread(target=__import__, args=("threadpoolctl",))
        thread.start()
        while getattr(sys.modules.get("threadpoolctl"), "started", False) is False:
            time.sleep(0.001)
        import elman, threadpoolctl
        thread.join()
        assert [c.user_api for c in threadpoolctl.registered] == ["elman"], threadpoolctl.registered
    """, pythonpath=tmp_path)


def test_threadpoolctl_failing_in_another_thread_does_not_break_import_elman(tmp_path):
    (tmp_path / "threadpoolctl.py").write_text(
        "import time\nstarted = True\ntime.sleep(0.5)\nraise ImportError('broken')\n")
    run_python("""
        import sys, threading, time
        thread = threading.Thread(target=lambda: __import__("threadpoolctl"))
        thread.start()
        while getattr(sys.modules.get("threadpoolctl"), "started", False) is False:
            time.sleep(0.001)
        import elman
        thread.join()
    """, pythonpath=tmp_path)


def test_the_finder_asks_only_the_finders_after_it():
    pytest.importorskip("threadpoolctl", minversion="3.5")
    run_python("""
        import sys, elman
        finder = next(f for f in sys.meta_path if getattr(f, "registers_elman", False))
        class Before:
            asked = 0
            def find_spec(self, name, path, target=None):
                Before.asked += 1
        sys.meta_path.insert(sys.meta_path.index(finder), Before())
        assert finder.find_spec("threadpoolctl", None) is not None and Before.asked == 0
        sys.meta_path.remove(finder)  # asked through a stale reference: finds nothing
        assert finder.find_spec("threadpoolctl", None) is None
    """)


def test_blocked_threadpoolctl_does_not_break_import_elman():
    run_python("""
        import sys
        sys.modules["threadpoolctl"] = None
        import elman
    """)


def test_registered_once_per_run_of_threadpoolctl(tmp_path):
    (tmp_path / "threadpoolctl.py").write_text(
        "class LibController:\n    pass\nregistered = []\ndef register(controller):\n"
        "    registered.append(controller)\n")
    run_python("""
        import importlib, sys, threadpoolctl, elman
        del sys.modules["elman"]
        import elman
        assert len(threadpoolctl.registered) == 1, threadpoolctl.registered
        threadpoolctl = importlib.reload(threadpoolctl)  # a new registered list, and register()
        assert len(threadpoolctl.registered) == 1, threadpoolctl.registered
    """, pythonpath=tmp_path)
