"""Makes elman's thread pool visible to threadpoolctl, when threadpoolctl is installed.

With it, ``threadpool_limits(n)`` limits elman as it limits BLAS and OpenMP, and
``threadpool_info()`` lists elman with its thread count (user_api "elman").
"""

from __future__ import annotations

import ctypes


def register() -> None:
    try:
        import threadpoolctl
    except ImportError:
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
