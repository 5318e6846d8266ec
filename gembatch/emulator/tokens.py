"""The token rule and the prompt facts the fake model reads: texts, attachments, prompt tokens.

One rule, ``TOKEN_RULE_DOC``, replaces Gemini's tokenizer everywhere: answers' usageMetadata,
countTokens, and the batch quotas (tokens enqueued per model) all count with it.

Example::

    >>> p = Prompt({"contents": [{"parts": [{"text": "abcde"}]}]})
    >>> p.tokens, p.user_text
    (2, 'abcde')
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = [
    "TOKENS_PER_MEDIA_PART",
    "TOKEN_RULE_DOC",
    "Prompt",
    "canonical_json",
    "compact_json",
    "count_text_tokens",
    "modality_details",
]

#: The canonical JSON text (sorted keys, ASCII) that seeds and non-text token counts use.
canonical_json: Callable[[Any], str] = json.JSONEncoder(
    sort_keys=True, separators=(",", ":")
).encode
#: Compact JSON as the fake model writes structured answers.
compact_json: Callable[[Any], str] = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":")
).encode

TOKENS_PER_MEDIA_PART = 258

TOKEN_RULE_DOC = (
    "The emulator counts tokens with one rule, not Gemini's tokenizer: a text costs "
    'ceil(len(text) / 4) tokens, counting Python characters (code points), so "" costs 0, '
    '"abcd" 1 and "abcde" 2; every inlineData or fileData part costs a flat 258 tokens '
    "whatever its size; any other part (functionCall, functionResponse, executableCode, "
    "codeExecutionResult) costs the text rule applied to its compact JSON. promptTokenCount is the "
    "sum over every part of contents and systemInstruction, and countTokens answers the same "
    "number; candidatesTokenCount applies the text rule to the answer text of every candidate "
    "(thought parts excluded); thoughtsTokenCount applies it to the thinking text (0 for models "
    "before gemini-2.5 and when thinkingBudget is 0); cachedContentTokenCount is always 0; "
    "totalTokenCount = promptTokenCount + candidatesTokenCount + thoughtsTokenCount."
)


def count_text_tokens(text: str) -> int:
    """Tokens of ``text`` under the emulator's rule: ceil(len(text) / 4).

    >>> [count_text_tokens(t) for t in ("", "abcd", "abcde")]
    [0, 1, 2]
    """
    return (len(text) + 3) // 4


class Prompt:
    """What the fake model reads from a request: texts, attachments, directives, prompt tokens."""

    __slots__ = ("attachments", "details", "directive_text", "system_text", "tokens", "user_text")

    def __init__(self, request: dict[str, Any]) -> None:
        self.attachments: list[str] = []
        self.details: dict[str, int] = {"TEXT": 0}
        self.user_text = ""
        texts: list[str] = []
        for content in request["contents"]:
            text = self._scan(content["parts"])
            if text is not None:
                texts.append(text)
                if content.get("role", "user") == "user":
                    self.user_text = text
        self.directive_text = "\n".join(texts)
        system = request.get("systemInstruction")
        self.system_text = (self._scan(system["parts"], media=False) or "") if system else ""
        self.tokens = sum(self.details.values())

    def _scan(self, parts: list[dict[str, Any]], media: bool = True) -> str | None:
        """Count the parts' tokens into ``details``; return their joined text (None if none)."""
        texts: list[str] = []
        details = self.details
        for part in parts:
            text = part.get("text")
            if text is not None:
                texts.append(text)
                details["TEXT"] += (len(text) + 3) // 4
                continue
            blob = part.get("inlineData") or part.get("fileData")
            if blob is not None:
                mime = blob.get("mimeType", "application/octet-stream")
                if media:
                    self.attachments.append(mime)
                modality = _modality(mime)
                details[modality] = details.get(modality, 0) + TOKENS_PER_MEDIA_PART
            else:
                details["TEXT"] += count_text_tokens(canonical_json(part))
        return " ".join(texts) if texts else None


_MODALITIES = {"image": "IMAGE", "video": "VIDEO", "audio": "AUDIO", "text": "TEXT"}


def _modality(mime: str) -> str:
    return _MODALITIES.get(mime.split("/", 1)[0], "DOCUMENT")


def modality_details(counts: dict[str, int]) -> list[dict[str, Any]]:
    """``ModalityTokenCount`` entries as the service sends them: modalities with no tokens left
    out."""
    return [{"modality": m, "tokenCount": n} for m, n in counts.items() if n]
