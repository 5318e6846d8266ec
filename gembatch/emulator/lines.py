"""Answering a batch's input lines: one JSONL or inline line in, one result line out.

``process_chunk`` answers a chunk of lines with the fake model, in this thread or in a worker
process of a ``LinePool``; it is pure and its ``Spec`` is plain data, so it pickles. The spec
carries the job's kind and model, whether its lines are inline items, its ``LineFaults`` and its
``line_rules``: the parts of the ``Behaviour`` a line needs (error codes, JSONL field names and
``response_schema``, the structured-output misbehaviours), captured when the job was created.

A result line is ``{"key", "response"}`` or ``{"key", "error"}`` (``{"response"|"error",
"metadata"}`` inline); ``error`` is a google.rpc.Status with gRPC codes and no ``status``
(``line_error_codes="grpc"``) or with the HTTP code and status (``"http"``).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import pickle
import re
import subprocess
import sys
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from gembatch.emulator import answers, validate
from gembatch.emulator.behaviour import Behaviour
from gembatch.emulator.codec import json_dumps, json_loads
from gembatch.emulator.embeddings import embed_content
from gembatch.emulator.errors import STATUS_BY_CODE, ApiError, grpc_status
from gembatch.emulator.faults import LineFaults
from gembatch.emulator.inputs import LINE_FIELDS, RESPONSE_SCHEMA_MESSAGE
from gembatch.emulator.schema_faults import (
    TOOLS_MESSAGE,
    degenerate,
    depth_error,
    schema_depth,
    schema_form,
    uses_tools_with_schema,
)
from gembatch.emulator.tokens import count_text_tokens

__all__ = ["LinePool", "Spec", "chunks", "line_rules", "process_chunk", "released", "serve_chunks"]

#: kind, model, inline, line faults (LineFaults fields) or None, line rules (``line_rules``)
Spec = tuple[str, str, bool, dict[str, Any] | None, dict[str, Any]]
_KEY_RE = re.compile(rb'"key"\s*:\s*"((?:[^"\\]|\\.)*)"')


def line_rules(behaviour: Behaviour) -> dict[str, Any]:
    """The parts of ``behaviour`` that decide how a line is answered, as JSON-able data."""
    return {
        "codes": behaviour.line_error_codes,
        "snake": behaviour.jsonl_field_names == "snake",
        "refuse_schema": behaviour.jsonl_response_schema == "refused",
        "depth_limit": behaviour.schema_depth_limit,
        "degenerate_form": behaviour.degenerate_schema_form,
        "degenerate_pattern": behaviour.degenerate_pattern,
        "tools_fail": behaviour.schema_with_tools_fails,
    }


def chunks(
    path: os.PathLike[str], size: int, limit: int | None
) -> Iterator[tuple[int, list[bytes]]]:
    """(index of the first line, non-blank lines) in chunks of ``size``, at most ``limit`` lines."""
    chunk: list[bytes] = []
    index = 0
    with open(path, "rb") as src:
        for raw in src:
            if limit is not None and index + len(chunk) >= limit:
                break
            if raw.isspace():
                continue
            chunk.append(raw)
            if len(chunk) == size:
                yield index, chunk
                index, chunk = index + size, []
    if chunk:
        yield index, chunk


class LinePool:
    """Worker processes answering chunks of lines, each with at most one chunk in flight.

    Started as ``python -c`` programs that import only ``gembatch.emulator`` (never the caller's
    ``__main__``, unlike multiprocessing's spawn and forkserver), talking length-prefixed pickles
    over their stdin and stdout. One job uses the pool at a time (``lock``); others run in-thread
    meanwhile.
    """

    _CODE = (
        "import sys, types; pkg = types.ModuleType('gembatch'); "
        "pkg.__path__ = [sys.argv[1]]; sys.modules['gembatch'] = pkg; "
        "from gembatch.emulator.lines import serve_chunks; serve_chunks()"
    )

    def __init__(self, size: int) -> None:
        package_dir = str(Path(__file__).resolve().parents[1])  # skip gembatch/__init__: stay light
        self.lock = threading.Lock()
        self.broken = False
        self._procs = [
            subprocess.Popen(
                [sys.executable, "-c", self._CODE, package_dir],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            for _ in range(size)
        ]

    def map(
        self, spec: Spec, chunks: Iterator[tuple[int, list[bytes]]]
    ) -> Generator[tuple[list[bytes], int, int], None, None]:
        """``process_chunk`` over ``chunks`` in the workers, results in input order."""
        busy: collections.deque[subprocess.Popen[bytes]] = collections.deque()
        try:
            for proc, (start, lines) in zip(itertools.cycle(self._procs), chunks):
                if len(busy) == len(self._procs):
                    yield self._receive(busy.popleft())
                _send(proc.stdin, (spec, start, lines))
                busy.append(proc)
            while busy:
                yield self._receive(busy.popleft())
        finally:
            while busy and not self.broken:  # a cancelled job: collect what is in flight
                self._receive(busy.popleft())

    def _receive(self, proc: subprocess.Popen[bytes]) -> tuple[list[bytes], int, int]:
        try:
            status, value = _recv(proc.stdout)
        except (EOFError, OSError) as exc:
            self.broken = True
            raise RuntimeError("an emulator worker process ended unexpectedly") from exc
        if status != "ok":
            raise RuntimeError(f"an emulator worker process failed: {value}")
        return value  # type: ignore[no-any-return]

    def close(self) -> None:
        for proc in self._procs:
            try:
                proc.stdin.close()  # type: ignore[union-attr]
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


@contextlib.contextmanager
def released(pool: LinePool | None) -> Iterator[None]:
    try:
        yield
    finally:
        if pool is not None:
            pool.lock.release()


def _send(stream: Any, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(8, "little") + data)
    stream.flush()


def _recv(stream: Any) -> Any:
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError("worker stream closed")
    size = int.from_bytes(head, "little")
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("worker stream closed")
    return pickle.loads(data)


def serve_chunks() -> None:
    """The worker process: answer ``(spec, start, lines)`` requests from stdin until it closes."""
    source, sink = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not corrupt the replies
    sys.stdout = sys.stderr
    while True:
        try:
            spec, start, lines = _recv(source)
        except EOFError:
            return
        try:
            reply: tuple[str, Any] = ("ok", process_chunk(spec, start, lines))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the job
            reply = ("error", f"{type(exc).__name__}: {exc}")
        _send(sink, reply)


def process_chunk(spec: Spec, start: int, lines: list[bytes]) -> tuple[list[bytes], int, int]:
    """Answer input lines: (result lines, each ending in a newline; successes; failures)."""
    kind, model, inline, fault_spec, rules = spec
    faults = LineFaults(**fault_spec) if fault_spec else None
    out: list[bytes] = []
    succeeded = 0
    for index, raw in enumerate(lines, start):
        head, body = _run_line(raw, index, kind, model, inline, rules)
        ok = "response" in body
        copies, malformed = 1, False
        if faults is not None:
            key = head.get("metadata", {}).get("key") if inline else head.get("key")
            err, missing, duplicate, malformed = faults.pick(str(index if key is None else key))
            if err and ok:
                body, ok = {"error": _injected_error(faults.error_code)}, False
            copies = 0 if missing else 2 if duplicate else 1
        if "error" in body and rules["codes"] == "grpc":
            error = body["error"]
            body = {"error": grpc_status(ApiError(error["code"], error["message"]))}
        succeeded += ok
        if copies:
            data = json_dumps({**body, **head} if inline else {**head, **body})
            if malformed and not inline:
                data = data[: max(1, len(data) // 2)]
            out.extend([data + b"\n"] * copies)
    return out, succeeded, len(lines) - succeeded


def _injected_error(code: int) -> dict[str, Any]:
    message = "Internal error encountered." if code == 500 else "An injected emulator error."
    return {"code": code, "message": message, "status": STATUS_BY_CODE.get(code, "UNKNOWN")}


def _run_line(
    raw: bytes, index: int, kind: str, model: str, inline: bool, rules: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One input line -> (head: key or metadata, body: response or error)."""
    head: dict[str, Any] = {}
    try:
        obj = json_loads(raw)
    except ValueError as exc:
        match = _KEY_RE.search(raw)
        if match:
            try:
                head["key"] = json.loads(b'"' + match.group(1) + b'"')
            except ValueError:
                pass
        return head, _error(f"Invalid JSON payload received on line {index + 1}: {exc}")
    if not isinstance(obj, dict):
        return head, _error(
            f"Invalid JSON payload received on line {index + 1}: a line must be a JSON object."
        )
    if "request" in obj:
        if inline:
            if "metadata" in obj:
                head["metadata"] = obj["metadata"]
        elif "key" in obj:
            head["key"] = obj["key"]
        unknown = [k for k in obj if k not in LINE_FIELDS]
        if unknown:
            return head, _error(
                f'Invalid JSON payload received. Unknown name "{unknown[0]}" on '
                f"line {index + 1}: Cannot find field."
            )
        request = obj["request"]
    elif "key" in obj:
        head["key"] = obj["key"]
        return head, _error(
            f'Line {index + 1} has no "request": expected {{"key": ..., "request": {{...}}}}.'
        )
    else:
        request = obj  # the bare-request form (the guide's REST example): no key
    if not isinstance(request, dict):
        return head, _error(
            f'Invalid JSON payload received on line {index + 1}: "request" must be an object.'
        )
    row = str(head.get("metadata", {}).get("key") if inline else head.get("key", index))
    try:
        return head, {"response": _answer(request, kind, model, inline, rules, row)}
    except ApiError as exc:
        return head, {"error": exc.to_status()}


def _answer(
    request: dict[str, Any], kind: str, model: str, inline: bool, rules: dict[str, Any], row: str
) -> dict[str, Any]:
    """The response to one request of a batch, with the job's line rules applied."""
    snake = rules["snake"] and not inline  # the HTTP layer of inline requests takes both
    if kind == "embed":
        return embed_content(model, request, snake=snake, token_count=True)
    if not inline and rules["refuse_schema"] and _has_response_schema(request):
        raise ApiError(400, RESPONSE_SCHEMA_MESSAGE)
    normal = validate.validate_generate_request(request, snake=snake)
    form, schema = schema_form(normal)
    if form is not None and rules["depth_limit"] is not None:
        depth = schema_depth(schema)
        if depth > rules["depth_limit"]:
            raise depth_error(depth, rules["depth_limit"])
    if rules["tools_fail"] and uses_tools_with_schema(normal):
        raise ApiError(400, TOOLS_MESSAGE)
    response = answers.answer(model, normal)
    if form is not None and form == rules["degenerate_form"]:
        _degenerate(response, rules["degenerate_pattern"], row)
    return response


def _has_response_schema(request: dict[str, Any]) -> bool:
    config = request.get("generation_config", request.get("generationConfig"))
    return isinstance(config, dict) and ("response_schema" in config or "responseSchema" in config)


def _degenerate(response: dict[str, Any], pattern: str, row: str) -> None:
    """Replace each candidate's structured answer with a degenerate one (usage recounted)."""
    answer_tokens = 0
    for candidate in response.get("candidates", []):
        parts = candidate.get("content", {}).get("parts", [])
        thoughts = [p for p in parts if p.get("thought")]
        text = "".join(p["text"] for p in parts if not p.get("thought"))
        new = degenerate(text, pattern, row)
        candidate["content"]["parts"] = [*thoughts, {"text": new}]
        answer_tokens += count_text_tokens(new)
    usage = response.get("usageMetadata", {})
    if answer_tokens and "candidatesTokenCount" in usage:
        usage["totalTokenCount"] += answer_tokens - usage["candidatesTokenCount"]
        usage["candidatesTokenCount"] = answer_tokens
        usage["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": answer_tokens}]


def _error(message: str) -> dict[str, Any]:
    return {"error": ApiError(400, message).to_status()}
