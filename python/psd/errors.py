"""errors.py — every failure of the package is a psd.Error carrying the C
code (.code, a negative PS_E... value), its name (.name, "PS_ETIMEDOUT")
and the library's sentence (str(e), from ps_client_last_error or the
errbuf of ps_client_open_job)."""
import builtins

from ._lib import ffi, lib, _cdefs


class Error(Exception):
    """A libpsworker call failed: .code is the PS_E... code, .name its name,
    str() the sentence the library gave."""

    def __init__(self, code, message):
        self.code = code
        self.name = ffi.string(lib.ps_err_name(code)).decode()
        self.strerror = ffi.string(lib.ps_strerror(code)).decode()
        super().__init__(message or self.strerror)


class InvalidArgumentError(Error, ValueError):
    """PS_EINVAL: a buffer of the wrong size or type, keys out of order ..."""


class TimeoutError(Error, builtins.TimeoutError):
    """PS_ETIMEDOUT: a server did not answer within the job's deadline."""


class ConfigError(Error):
    """PS_ECONFIG, PS_EUNSUPPORTED: the job file (or a key file) is wrong."""


class JobError(Error):
    """PS_EJOB, PS_EVERSION: the servers serve another job or protocol."""


class RankError(Error):
    """PS_ESTATE, PS_EFULL, PS_EWORKER: the rank is taken or none is left."""


class StoppedError(Error):
    """PS_ESTOPPED, PS_EABORTED, PS_EDIVERGED: the job or its server stopped."""


class CompleteError(StoppedError):
    """PS_ECOMPLETE: the job is complete (every worker is done)."""


class RejoinedError(Error):
    """PS_EREJOINED (sync): a server lost this worker and took it back; go
    on from Client.rejoin_version."""


class InterruptedError(Error, builtins.InterruptedError):
    """PS_EINTR: a signal whose Python handler did not raise came during a
    push (which is not sent again on its own)."""


class ProtocolError(Error):
    """PS_EPROTO, PS_ETYPE, PS_EPAYLOAD, PS_EZMQ, PS_EIO, ...: the link."""


_BY_CODE = {}
for _cls, _names in [
    (InvalidArgumentError, ["EINVAL", "ERANGE"]),
    (TimeoutError, ["ETIMEDOUT"]),
    (ConfigError, ["ECONFIG", "EUNSUPPORTED", "EACCESS"]),
    (JobError, ["EJOB", "EVERSION"]),
    (RankError, ["ESTATE", "EFULL", "EWORKER"]),
    (StoppedError, ["ESTOPPED", "EABORTED", "EDIVERGED"]),
    (CompleteError, ["ECOMPLETE"]),
    (RejoinedError, ["EREJOINED"]),
    (InterruptedError, ["EINTR"]),
    (ProtocolError, ["EPROTO", "ETYPE", "EPAYLOAD", "EZMQ", "EIO", "EDATA", "ECLOCK",
                     "ESERVER", "ENOMEM"]),
]:
    for _n in _names:
        if "PS_" + _n in _cdefs.ERRORS:
            _BY_CODE[_cdefs.ERRORS["PS_" + _n]] = _cls


def error_for(code, message):
    """The psd.Error subclass instance for a C code."""
    return _BY_CODE.get(code, Error)(code, message)
