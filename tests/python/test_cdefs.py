"""test_cdefs.py — the declarations cffi reads are the header's: every
PS_EXTERN function of <psd/psworker.h> and <psd/errors.h> is callable
through psd.lib, and the error codes match ps_err_name."""
import os
import re

from conftest import SOURCE


def test_every_exported_function_is_declared(psd_pkg):
    psd = psd_pkg
    names = []
    for h in ("psworker.h", "psd_errors.h"):
        with open(os.path.join(SOURCE, "worker", h)) as f:
            text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
        names += re.findall(r"^PS_EXTERN\b[^;(]*?\b(\w+)\s*\(", text, flags=re.M)
    assert len(names) > 30
    for n in names:
        assert hasattr(psd.lib, n), n


def test_error_codes_match_the_library(psd_pkg):
    psd = psd_pkg
    from psd import _cdefs
    assert len(_cdefs.ERRORS) >= 26
    for name, code in _cdefs.ERRORS.items():
        assert psd.ffi.string(psd.lib.ps_err_name(code)).decode() == name
    assert psd.__version__ == _cdefs.CONSTANTS["PSD_VERSION_STRING"]
