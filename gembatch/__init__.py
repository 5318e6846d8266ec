"""gembatch: push a whole dataframe through the Gemini Batch API at batch price, from one call.

>>> import polars as pl, gembatch
>>> # out = df.gemini.batch_generate("prompt", config=gembatch.Config(model="gemini-2.5-flash"))

Importing gembatch registers the ``gemini`` namespace on ``polars.DataFrame`` and ``polars.LazyFrame``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import cache
from .api import batch_embed, batch_generate, batch_generate_parquet, estimate, plan
from .cache import ResultCache
from .config import Config, EmbedConfig, Options, RetryPolicy
from ._money.estimate import Estimate
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
    PilotFailedError,
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
from ._money.plan import Plan
from ._money.pricing import Cost, PriceTable, TokenCounts
from .progress import NullProgress, Progress, Snapshot, TqdmProgress
from ._money.report import RunCost
from ._build.lines import MediaParts
from .handle import BatchRun, RunStatus

_register()

__all__ = [
    "AuthenticationError",
    "BatchRun",
    "ColumnNotFoundError",
    "Config",
    "ConfigError",
    "CorruptRunError",
    "Cost",
    "CostLimitError",
    "DuplicateKeyError",
    "EmbedConfig",
    "Estimate",
    "GembatchError",
    "InputError",
    "InvalidPromptError",
    "MediaParts",
    "NullProgress",
    "Options",
    "PilotFailedError",
    "Plan",
    "PriceTable",
    "Progress",
    "RequestTooLargeError",
    "ResultCache",
    "ResultWarning",
    "RetryPolicy",
    "RunCost",
    "RunDirectoryError",
    "RunLockedError",
    "RunMismatchError",
    "RunStatus",
    "ServiceError",
    "Snapshot",
    "TerminalServiceError",
    "TokenCounts",
    "TqdmProgress",
    "TransientServiceError",
    "__version__",
    "batch_embed",
    "batch_generate",
    "batch_generate_parquet",
    "cache",
    "estimate",
    "plan",
]
