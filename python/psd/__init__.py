"""psd — train against psd (a parameter server in C) from Python.

    import numpy as np, psd
    with psd.Client("job.yaml") as c:
        theta = c.pull()
        c.push(grad, samples=32)

The reference is docs/python.md."""
from ._lib import ffi, lib
from .client import Client, Tensor, Table
from .errors import (Error, InvalidArgumentError, TimeoutError, ConfigError, JobError,
                     RankError, StoppedError, CompleteError, RejoinedError, InterruptedError,
                     ProtocolError)
from .model import Model, load_model, save_model

__version__ = ffi.string(lib.ps_version()).decode()

__all__ = ["Client", "Tensor", "Table", "Error", "InvalidArgumentError", "TimeoutError",
           "ConfigError", "JobError", "RankError", "StoppedError", "CompleteError",
           "RejoinedError", "InterruptedError", "ProtocolError", "Model", "load_model",
           "save_model", "__version__"]
