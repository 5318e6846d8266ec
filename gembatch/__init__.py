"""gembatch: push a whole dataframe through the Gemini Batch API at batch price, from one call.

>>> import polars as pl, gembatch
>>> gembatch.Config(model="gemini-2.5-flash").model_name
'models/gemini-2.5-flash'

Importing gembatch registers the ``gemini`` namespace on ``polars.DataFrame`` and
``polars.LazyFrame`` (and on pandas DataFrames when pandas is imported). It does not import the
google-genai SDK, which loads the first time the service is called; ``gembatch.emulator`` loads when
first used.
"""

from __future__ import annotations

import logging as _logging
from typing import Any

__version__ = "0.2.0"

from . import cache
from ._build.lines import MediaParts
from ._money.estimate import Estimate
from ._money.plan import Plan
from ._money.pricing import Cost, PriceTable, TokenCounts
from ._money.report import RunCost
from .api import batch_embed, batch_generate, batch_generate_parquet, estimate, plan
from .cache import ResultCache
from .config import Config, EmbedConfig, Options, RetryPolicy
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
    RunNotFinishedError,
    ServiceError,
    TerminalServiceError,
    TransientServiceError,
)
from .handle import BatchRun, RunStatus
from .namespace import register as _register
from .progress import NullProgress, Progress, Snapshot, TextProgress, TqdmProgress
from .sample import sample_reviews

_register()
# the ``gembatch`` logger (shards, job names and states, retries, decisions) is silent until the
# application configures logging, e.g. logging.basicConfig(level=logging.INFO)
_logging.getLogger("gembatch").addHandler(_logging.NullHandler())


def __getattr__(name: str) -> Any:
    """``gembatch.emulator`` and ``gembatch.pandas``, imported on first use."""
    if name in ("emulator", "pandas"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "RunNotFinishedError",
    "RunStatus",
    "ServiceError",
    "Snapshot",
    "TerminalServiceError",
    "TextProgress",
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
    "sample_reviews",
]
