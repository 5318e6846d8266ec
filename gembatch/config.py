"""Frozen, keyword-only configuration objects, every field validated on construction.

``Config`` / ``EmbedConfig`` describe *what to ask the model*: they turn into the wire-form part of
every request that is the same for all rows (``request_static()``) and serialise to / from the run
directory. ``Options`` describe *how a run is cut up, sent and awaited*; ``RetryPolicy`` how
transient service faults are retried. A bad value, or a misspelt field name, raises
:class:`gembatch.ConfigError` naming the field, the value and what is allowed (with "did you mean"
for typos).

>>> import gembatch
>>> cfg = gembatch.Config(model="gemini-2.5-flash", temperature=0.2, max_output_tokens=256)
>>> cfg.request_static()["generationConfig"]
{'maxOutputTokens': 256, 'temperature': 0.2}
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._build import schemas as _schemas
from ._build.wire import snake
from .exceptions import ConfigError

__all__ = [
    "GENERATION_CONFIG_FIELDS",
    "REQUEST_FIELDS",
    "RESULT_COLUMNS",
    "Config",
    "EmbedConfig",
    "Options",
    "RetryPolicy",
]

#: Every ``generationConfig`` field the Gemini API accepts (wire names, lowerCamelCase).
GENERATION_CONFIG_FIELDS = frozenset(
    {
        "stopSequences",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "responseModalities",
        "candidateCount",
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "seed",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "enableEnhancedCivicAnswers",
        "speechConfig",
        "thinkingConfig",
        "imageConfig",
        "mediaResolution",
        "audioTimestamp",
        "enableAffectiveDialog",
        "routingConfig",
        "modelSelectionConfig",
    }
)
#: Top-level GenerateContentRequest fields besides ``contents`` (wire names).
REQUEST_FIELDS = frozenset(
    {
        "systemInstruction",
        "generationConfig",
        "safetySettings",
        "tools",
        "toolConfig",
        "cachedContent",
        "labels",
        "serviceTier",
        "store",
    }
)
_CAMEL = re.compile(r"_([a-z0-9])")


def _camel(name: str) -> str:
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


#: The response MIME types the API takes (the service refuses others, row by row, after payment;
#: its message lists these five).
_MIME_TYPES = (
    "text/plain",
    "application/json",
    "application/xml",
    "application/yaml",
    "text/x.enum",
)


#: The named numeric parameters' bounds (low, high, integer); the same for their wire fields.
_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "temperature": (0, 2, False),
    "top_p": (0, 1, False),
    "top_k": (1, 10_000, True),
    "max_output_tokens": (1, 1_000_000, True),
    "candidate_count": (1, 8, True),
    "seed": (-(2**31), 2**31 - 1, True),
    "presence_penalty": (-2, 2, False),
    "frequency_penalty": (-2, 2, False),
}


def _check_wire(where: str, wire: str, value: Any) -> None:
    """The limits the named parameters have, for the same fields given in wire form."""
    name = snake(wire)
    if name in _BOUNDS:
        lo, hi, integer = _BOUNDS[name]
        _check_number(where, value, lo, hi, integer=integer)
    if wire == "responseMimeType" and value not in _MIME_TYPES:
        raise _fail(where, value, " or ".join(map(repr, _MIME_TYPES)))
    if wire == "stopSequences" and (
        isinstance(value, str) or not isinstance(value, Sequence) or len(value) > 5
    ):
        raise _fail(where, value, "a list of at most 5 strings (the API's limit)")


def _fail(field_name: str, value: Any, allowed: str, *, owner: str = "Config") -> ConfigError:
    return ConfigError(
        f"{owner}.{field_name} must be {allowed} (got {value!r} of type {type(value).__name__})."
    )


_T = TypeVar("_T")


def _checked_keywords(cls: type[_T]) -> type[_T]:
    """Wrap a keyword-only dataclass's ``__init__`` so that an unknown keyword is a ConfigError with
    "did you mean" (the signature shown by ``help()`` / Shift-Tab stays the dataclass's own)."""
    init = cls.__init__
    names = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        unknown = [k for k in kwargs if k not in names]
        if unknown and not args:
            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, names, n=2, cutoff=0.6)
                hints.append(
                    f"{name!r}"
                    + (f" (did you mean {' or '.join(map(repr, close))}?)" if close else "")
                )
            raise ConfigError(
                f"{cls.__name__} has no field {', '.join(hints)}. Its fields: {', '.join(names)}."
            )
        init(self, *args, **kwargs)

    cls.__init__ = __init__  # type: ignore[method-assign]
    return cls


def _check_number(
    name: str,
    value: Any,
    lo: float,
    hi: float,
    *,
    integer: bool = False,
    owner: str = "Config",
) -> None:
    if value is None:
        return
    kind = "an int" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if (
        isinstance(value, bool)
        or not ok_type
        or (not integer and not math.isfinite(value))
        or not lo <= value <= hi
    ):
        raise _fail(name, value, f"{kind} between {lo:g} and {hi:g}", owner=owner)


def _schema_to_wire(schema: Any) -> tuple[str, dict[str, Any]]:
    """A pydantic model / type, or a schema dict, as ``(wire field, JSON schema dict)``.

    Dicts whose ``type`` values are UPPERCASE are the API's OpenAPI subset (``responseSchema``);
    any other dict, and every pydantic type, is JSON Schema (``responseJsonSchema``).
    """
    if isinstance(schema, Mapping):
        as_dict = json.loads(json.dumps(schema))  # a plain, JSON-able copy
        text = json.dumps(as_dict)
        openapi = re.search(r'"type": "(STRING|INTEGER|NUMBER|BOOLEAN|ARRAY|OBJECT)"', text)
        return ("responseSchema" if openapi else "responseJsonSchema"), as_dict
    try:
        from pydantic import BaseModel, TypeAdapter
    except ImportError:  # pragma: no cover - pydantic ships with google-genai
        raise ConfigError(
            "Config.response_schema got a type, which needs pydantic. "
            "Hint: pip install 'gembatch[pydantic]' or pass a JSON schema dict."
        ) from None
    try:
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            return "responseJsonSchema", schema.model_json_schema()
        return "responseJsonSchema", TypeAdapter(schema).json_schema()
    except Exception as exc:  # noqa: BLE001 - pydantic raises several types for non-schema objects
        raise _fail(
            "response_schema",
            schema,
            f"a pydantic model, a type like list[Model], or a JSON schema dict ({exc})",
        ) from None


@_checked_keywords
@dataclass(frozen=True, kw_only=True)
class Config:
    """What to ask the model: everything about a request that is the same for every row.

    Parameters mirror the Gemini ``GenerateContentConfig`` (snake_case). Fields the named parameters
    do not cover go in ``generation_config`` (wire names, camelCase or snake_case) or
    ``request_extra`` (top-level request fields); unknown names are an error, never silently
    dropped.

    >>> Config(model="gemini-2.5-flash", system_instruction="Answer in French.").model
    'gemini-2.5-flash'
    """

    model: str
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_output_tokens: int | None = None
    candidate_count: int | None = None
    seed: int | None = None
    stop_sequences: Sequence[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    system_instruction: str | None = None
    response_schema: Any = None
    response_mime_type: str | None = None
    thinking_budget: int | None = None
    include_thoughts: bool | None = None
    safety_settings: Sequence[Mapping[str, Any]] | None = None
    tools: Sequence[Mapping[str, Any]] | None = None
    tool_config: Mapping[str, Any] | None = None
    cached_content: str | None = None
    generation_config: Mapping[str, Any] | None = None
    request_extra: Mapping[str, Any] | None = None
    _static: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (
            not isinstance(self.model, str)
            or not self.model.strip()
            or "/" in self.model.strip("/").removeprefix("models/")
        ):
            raise _fail("model", self.model, "a model name such as 'gemini-2.5-flash'")
        for name, (lo, hi, integer) in _BOUNDS.items():
            _check_number(name, getattr(self, name), lo, hi, integer=integer)
        _check_number("thinking_budget", self.thinking_budget, -1, 1_000_000, integer=True)
        if self.stop_sequences is not None and (
            isinstance(self.stop_sequences, str)
            or not all(isinstance(s, str) for s in self.stop_sequences)
        ):
            raise _fail("stop_sequences", self.stop_sequences, "a list of strings")
        if self.system_instruction is not None and not str(self.system_instruction).strip():
            raise _fail("system_instruction", self.system_instruction, "a non-blank string")
        if self.stop_sequences is not None and len(self.stop_sequences) > 5:
            raise _fail(
                "stop_sequences", self.stop_sequences, "at most 5 strings (the API's limit)"
            )
        for name in ("system_instruction", "cached_content", "response_mime_type"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise _fail(name, value, "a non-empty string")
        if self.response_mime_type is not None and self.response_mime_type not in _MIME_TYPES:
            raise _fail(
                "response_mime_type", self.response_mime_type, " or ".join(map(repr, _MIME_TYPES))
            )
        if self.include_thoughts is not None and not isinstance(self.include_thoughts, bool):
            raise _fail("include_thoughts", self.include_thoughts, "True or False")
        for name in ("safety_settings", "tools"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, (str, Mapping)) or not all(isinstance(v, Mapping) for v in value)
            ):
                raise _fail(name, value, "a list of dicts in the API's wire form")
        object.__setattr__(self, "_static", self._build_static())

    # -- wire form -------------------------------------------------------------------------------
    def _build_static(self) -> dict[str, Any]:
        gen: dict[str, Any] = {}
        for src, wire in (
            ("temperature", "temperature"),
            ("top_p", "topP"),
            ("top_k", "topK"),
            ("max_output_tokens", "maxOutputTokens"),
            ("candidate_count", "candidateCount"),
            ("seed", "seed"),
            ("presence_penalty", "presencePenalty"),
            ("frequency_penalty", "frequencyPenalty"),
            ("response_mime_type", "responseMimeType"),
        ):
            if getattr(self, src) is not None:
                gen[wire] = getattr(self, src)
        if self.stop_sequences is not None:
            gen["stopSequences"] = list(self.stop_sequences)
        if self.thinking_budget is not None or self.include_thoughts is not None:
            thinking: dict[str, Any] = {}
            if self.thinking_budget is not None:
                thinking["thinkingBudget"] = self.thinking_budget
            if self.include_thoughts is not None:
                thinking["includeThoughts"] = self.include_thoughts
            gen["thinkingConfig"] = thinking
        if self.response_schema is not None:
            wire_field, schema = _schema_to_wire(self.response_schema)
            # refused before anything is spent, naming the path: recursion, depth, size, keywords
            # the form lacks; then sent as JSON Schema (a JSONL line refuses responseSchema;
            # the pilot may choose the OpenAPI form, see gembatch._build.schemas.with_form)
            _schemas.check(schema, "openapi" if wire_field == "responseSchema" else "json_schema")
            if wire_field == "responseSchema":
                wire_field, schema = "responseJsonSchema", _schemas.to_json_schema(schema)
            gen[wire_field] = schema
            gen.setdefault("responseMimeType", "application/json")
            if gen["responseMimeType"] != "application/json":
                raise _fail(
                    "response_mime_type",
                    gen["responseMimeType"],
                    "'application/json' (or unset) when response_schema is given",
                )
        for name, value in (self.generation_config or {}).items():
            wire = _camel(name)
            if wire not in GENERATION_CONFIG_FIELDS:
                raise ConfigError(
                    f"Config.generation_config has an unknown field {name!r}. Allowed: "
                    f"{', '.join(sorted(GENERATION_CONFIG_FIELDS))}."
                )
            if wire in gen:
                raise ConfigError(
                    f"Config.generation_config[{name!r}] repeats a field set by a named parameter; "
                    "set it once."
                )
            _check_wire(f"generation_config[{name!r}]", wire, value)
            gen[wire] = value
        static: dict[str, Any] = {}
        if gen:
            static["generationConfig"] = dict(sorted(gen.items()))
        if self.system_instruction is not None:
            static["systemInstruction"] = {"parts": [{"text": self.system_instruction}]}
        if self.safety_settings is not None:
            static["safetySettings"] = [dict(s) for s in self.safety_settings]
        if self.tools is not None:
            static["tools"] = [dict(t) for t in self.tools]
        if self.tool_config is not None:
            static["toolConfig"] = dict(self.tool_config)
        if self.cached_content is not None:
            static["cachedContent"] = self.cached_content
        for name, value in (self.request_extra or {}).items():
            wire = _camel(name)
            if wire not in REQUEST_FIELDS or wire == "generationConfig":
                raise ConfigError(
                    f"Config.request_extra has an unknown or misplaced field {name!r}. Allowed: "
                    f"{', '.join(sorted(REQUEST_FIELDS - {'generationConfig'}))}."
                )
            if wire in static:
                raise ConfigError(f"Config.request_extra[{name!r}] repeats a field already set.")
            static[wire] = value
        try:
            json.dumps(static, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"Config holds a value that is not JSON: {exc}.") from None
        return static

    @property
    def model_name(self) -> str:
        """The model resource name, ``models/...``."""
        return self.model if self.model.startswith("models/") else f"models/{self.model}"

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` (validated), e.g. ``cfg.replace(temperature=0)``."""
        return dataclasses.replace(self, **changes)

    def request_static(self) -> dict[str, Any]:
        """The wire-form request fields shared by every row (a fresh copy)."""
        return json.loads(json.dumps(self._static))

    def response_json_schema(self) -> dict[str, Any] | None:
        """The structured-output schema on the wire, if any (JSON Schema or the OpenAPI subset)."""
        gen = self._static.get("generationConfig", {})
        return gen.get("responseJsonSchema") or gen.get("responseSchema")

    # -- journal ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form for the run directory (a pydantic schema is stored as its JSON
        schema)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name.startswith("_"):
                continue
            value = getattr(self, f.name)
            if f.name == "response_schema" and value is not None:
                value = _schema_to_wire(value)[1]
            if isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return json.loads(json.dumps(out))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        """The inverse of :meth:`to_dict`."""
        names = {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"Config has no field(s) {sorted(unknown)}.")
        return cls(**dict(data))


@_checked_keywords
@dataclass(frozen=True, kw_only=True)
class EmbedConfig:
    """What to ask an embedding model.

    >>> EmbedConfig(model="gemini-embedding-001", output_dimensionality=256).request_static()
    {'outputDimensionality': 256}
    """

    model: str = "gemini-embedding-001"
    task_type: str | None = None
    output_dimensionality: int | None = None
    title: str | None = None

    TASK_TYPES = frozenset(
        {
            "TASK_TYPE_UNSPECIFIED",
            "RETRIEVAL_QUERY",
            "RETRIEVAL_DOCUMENT",
            "SEMANTIC_SIMILARITY",
            "CLASSIFICATION",
            "CLUSTERING",
            "QUESTION_ANSWERING",
            "FACT_VERIFICATION",
            "CODE_RETRIEVAL_QUERY",
        }
    )

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"EmbedConfig.model must be a model name (got {self.model!r}).")
        _check_number(  # batch_embed(output_dimensionality=...) makes an EmbedConfig
            "output_dimensionality (batch_embed's output_dimensionality=)",
            self.output_dimensionality,
            1,
            3072,
            integer=True,
            owner="EmbedConfig",
        )
        if self.task_type is not None and self.task_type.upper() not in self.TASK_TYPES:
            raise ConfigError(
                f"EmbedConfig.task_type must be one of {', '.join(sorted(self.TASK_TYPES))} "
                f"(got {self.task_type!r})."
            )

    @property
    def model_name(self) -> str:
        """The model resource name, ``models/...``."""
        return self.model if self.model.startswith("models/") else f"models/{self.model}"

    def request_static(self) -> dict[str, Any]:
        """Wire-form EmbedContentRequest fields shared by every row."""
        out: dict[str, Any] = {}
        if self.task_type is not None:
            out["taskType"] = self.task_type.upper()
        if self.title is not None:
            out["title"] = self.title
        if self.output_dimensionality is not None:
            out["outputDimensionality"] = self.output_dimensionality
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form for the run directory."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmbedConfig:
        """The inverse of :meth:`to_dict`."""
        return cls(**dict(data))


def _check_int(owner: str, name: str, value: Any, lo: int, hi: int | None = None) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < lo
        or (hi is not None and value > hi)
    ):
        span = f">= {lo:,}" if hi is None else f"between {lo:,} and {hi:,}"
        raise ConfigError(
            f"{owner}.{name} must be an int {span} (got {value!r} of type {type(value).__name__})."
        )


def _check_seconds(
    owner: str, name: str, value: Any, *, optional: bool = False, zero: bool = False
) -> None:
    if optional and value is None:
        return
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= 0 if zero else value > 0)
    )
    if not ok:
        allowed = f"a number of seconds {'>= 0' if zero else '> 0'}" + (
            " or None" if optional else ""
        )
        raise ConfigError(
            f"{owner}.{name} must be {allowed} (got {value!r} of type {type(value).__name__})."
        )


def _check_bool(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{owner}.{name} must be True or False (got {value!r}).")


#: The result columns gembatch adds (without the prefix); a user column of one of these names
#: (with the prefix) is refused before anything is sent.
RESULT_COLUMNS = (
    "text",
    "parsed",
    "finish_reason",
    "prompt_tokens",
    "output_tokens",
    "thoughts_tokens",
    "cached_tokens",
    "total_tokens",
    "model_version",
    "status",
    "error_code",
    "error_status",
    "error_message",
    "batch_job",
    "origin",
    "embedding",
)


@_checked_keywords
@dataclass(frozen=True, kw_only=True)
class Options:
    """How a run is cut up, sent and awaited. Defaults suit the real service.

    >>> Options(shard_max_rows=50_000).shard_max_rows
    50000
    """

    shard_max_rows: int = 200_000
    shard_max_bytes: int = 1_000_000_000  # well under the 2 GB file limit
    inline_max_bytes: int = 10_000_000  # under the 20 MB inline request limit
    # 0: always upload a file. Inline answers may come back out of order and without their keys
    # (then those rows are sent again, through a file); they also pass through the SDK as Python
    # objects (20,000 rows inline: a peak of 817 MiB, against 420 MiB through a file)
    inline_max_rows: int = 0
    max_request_bytes: int = 20_000_000
    slice_rows: int = 100_000
    upload_concurrency: int = 4
    poll_interval: float = 10.0
    max_poll_interval: float = 120.0
    cleanup_remote: bool = True
    prefix: str = "gemini_"
    resubmit_expired: bool = True  # send the rows of an EXPIRED job again, automatically
    max_resubmits: int = 3  # resubmissions per shard (expired, watchdog, retry_failed together)
    stuck_after: float | None = None  # seconds without start or progress before the watchdog acts
    dedup: bool = True  # identical requests within a shard are sent once, the answer fanned out
    output_wait: float = 3600.0  # seconds a SUCCEEDED job may lack its result file before stopping
    # the service's batch limits (the rolling scheduler keeps within them): the usage tier's
    # published figures, or explicit ones (None: the tier's). tier=None: start from tier 1's and,
    # while the service takes every job, raise the enqueued-token budget (x2 when it binds, up to
    # tier 3's); the first quota refusal fixes it at what the service holds
    tier: int | None = None
    max_jobs: int | None = None  # unfinished batch jobs at once (tier: 100)
    max_enqueued_tokens: int | None = None  # input tokens of unfinished jobs of the model
    max_storage_bytes: int | None = None  # bytes of uploaded request files (tier: 20 GiB)
    shard_max_tokens: int | None = None  # a shard's input tokens (None: a quarter of the budget)
    first_shard_rows: int | None = 1_000  # the first shard's rows, x4 per shard (answers early)
    quota_wait: float = 3600.0  # seconds to wait for the service's quota before stopping
    # interactive mode (mode="interactive", or "auto" for small work): calls in flight at once,
    # and the per-minute limits gembatch keeps to (None: the tier's published figures)
    concurrency: int = 16
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None  # input tokens
    # mode="auto" answers interactively when the work is small: at most auto_max_rows requests
    # to send and at most auto_max_savings US dollars that the batch rate would save
    auto_max_rows: int = 200
    auto_max_savings: float = 0.05
    # seconds a run waits for requests another process has in flight (recorded in the result
    # cache) before sending them itself
    inflight_wait: float = 86_400.0

    def __post_init__(self) -> None:
        own = "Options"
        for name in (
            "shard_max_rows",
            "shard_max_bytes",
            "max_request_bytes",
            "slice_rows",
            "upload_concurrency",
        ):
            _check_int(own, name, getattr(self, name), 1)
        _check_int(own, "inline_max_rows", self.inline_max_rows, 0)
        _check_int(own, "inline_max_bytes", self.inline_max_bytes, 0, 20_000_000)
        _check_int(own, "shard_max_bytes", self.shard_max_bytes, 1, 2_000_000_000)
        _check_int(own, "max_resubmits", self.max_resubmits, 0)
        _check_seconds(own, "poll_interval", self.poll_interval)
        _check_seconds(own, "max_poll_interval", self.max_poll_interval)
        if self.max_poll_interval < self.poll_interval:
            raise ConfigError(
                f"Options.max_poll_interval ({self.max_poll_interval!r}) must be >= poll_interval "
                f"({self.poll_interval!r})."
            )
        _check_seconds(own, "stuck_after", self.stuck_after, optional=True)
        _check_seconds(own, "output_wait", self.output_wait)
        _check_seconds(own, "quota_wait", self.quota_wait)
        _check_seconds(own, "inflight_wait", self.inflight_wait)
        if self.tier not in (None, 1, 2, 3) or isinstance(self.tier, bool):
            raise ConfigError(f"Options.tier must be None, 1, 2 or 3 (got {self.tier!r}).")
        _check_int(own, "concurrency", self.concurrency, 1, 1_000)
        _check_int(own, "auto_max_rows", self.auto_max_rows, 0)
        if (
            not isinstance(self.auto_max_savings, (int, float))
            or isinstance(self.auto_max_savings, bool)
            or not self.auto_max_savings >= 0
        ):
            raise ConfigError(
                f"Options.auto_max_savings must be a number of US dollars >= 0 "
                f"(got {self.auto_max_savings!r})."
            )
        for name in (
            "max_jobs",
            "max_enqueued_tokens",
            "max_storage_bytes",
            "shard_max_tokens",
            "first_shard_rows",
            "requests_per_minute",
            "tokens_per_minute",
        ):
            if getattr(self, name) is not None:
                _check_int(own, name, getattr(self, name), 1)
        for name in ("cleanup_remote", "resubmit_expired", "dedup"):
            _check_bool(own, name, getattr(self, name))
        if not isinstance(self.prefix, str) or not re.fullmatch(
            r"[A-Za-z_][A-Za-z0-9_]*", self.prefix
        ):
            raise ConfigError(
                f"Options.prefix must be a name prefix of letters, digits and underscores such as "
                f"'gemini_' (got {self.prefix!r})."
            )

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain, JSON-able dict (for the run directory)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Options:
        """The inverse of :meth:`to_dict`; fields unknown to this version (a newer run) are
        ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def replace(self, **changes: Any) -> Options:
        """A copy with ``changes`` (validated)."""
        return dataclasses.replace(self, **changes)


@_checked_keywords
@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How transient service faults (429, 5xx, dropped connections, timeouts) are retried:
    ``attempts`` tries at most, exponential backoff from ``initial_delay`` to ``max_delay`` seconds
    with up to ``jitter`` seconds added, all within ``max_elapsed`` seconds. A delay the service
    asks for (``Retry-After``, or a ``RetryInfo`` detail) is honoured, up to ``max_server_delay``.
    ``timeout`` bounds every HTTP request (connect, each read and write), in seconds.

    >>> RetryPolicy(attempts=3).attempts
    3
    """

    attempts: int = 6
    initial_delay: float = 1.0
    max_delay: float = 60.0
    jitter: float = 1.0
    max_elapsed: float = 600.0
    max_server_delay: float = 900.0
    timeout: float = 120.0

    def __post_init__(self) -> None:
        own = "RetryPolicy"
        _check_int(own, "attempts", self.attempts, 1)
        _check_seconds(own, "initial_delay", self.initial_delay, zero=True)
        _check_seconds(own, "max_delay", self.max_delay, zero=True)
        _check_seconds(own, "jitter", self.jitter, zero=True)
        _check_seconds(own, "max_elapsed", self.max_elapsed)
        _check_seconds(own, "max_server_delay", self.max_server_delay, zero=True)
        _check_seconds(own, "timeout", self.timeout)
        if self.max_delay < self.initial_delay:
            raise ConfigError(
                f"RetryPolicy.max_delay ({self.max_delay!r}) must be >= initial_delay "
                f"({self.initial_delay!r})."
            )
