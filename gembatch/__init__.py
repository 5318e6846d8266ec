"""gembatch: push a whole dataframe through the Gemini Batch API at batch price, from one call.

>>> import polars as pl, gembatch
>>> # out = df.gemini.batch_generate("prompt", config=gembatch.Config(model="gemini-2.5-flash"))

Importing gembatch registers the ``gemini`` namespace on ``polars.DataFrame`` and ``polars.LazyFrame``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .api import batch_embed, batch_generate, batch_generate_parquet
from .backend import RetryPolicy
from .config import Config, EmbedConfig
from .exceptions import (
    AuthenticationError,
    ColumnNotFoundError,
    ConfigError,
    CorruptRunError,
    CostLimitError,
    DuplicateKeyError,
    GembatchError,
    InputError,
    InvalidPromptError,
    RequestTooLargeError,
    ResultWarning,
    RunDirectoryError,
    RunLockedError,
    RunMismatchError,
    ServiceError,
    TerminalServiceError,
    TransientServiceError,
)
from .namespace import register as _register
from .prepare import Options
from .progress import NullProgress, Progress, Snapshot, TqdmProgress
from .requests import MediaParts
from .run import BatchRun, RunStatus

_register()

__all__ = [
    "AuthenticationError",
    "BatchRun",
    "ColumnNotFoundError",
    "Config",
    "ConfigError",
    "CorruptRunError",
    "CostLimitError",
    "DuplicateKeyError",
    "EmbedConfig",
    "GembatchError",
    "InputError",
    "InvalidPromptError",
    "MediaParts",
    "NullProgress",
    "Options",
    "Progress",
    "RequestTooLargeError",
    "ResultWarning",
    "RetryPolicy",
    "RunDirectoryError",
    "RunLockedError",
    "RunMismatchError",
    "RunStatus",
    "ServiceError",
    "Snapshot",
    "TerminalServiceError",
    "TqdmProgress",
    "TransientServiceError",
    "__version__",
    "batch_embed",
    "batch_generate",
    "batch_generate_parquet",
]
