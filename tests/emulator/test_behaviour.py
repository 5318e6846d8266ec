"""The Behaviour object: presets, validation, the NAME=VALUE syntax, and the command line."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from gembatch.emulator import (
    BEHAVIOUR_NAMES,
    DEFAULT_BEHAVIOUR,
    Behaviour,
    Emulator,
    Limits,
    parse_behaviour,
)
from gembatch.emulator.__main__ import _parser, behaviour_from, limits_from

STRICT_VALUES = {
    "long_result_ids": True,
    "line_error_codes": "grpc",
    "output_lag_polls": 2,
    "inline_order": "shuffled",
    "inline_metadata": "dropped",
    "jsonl_validation": "create",
    "jsonl_errors_reported": "all",
    "jsonl_field_names": "snake",
    "jsonl_response_schema": "refused",
    "missing_file_status": 403,
    "retry_after_header": False,
    "known_models_only": True,
    "require_display_name": True,
    "upload_mime_check": True,
    "degenerate_schema_form": None,
    "degenerate_pattern": "mixed",
    "schema_depth_limit": None,
    "deep_schema_fails_job_above": None,
    "schema_with_tools_fails": False,
}
LENIENT_VALUES = {
    **STRICT_VALUES,
    "long_result_ids": False,
    "line_error_codes": "http",
    "output_lag_polls": 0,
    "inline_order": "ordered",
    "inline_metadata": "echoed",
    "jsonl_validation": "per_line",
    "jsonl_field_names": "both",
    "jsonl_response_schema": "accepted",
    "missing_file_status": 404,
    "retry_after_header": True,
    "known_models_only": False,
    "require_display_name": False,
    "upload_mime_check": False,
}


def test_presets_and_defaults():
    assert (
        dataclasses.asdict(Behaviour.strict()) == STRICT_VALUES == dataclasses.asdict(Behaviour())
    )
    assert dataclasses.asdict(Behaviour.lenient()) == LENIENT_VALUES
    assert list(BEHAVIOUR_NAMES) == list(STRICT_VALUES)
    assert DEFAULT_BEHAVIOUR == Behaviour.strict()  # every test meets the least forgiving service
    with Emulator() as emu:
        assert emu.behaviour is DEFAULT_BEHAVIOUR


def test_frozen_and_keyword_only():
    with pytest.raises(TypeError):
        Behaviour(True)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Behaviour().output_lag_polls = 3  # type: ignore[misc]
    assert Behaviour().with_(output_lag_polls=3).changed() == {"output_lag_polls": 3}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"long_result_ids": "yes"}, "long_result_ids must be True or False (got 'yes')"),
        ({"line_error_codes": "rest"}, "line_error_codes must be one of 'grpc', 'http'"),
        ({"output_lag_polls": -1}, "output_lag_polls must be an int >= 0"),
        ({"output_lag_polls": True}, "output_lag_polls must be an int >= 0"),
        ({"missing_file_status": 410}, "missing_file_status must be one of 403, 404"),
        ({"schema_depth_limit": 0}, "schema_depth_limit must be None or an int >= 1"),
        ({"degenerate_pattern": "weird"}, "degenerate_pattern must be one of"),
    ],
)
def test_fields_are_validated(changes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Behaviour(**changes)


def test_with_refuses_unknown_names():
    with pytest.raises(ValueError, match="unknown behaviour switch.*lag_polls.*switches are"):
        Behaviour().with_(lag_polls=1)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("output_lag_polls=5", ("output_lag_polls", 5)),
        ("long_result_ids=false", ("long_result_ids", False)),
        ("retry_after_header=ON", ("retry_after_header", True)),
        ("missing_file_status=404", ("missing_file_status", 404)),
        ("line_error_codes=HTTP", ("line_error_codes", "http")),
        ("degenerate_schema_form=none", ("degenerate_schema_form", None)),
        ("degenerate_schema_form=json_schema", ("degenerate_schema_form", "json_schema")),
        ("schema_depth_limit=none", ("schema_depth_limit", None)),
        (" schema_depth_limit = 4 ", ("schema_depth_limit", 4)),
    ],
)
def test_parse_behaviour(spec, expected):
    assert parse_behaviour(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "nope=1",
        "output_lag_polls",
        "output_lag_polls=-2",
        "long_result_ids=maybe",
        "missing_file_status=500",
        "output_lag_polls=none",
    ],
)
def test_parse_behaviour_refuses(spec):
    with pytest.raises(ValueError, match="invalid behaviour"):
        parse_behaviour(spec)


def test_command_line_behaviour_and_limits():
    args = _parser().parse_args(
        ["--strict", "--behaviour", "output_lag_polls=0", "--behaviour", "line_error_codes=http"]
    )
    assert behaviour_from(args) == Behaviour.strict().with_(
        output_lag_polls=0, line_error_codes="http"
    )
    assert behaviour_from(_parser().parse_args(["--lenient"])) == Behaviour.lenient()
    assert behaviour_from(_parser().parse_args([])) == DEFAULT_BEHAVIOUR
    args = _parser().parse_args(
        [
            "--max-concurrent-jobs",
            "5",
            "--storage-bytes",
            "off",
            "--enqueued-tokens",
            "gemini-2.5-flash=100",
            "--enqueued-tokens",
            "*=off",
            "--requests-per-minute",
            "gemini-2.5-pro=7",
            "--latency",
            "0.2",
        ]
    )
    limits = limits_from(args)
    assert limits.max_concurrent_jobs == 5 and limits.storage_bytes is None
    assert limits.enqueued_limit("gemini-2.5-flash") == 100
    assert limits.enqueued_limit("gemini-2.5-pro") == 5_000_000  # the tier-1 figure stays
    assert limits.enqueued_limit("other") is None and limits.requests_limit("gemini-2.5-pro") == 7
    assert limits.latency_s == 0.2
    assert limits_from(_parser().parse_args(["--no-limits"])) == Limits.off()
    with pytest.raises(SystemExit):
        _parser().parse_args(["--strict", "--lenient"])


def test_command_line_refuses_a_bad_behaviour_with_the_names():
    result = subprocess.run(
        [sys.executable, "-m", "gembatch.emulator", "--behaviour", "lag=2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "invalid behaviour 'lag=2'" in result.stderr
    assert "output_lag_polls" in result.stderr and "upload_mime_check" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "gembatch.emulator", "--enqueued-tokens", "gemini-2.5-flash=lots"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "invalid limit" in result.stderr


def test_help_describes_the_behaviour_syntax():
    text = _parser().format_help()
    assert "--behaviour NAME=VALUE" in text and "--strict" in text and "--lenient" in text
    for name in BEHAVIOUR_NAMES:
        assert name in text
    assert "--enqueued-tokens" in text and "--no-limits" in text
