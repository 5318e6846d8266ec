"""Service behaviour as data: one named switch per way the real service is reported to behave.

``Behaviour`` is frozen and keyword-only. Its defaults are the STRICTEST variant, what public
evidence reports of the real Gemini Batch + File API (``Behaviour.strict()``);
``Behaviour.lenient()`` is the kind behaviour the emulator had before the evidence came in.
``Emulator(behaviour=None)`` uses ``DEFAULT_BEHAVIOUR``. docs/service-behaviour.md gives each
switch its evidence.

Switches (strict value first):
  long_result_ids          True | False: 36-char batch ids; result files ``files/batch-<id>`` (42
                           chars) that ``files.delete`` refuses (400, ids are at most 40 chars)
  line_error_codes         "grpc" | "http": per-line errors as google.rpc.Status with gRPC codes
                           and no ``status`` (3, 13, ...), or HTTP code + status (400, 500, ...)
  output_lag_polls         2 | 0: reads of a SUCCEEDED job before its output appears
  inline_order             "shuffled" | "ordered": inlinedResponses order (shuffled per job id)
  inline_metadata          "dropped" | "echoed": the ``metadata`` echo in inlinedResponses
  jsonl_validation         "create" | "per_line": JSONL input parsed at create (bad lines fail the
                           create with 400) or answered line by line
  jsonl_errors_reported    "all" | "first": bad lines listed in that 400 (both lenient and strict
                           list all; "first" is the other reported variant)
  jsonl_field_names        "snake" | "both": proto field names only in JSONL lines, or both
  jsonl_response_schema    "refused" | "accepted": ``response_schema`` in a JSONL line
  missing_file_status      403 | 404: a missing or expired file
  retry_after_header       False | True: ``Retry-After`` on 429s (strict: a RetryInfo detail only)
  known_models_only        True | False: unknown models (or unsupported methods) answer 404
  require_display_name     True | False: batch create without ``displayName`` answers 400
  upload_mime_check        True | False: uploads of unsupported MIME types refused
Structured-output misbehaviours of batch jobs (off in both presets):
  degenerate_schema_form   None | "json_schema" | "schema": requests with that schema form get
                           degenerate JSON in batch results
  degenerate_pattern       "mixed" | "shifted" | "prose" | "null_template" (deterministic per row)
  schema_depth_limit       None | int: deeper response schemas refused (400) at create / per line
  deep_schema_fails_job_above  None | int: a job with a deeper response schema ends FAILED
  schema_with_tools_fails  False | True: rows with a response schema and tools fail (code 3)
                           while the job SUCCEEDS

Command-line form (``parse_behaviour``): ``NAME=VALUE`` with VALUE ``true``/``false``, an int,
``none`` or a choice, e.g. ``output_lag_polls=5``, ``line_error_codes=http``.

Example::

    >>> Behaviour.strict().line_error_codes, Behaviour.lenient().line_error_codes
    ('grpc', 'http')
    >>> Behaviour.lenient().with_(output_lag_polls=3).output_lag_polls
    3
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["BEHAVIOUR_NAMES", "DEFAULT_BEHAVIOUR", "Behaviour", "parse_behaviour"]

_CHOICES: dict[str, tuple[Any, ...]] = {
    "line_error_codes": ("grpc", "http"),
    "inline_order": ("shuffled", "ordered"),
    "inline_metadata": ("dropped", "echoed"),
    "jsonl_validation": ("create", "per_line"),
    "jsonl_errors_reported": ("all", "first"),
    "jsonl_field_names": ("snake", "both"),
    "jsonl_response_schema": ("refused", "accepted"),
    "missing_file_status": (403, 404),
    "degenerate_schema_form": (None, "json_schema", "schema"),
    "degenerate_pattern": ("mixed", "shifted", "prose", "null_template"),
}
_FLAGS = (
    "long_result_ids",
    "retry_after_header",
    "known_models_only",
    "require_display_name",
    "upload_mime_check",
    "schema_with_tools_fails",
)
_COUNTS = ("output_lag_polls",)
_OPTIONAL_COUNTS = ("schema_depth_limit", "deep_schema_fails_job_above")


@dataclass(frozen=True, kw_only=True)
class Behaviour:
    """How the emulated service behaves where reports of the real one differ (see the module)."""

    long_result_ids: bool = True
    line_error_codes: Literal["grpc", "http"] = "grpc"
    output_lag_polls: int = 2
    inline_order: Literal["shuffled", "ordered"] = "shuffled"
    inline_metadata: Literal["dropped", "echoed"] = "dropped"
    jsonl_validation: Literal["create", "per_line"] = "create"
    jsonl_errors_reported: Literal["all", "first"] = "all"
    jsonl_field_names: Literal["snake", "both"] = "snake"
    jsonl_response_schema: Literal["refused", "accepted"] = "refused"
    missing_file_status: Literal[403, 404] = 403
    retry_after_header: bool = False
    known_models_only: bool = True
    require_display_name: bool = True
    upload_mime_check: bool = True
    degenerate_schema_form: Literal["json_schema", "schema"] | None = None
    degenerate_pattern: Literal["mixed", "shifted", "prose", "null_template"] = "mixed"
    schema_depth_limit: int | None = None
    deep_schema_fails_job_above: int | None = None
    schema_with_tools_fails: bool = False

    def __post_init__(self) -> None:
        for name in _FLAGS:
            value = getattr(self, name)
            if type(value) is not bool:
                raise ValueError(f"Behaviour.{name} must be True or False (got {value!r})")
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            if value not in allowed or isinstance(value, bool):
                shown = ", ".join(repr(a) for a in allowed)
                raise ValueError(f"Behaviour.{name} must be one of {shown} (got {value!r})")
        for name in _COUNTS:
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                raise ValueError(f"Behaviour.{name} must be an int >= 0 (got {value!r})")
        for name in _OPTIONAL_COUNTS:
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise ValueError(f"Behaviour.{name} must be None or an int >= 1 (got {value!r})")

    @classmethod
    def strict(cls) -> Behaviour:
        """What the real service is reported to do, every switch at its strictest (the defaults)."""
        return cls()

    @classmethod
    def lenient(cls) -> Behaviour:
        """The emulator's kind behaviour before the evidence: short ids, HTTP error codes, output
        at once, inline answers in order with metadata, JSONL answered line by line in either
        spelling, 404 for missing files, Retry-After headers, any model, no display name or MIME
        checks."""
        return cls(
            long_result_ids=False,
            line_error_codes="http",
            output_lag_polls=0,
            inline_order="ordered",
            inline_metadata="echoed",
            jsonl_validation="per_line",
            jsonl_errors_reported="all",
            jsonl_field_names="both",
            jsonl_response_schema="accepted",
            missing_file_status=404,
            retry_after_header=True,
            known_models_only=False,
            require_display_name=False,
            upload_mime_check=False,
        )

    def with_(self, **changes: Any) -> Behaviour:
        """A copy with ``changes`` applied (validated)."""
        unknown = sorted(set(changes) - set(BEHAVIOUR_NAMES))
        if unknown:
            raise ValueError(
                f"unknown behaviour switch(es) {', '.join(unknown)}; the switches "
                f"are: {', '.join(BEHAVIOUR_NAMES)}"
            )
        return dataclasses.replace(self, **changes)

    def changed(self) -> dict[str, Any]:
        """The switches that differ from ``strict()``, by name."""
        strict = Behaviour()
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(strict, f.name)
        }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: Every switch name, in declaration order.
BEHAVIOUR_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Behaviour))

#: What ``Emulator(behaviour=None)`` uses: the strict service, so that everything tested against
#: the emulator by default is tested against the least forgiving reported behaviour.
DEFAULT_BEHAVIOUR: Behaviour = Behaviour.strict()


def parse_behaviour(spec: str) -> tuple[str, Any]:
    """Parse one ``--behaviour NAME=VALUE`` into (name, value), checked against the switch's type.

    >>> parse_behaviour("output_lag_polls=5"), parse_behaviour("missing_file_status=404")
    (('output_lag_polls', 5), ('missing_file_status', 404))
    """
    name, sep, text = spec.partition("=")
    name, text = name.strip(), text.strip()
    if not sep or name not in BEHAVIOUR_NAMES:
        raise ValueError(
            f"invalid behaviour {spec!r}: expected NAME=VALUE with NAME one of "
            f"{', '.join(BEHAVIOUR_NAMES)}"
        )
    lowered = text.lower()
    value: Any
    if name in _FLAGS:
        if lowered not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            raise ValueError(f"invalid behaviour {spec!r}: {name} takes true or false")
        value = lowered in ("true", "1", "yes", "on")
    elif name in _COUNTS or name in _OPTIONAL_COUNTS:
        if name in _OPTIONAL_COUNTS and lowered in ("none", "off"):
            value = None
        elif text.isdigit():
            value = int(text)
        else:
            extra = " or none" if name in _OPTIONAL_COUNTS else ""
            raise ValueError(f"invalid behaviour {spec!r}: {name} takes an int{extra}")
    else:
        allowed = _CHOICES[name]
        matches = [a for a in allowed if str(a).lower() == lowered]
        if not matches:
            raise ValueError(
                f"invalid behaviour {spec!r}: {name} takes one of "
                f"{', '.join(str(a).lower() for a in allowed)}"
            )
        value = matches[0]
    return name, value
