"""_lib.py — libpsworker through cffi in ABI mode: ffi.dlopen of
libpsworker.so.1 with the declarations of <psd/psworker.h> (_cdefs.py,
generated from the header at build time). No compiler is needed where the
package is installed, and no signature is typed a second time here."""
import os

import cffi

from . import _cdefs

try:
    from . import _config
except ImportError:  # a copy of the package without its build's _config.py
    _config = None

ffi = cffi.FFI()
ffi.cdef(_cdefs.CDEF)


def _library_path():
    """$PSD_LIBRARY, else the library of the build or install this package
    came with (_config.LIBRARY), else the soname for the dynamic loader."""
    env = os.environ.get("PSD_LIBRARY")
    if env:
        return env
    path = getattr(_config, "LIBRARY", None)
    if path and os.path.exists(path):
        return path
    return "libpsworker.so.1"


lib = ffi.dlopen(_library_path())
CONSTANTS = _cdefs.CONSTANTS
