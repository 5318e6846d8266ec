"""The batch job as the service sends it: an Operation, its output, and what a job keeps of the
behaviour it was created under.

``operation`` renders a job record as ``batches.get`` answers: ``{"name": "batches/<id>",
"metadata": GenerateContentBatch | EmbedContentBatch, "done": true (terminal states only; a
pending or running operation has no "done" key), "response": ...Output, "error": Status}`` with
zero counts left out of ``batchStats`` (proto3 JSON). ``job_output`` reads a finished job's
output: the result file's name, or the inline answers in the order and with the ``metadata``
echo its behaviour says (``inline_order``, ``inline_metadata``); a listing carries no inline
answers.
"""

from __future__ import annotations

import random
from typing import Any

from .behaviour import Behaviour
from .codec import json_loads
from .lines import line_rules

__all__ = ["TERMINAL_STATES", "job_behaviour", "job_output", "operation"]

TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED"})
_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main."
_META_TYPE = {"generate": _TYPE + "GenerateContentBatch", "embed": _TYPE + "EmbedContentBatch"}
_OUTPUT_TYPE = {
    "generate": _TYPE + "GenerateContentBatchOutput",
    "embed": _TYPE + "EmbedContentBatchOutput",
}


def job_behaviour(behaviour: Behaviour) -> dict[str, Any]:
    """The parts of ``behaviour`` a job keeps from its creation (JSON-able)."""
    return {
        "inline_order": behaviour.inline_order,
        "inline_metadata": behaviour.inline_metadata,
        "lines": line_rules(behaviour),
    }


def operation(job: dict[str, Any], output: dict[str, Any] | None) -> dict[str, Any]:
    """The Operation of ``job`` with ``output`` (None or empty: none shown yet)."""
    name, state, kind = f"batches/{job['id']}", job["state"], job["kind"]
    done = job["succeeded"] + job["failed"]
    counts = {
        "requestCount": job["requestCount"],
        "successfulRequestCount": job["succeeded"],
        "failedRequestCount": job["failed"],
        "pendingRequestCount": job["requestCount"] - done,
    }
    meta: dict[str, Any] = {"@type": _META_TYPE[kind], "model": job["model"]}
    if job["displayName"]:  # proto3 JSON leaves out empty strings
        meta["displayName"] = job["displayName"]
    if "file" in job["input"]:
        meta["inputConfig"] = {"fileName": job["input"]["file"]}
    meta.update(
        {
            "state": f"BATCH_STATE_{state}",
            "createTime": job["createTime"],
            "updateTime": job["updateTime"],
        }
    )
    if "endTime" in job:
        meta["endTime"] = job["endTime"]
    # proto3 JSON leaves out zero counts, as the service does
    meta["batchStats"] = {k: str(v) for k, v in counts.items() if v}
    if output:
        meta["output"] = output
    meta["name"] = name
    op: dict[str, Any] = {"name": name, "metadata": meta}
    if state in TERMINAL_STATES:  # a pending or running operation has no "done" at all
        op["done"] = True
    if output:
        op["response"] = {"@type": _OUTPUT_TYPE[kind], **output}
    if "error" in job:
        op["error"] = job["error"]
    return op


def job_output(
    job: dict[str, Any], store: Any, rules: dict[str, Any], *, listing: bool
) -> dict[str, Any] | None:
    """The output of a finished ``job`` (None before there is one)."""
    out = job.get("output")
    if out is None:
        return None
    if "file" in out:
        return {"responsesFile": out["file"]}
    if listing:
        return {}
    items = []
    path = store.job_path(job["id"], ".results.jsonl")
    if path.exists():
        with open(path, "rb") as f:
            items = [json_loads(line) for line in f if line.strip()]
    if rules["inline_metadata"] == "dropped":
        for item in items:
            item.pop("metadata", None)
    if rules["inline_order"] == "shuffled":
        random.Random(job["id"]).shuffle(items)
    return {"inlinedResponses": {"inlinedResponses": items}}
