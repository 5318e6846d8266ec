"""The fake Gemini model's public names, re-exported from the modules that implement them.

Nothing here is a language model: every answer is a pure function of (model name, normalised
request). The parts, one concern each:

    proto          proto-JSON parsing of request messages (field tree, value types, key spelling)
    validate       the service's semantic request checks (``validate_*_request``)
    tokens         the token rule (``TOKEN_RULE_DOC``) and the prompt facts the model reads
    draws          seeded choices: words from a SHAKE-256 stream, the rest from a seeded Random
    schema_values  values that validate against a responseSchema / responseJsonSchema
    answers        ``generate_content`` and ``count_tokens`` (test directives, usageMetadata)
    embeddings     ``embed_content``: deterministic unit vectors

Example::

    >>> r = generate_content("models/gemini-2.5-flash", {"contents": [{"parts": [{"text": "Hi"}]}]})
    >>> r["candidates"][0]["content"]["parts"][0]["text"].startswith('Answer to "Hi": ')
    True
"""

from __future__ import annotations

from gembatch.emulator.answers import count_tokens, generate_content
from gembatch.emulator.embeddings import embed_content
from gembatch.emulator.tokens import TOKEN_RULE_DOC, TOKENS_PER_MEDIA_PART, count_text_tokens
from gembatch.emulator.validate import validate_embed_request, validate_generate_request

__all__ = [
    "TOKENS_PER_MEDIA_PART",
    "TOKEN_RULE_DOC",
    "count_text_tokens",
    "count_tokens",
    "embed_content",
    "generate_content",
    "validate_embed_request",
    "validate_generate_request",
]
