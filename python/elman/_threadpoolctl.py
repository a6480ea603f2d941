"""Makes elman's thread pool visible to threadpoolctl, when threadpoolctl is used.

With it, ``threadpool_limits(n)`` limits elman as it limits BLAS and OpenMP, and
``threadpool_info()`` lists elman with its thread count (user_api "elman").

``import elman`` does not import threadpoolctl: importing it sets KMP_DUPLICATE_LIB_OK in
the process's environment (threadpoolctl's own choice), which a program that never uses
threadpoolctl should not get from elman. So elman registers with threadpoolctl when the
program imports it: at once if it already has, and each time its module runs (an import,
or importlib.reload, which forgets controllers), through a finder on sys.meta_path that
wraps threadpoolctl's loader. A finder put before it later that gives threadpoolctl's spec
itself goes around it.
"""

from __future__ import annotations

import ctypes
import importlib
import sys
import threading
import warnings


def register() -> None:
    """Registers elman with threadpoolctl now if it is imported, and whenever it runs."""
    if not any(getattr(f, "registers_elman", False) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterOnImport())
    if sys.modules.get("threadpoolctl") is not None:  # None: its import is blocked
        # Imported, or being imported by another thread: this waits until it has run.
        # Should that import fail, this one tries again and fails too (or, were
        # threadpoolctl to import elman, finds the cycle): no registration, and no reason
        # for import elman to fail.
        try:
            module = importlib.import_module("threadpoolctl")
        except Exception:
            return
        _register(module)


class _RegisterOnImport:
    """A meta-path finder that finds nothing itself: for threadpoolctl it asks the finders
    after it and returns their spec with a loader that registers elman once the module has
    run."""

    registers_elman = True

    def __init__(self):
        self._finding = threading.local()  # a finder that asks all finders may ask this one back

    def find_spec(self, name, path, target=None):
        if name != "threadpoolctl" or getattr(self._finding, "now", False) or self not in sys.meta_path:
            return None
        self._finding.now = True
        try:
            for finder in sys.meta_path[sys.meta_path.index(self) + 1:]:
                spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
                if spec is not None:
                    if hasattr(spec.loader, "exec_module") and not isinstance(spec.loader, _RegisterAfterExec):
                        spec.loader = _RegisterAfterExec(spec.loader)
                    return spec
            return None
        finally:
            self._finding.now = False


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
        loader = self.__dict__.get("_loader")  # absent while copy or pickle rebuild this object
        if loader is None:
            raise AttributeError(name)
        return getattr(loader, name)


def _register(threadpoolctl) -> None:
    """Registers once per run of threadpoolctl's module (a reload makes a new register()).
    A failure is a warning: it must not break the import of threadpoolctl (scikit-learn's)."""
    register_ = getattr(threadpoolctl, "register", None)
    if register_ is None:  # before 3.2: no third-party controllers
        return
    if threadpoolctl.__dict__.get("_elman_registered_with") is register_:
        return
    try:
        register_(_controller(threadpoolctl))
    except Exception as e:
        warnings.warn(f"elman could not register its threads with threadpoolctl: {e!r}",
                      RuntimeWarning, stacklevel=2)
        return
    threadpoolctl._elman_registered_with = register_


def _controller(threadpoolctl):
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
                # Into int's range first (the C side clamps to [1, most]): c_int would wrap.
                set_(ctypes.c_int(max(-2**31, min(int(num_threads), 2**31 - 1))))

        def get_version(self):
            # Other libraries named _core*.so are probed too; only elman has the symbol.
            if getattr(self.dynlib, "elman_get_num_threads", None) is None:
                return None
            from . import __version__
            return __version__

    return ElmanController
