"""The gembatch error tree.

Every error gembatch raises is a ``GembatchError`` (an error of another type is a bug); its message
says what happened, to which rows, columns or fields, and what to do next ("Hint: ..."). Errors are
marked *transient* (retrying the same call later may succeed) or *terminal* once, here, so that
retry decisions are not made at each call site::

    GembatchError
    ├── ConfigError            invalid Config / option value (also a ValueError)
    ├── InputError             the frame cannot be turned into requests (also a ValueError)
    │   ├── ColumnNotFoundError
    │   ├── InvalidPromptError     null / empty prompts
    │   ├── DuplicateKeyError      null or repeated keys
    │   └── RequestTooLargeError   a row over the per-request size limit
    ├── AuthenticationError    no API key, or the service refused it
    ├── RunDirectoryError      the run directory cannot be used
    │   ├── RunMismatchError       same job_dir, different input or config
    │   ├── RunLockedError         another live process holds the run
    │   ├── RunNotFinishedError    its results were asked for without waiting
    │   └── CorruptRunError        unreadable / unknown-version journal, a file that changed
    ├── ServiceError           the service refused or failed a call
    │   ├── TransientServiceError  429 / 5xx / dropped connection, retries exhausted (transient)
    │   └── TerminalServiceError   any other 4xx
    ├── CostLimitError         the estimate is above ``max_cost``
    └── PilotFailedError       too many rows of the pilot sample failed

    ResultWarning (a UserWarning): result files had missing, duplicated, unknown or malformed lines;
    the affected rows carry their own status, the warning summarises the counts once per run.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "ColumnNotFoundError",
    "ConfigError",
    "CorruptRunError",
    "CostLimitError",
    "DuplicateKeyError",
    "GembatchError",
    "InputError",
    "InvalidPromptError",
    "PilotFailedError",
    "RequestTooLargeError",
    "ResultWarning",
    "RunDirectoryError",
    "RunLockedError",
    "RunMismatchError",
    "RunNotFinishedError",
    "ServiceError",
    "TerminalServiceError",
    "TransientServiceError",
]


class GembatchError(Exception):
    """Base class of every error gembatch raises on purpose."""

    #: True when the same call may succeed if simply tried again later.
    transient: bool = False


class ConfigError(GembatchError, ValueError):
    """A configuration value is invalid; the message names the field, the value and what is
    allowed."""


class InputError(GembatchError, ValueError):
    """The input frame cannot be turned into requests. Raised before anything is uploaded or
    created."""


class ColumnNotFoundError(InputError):
    """A column named in the call is not in the frame."""


class InvalidPromptError(InputError):
    """Some rows have a null or empty prompt."""


class DuplicateKeyError(InputError):
    """The key column has nulls or repeated values."""


class RequestTooLargeError(InputError):
    """Some rows produce a request larger than the service accepts."""


class AuthenticationError(GembatchError):
    """No API key was found, or the service refused the one given."""


class RunDirectoryError(GembatchError):
    """The run directory cannot be used as asked."""


class RunMismatchError(RunDirectoryError):
    """The run directory holds a run over different input or config."""


class RunLockedError(RunDirectoryError):
    """Another live process is driving this run directory (``holder``: which, when known)."""

    transient = True

    def __init__(self, message: str, *, holder: str | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class RunNotFinishedError(RunDirectoryError):
    """The run's results were asked for (``result(wait=False)``) before it finished."""

    transient = True


class CorruptRunError(RunDirectoryError):
    """The run directory cannot be trusted: its journal cannot be read, or a file in it is not what
    gembatch wrote (``path``: that file, relative to the run directory, when one is to blame)."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class ServiceError(GembatchError):
    """The Gemini service refused or failed a call.

    ``code`` is the HTTP status (0 for a dropped connection), ``status`` the API's status name,
    ``retry_after`` the seconds the service asked to wait (None when it did not say), ``gone`` True
    when the object asked for does not exist (any more): 404, or the service's 403 "... or it may
    not exist" for a missing or expired file.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int = 0,
        status: str = "",
        retry_after: float | None = None,
        gone: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.retry_after = retry_after
        self.gone = gone


class TransientServiceError(ServiceError):
    """429, 5xx or a dropped connection that outlasted the retry budget. Resuming later is safe."""

    transient = True


class TerminalServiceError(ServiceError):
    """The service refused the call (4xx other than 429); retrying the same call will not help."""


class CostLimitError(GembatchError):
    """The estimated cost of the run is above the ``max_cost`` the caller set."""


class PilotFailedError(GembatchError):
    """Too large a share of the pilot sample failed; the full batch was not sent.

    ``result`` holds the pilot's output frame (every sampled row with its status and error).
    """

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class ResultWarning(UserWarning):
    """Result files were not clean (missing, duplicated, unknown-key or malformed lines).

    Every affected row carries its own status (``missing`` / ``error``); this warning gives the
    counts once per run, so that a silently wrong join cannot happen and a bad file does not go
    unnoticed.
    """
