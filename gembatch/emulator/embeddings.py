"""Embeddings of the fake model: deterministic unit vectors for (text, taskType, title).

``embed_content`` gives a unit vector from shake_256 of the canonical JSON of (text, taskType,
title); a smaller ``outputDimensionality`` gives a renormalised prefix of the full vector
(Matryoshka-style). 3072 dimensions by default, 768 for text-embedding-* and embedding-001.

Example::

    >>> v = embed_content("models/gemini-embedding-001", {"content": {"parts": [{"text": "Hi"}]},
    ...                   "outputDimensionality": 8})["embedding"]["values"]
    >>> len(v), round(sum(x * x for x in v), 6)
    (8, 1.0)
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from gembatch.emulator.tokens import canonical_json, count_text_tokens
from gembatch.emulator.validate import MAX_EMBEDDING_DIMENSIONS, validate_embed_request

__all__ = ["embed_content"]

_SQUARES = tuple((2 * b - 255) ** 2 for b in range(256))


def embed_content(
    model: str, request: dict[str, Any], *, snake: bool = False, token_count: bool = False
) -> dict[str, Any]:
    """The wire EmbedContentResponse for ``request`` (validated first; ``snake``: proto field
    names only). ``token_count`` adds ``tokenCount`` (the text's tokens, an int64 string), as
    batch embedding results carry it."""
    normal = validate_embed_request(request, snake=snake)
    name = model.removeprefix("models/")
    small = name.startswith(("text-embedding", "embedding-001"))
    default = 768 if small else MAX_EMBEDDING_DIMENSIONS
    dims = normal.get("outputDimensionality", default)
    texts = [p["text"] for p in normal["content"]["parts"] if "text" in p]
    text = "\n".join(texts)
    key = canonical_json([text, normal.get("taskType", ""), normal.get("title", "")])
    digest = hashlib.shake_256(key.encode()).digest(dims)  # byte b -> 2b - 255, then normalised
    scale = 1 / math.sqrt(sum(map(_SQUARES.__getitem__, digest)))
    table = [(2 * b - 255) * scale for b in range(256)]
    response: dict[str, Any] = {"embedding": {"values": list(map(table.__getitem__, digest))}}
    if token_count:
        response["tokenCount"] = str(sum(count_text_tokens(t) for t in texts))
    return response
