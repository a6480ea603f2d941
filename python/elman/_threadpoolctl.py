"""Makes elman's thread pool visible to threadpoolctl, when threadpoolctl is used.

With it, ``threadpool_limits(n)`` limits elman as it limits BLAS and OpenMP, and
``threadpool_info()`` lists elman with its thread count (user_api "elman").

``import elman`` does not import threadpoolctl: importing it sets KMP_DUPLICATE_LIB_OK in
the process's environment (threadpoolctl's own choice), which a program that never uses
threadpoolctl should not get from elman. So elman registers with threadpoolctl when the
program imports it: at once if it already has, else right after its import runs, through
a finder on sys.meta_path that wraps threadpoolctl's loader.
"""

from __future__ import annotations

import ctypes
import sys


def register() -> None:
    """Registers elman with threadpoolctl now if it is imported, else when it is."""
    module = sys.modules.get("threadpoolctl")
    if module is not None:
        _register(module)
    elif not any(getattr(f, "registers_elman", False) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterOnImport())


class _RegisterOnImport:
    """A meta-path finder that finds nothing itself: for threadpoolctl it asks the finders
    after it and returns their spec with a loader that registers elman once the module has
    run (also on importlib.reload, which runs it afresh and so forgets controllers)."""

    registers_elman = True

    def find_spec(self, name, path, target=None):
        if name != "threadpoolctl":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _RegisterAfterExec(spec.loader)
                return spec
        return None


class _RegisterAfterExec:
    """Runs the module with the loader it wraps, then registers elman; everything else
    (get_source, resource readers, ...) is the wrapped loader's."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _register(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


def _register(threadpoolctl) -> None:
    if not hasattr(threadpoolctl, "register"):  # before 3.2: no third-party controllers
        return

    class ElmanController(threadpoolctl.LibController):
        user_api = "elman"
        internal_api = "elman"
        filename_prefixes = ("_core",)
        check_symbols = ("elman_get_num_threads", "elman_set_num_threads")

        def get_num_threads(self):
            get = getattr(self.dynlib, "elman_get_num_threads", None)
            return get() if get else None

        def set_num_threads(self, num_threads):
            set_ = getattr(self.dynlib, "elman_set_num_threads", None)
            if set_:
                set_(ctypes.c_int(int(num_threads)))

        def get_version(self):
            # Other libraries named _core*.so are probed too; only elman has the symbol.
            if getattr(self.dynlib, "elman_get_num_threads", None) is None:
                return None
            from . import __version__
            return __version__

    threadpoolctl.register(ElmanController)
