"""The model catalog as data: the real models' names and fields, as ``GET /v1beta/models`` answers.

Each entry is a Model resource of the Gemini Developer API (name, version, displayName,
description, inputTokenLimit, outputTokenLimit, supportedGenerationMethods and, for generative
models, the sampling defaults). Sources: the models.list output recorded in public clients
(gemini-2.5-*, gemini-3-pro-preview), the Gemini models and embeddings pages, and the model names
google-genai's own test suite sends to the service (gemini-2.0-flash-001, gemini-embedding-2,
gemini-2.5-flash-preview-tts, ...). ``Behaviour.known_models_only`` makes every other name (or a
method a model does not support) answer 404 as the service does.

Example::

    >>> find("models/gemini-2.5-flash")["outputTokenLimit"]
    65536
    >>> supports("gemini-embedding-001", "asyncBatchEmbedContent")
    True
"""

from __future__ import annotations

from typing import Any

__all__ = ["MODELS", "find", "not_found_message", "public", "supports"]

_GENERATE = ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]
_EMBED = ["embedContent", "countTextTokens", "countTokens", "asyncBatchEmbedContent"]
_SAMPLING_25 = {"temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2, "thinking": True}
_SAMPLING_20 = {"temperature": 1, "topP": 0.95, "topK": 40, "maxTemperature": 2}
_MILLION = 1_048_576


def _model(
    name: str,
    version: str,
    display: str,
    description: str,
    limits: tuple[int, int],
    methods: list[str],
    sampling: dict[str, Any] | None = None,
    *,
    no_system_instruction: bool = False,
) -> dict[str, Any]:
    """A Model resource; keys starting with ``_`` are the emulator's own (never sent)."""
    entry: dict[str, Any] = {
        "name": f"models/{name}",
        "version": version,
        "displayName": display,
        "description": description,
        "inputTokenLimit": limits[0],
        "outputTokenLimit": limits[1],
        "supportedGenerationMethods": list(methods),
    }
    entry.update(sampling or {})
    if no_system_instruction:  # "Developer instruction is not enabled for models/..."
        entry["_noSystemInstruction"] = True
    return entry


#: The catalog, in the order ``models.list`` pages through it.
MODELS: tuple[dict[str, Any], ...] = (
    _model(
        "gemini-2.5-flash",
        "001",
        "Gemini 2.5 Flash",
        "Stable version of Gemini 2.5 Flash, "
        "our mid-size multimodal model that supports up to 1 million tokens, released in June "
        "of 2025.",
        (_MILLION, 65536),
        _GENERATE,
        _SAMPLING_25,
    ),
    _model(
        "gemini-2.5-pro",
        "2.5",
        "Gemini 2.5 Pro",
        "Stable release (June 17th, 2025) of Gemini 2.5 Pro",
        (_MILLION, 65536),
        _GENERATE,
        _SAMPLING_25,
    ),
    _model(
        "gemini-2.5-flash-lite",
        "001",
        "Gemini 2.5 Flash-Lite",
        "Stable version of Gemini 2.5 Flash-Lite, released in July of 2025",
        (_MILLION, 65536),
        _GENERATE,
        _SAMPLING_25,
    ),
    _model(
        "gemini-2.0-flash",
        "2.0",
        "Gemini 2.0 Flash",
        "Gemini 2.0 Flash",
        (_MILLION, 8192),
        _GENERATE,
        _SAMPLING_20,
    ),
    _model(
        "gemini-2.0-flash-001",
        "2.0",
        "Gemini 2.0 Flash 001",
        "Stable version of Gemini 2.0 "
        "Flash, our fast and versatile multimodal model for scaling across diverse tasks, "
        "released in January of 2025.",
        (_MILLION, 8192),
        _GENERATE,
        _SAMPLING_20,
    ),
    _model(
        "gemini-2.0-flash-lite",
        "2.0",
        "Gemini 2.0 Flash-Lite",
        "Gemini 2.0 Flash-Lite",
        (_MILLION, 8192),
        _GENERATE,
        _SAMPLING_20,
    ),
    _model(
        "gemini-2.0-flash-lite-001",
        "2.0",
        "Gemini 2.0 Flash-Lite 001",
        "Stable version of Gemini 2.0 Flash-Lite",
        (_MILLION, 8192),
        _GENERATE,
        _SAMPLING_20,
    ),
    _model(
        "gemini-3-pro-preview",
        "3-pro-preview-11-2025",
        "Gemini 3 Pro Preview",
        "Gemini 3 Pro Preview",
        (_MILLION, 65536),
        _GENERATE,
        _SAMPLING_25,
    ),
    _model(
        "gemini-3-flash-preview",
        "3-flash-preview-12-2025",
        "Gemini 3 Flash Preview",
        "Gemini 3 Flash Preview",
        (_MILLION, 65536),
        _GENERATE,
        _SAMPLING_25,
    ),
    _model(
        "gemini-flash-latest",
        "Gemini Flash Latest",
        "Gemini Flash Latest",
        "Latest release of Gemini Flash",
        (_MILLION, 65536),
        _GENERATE,
        _SAMPLING_25,
    ),
    _model(
        "gemini-flash-lite-latest",
        "Gemini Flash-Lite Latest",
        "Gemini Flash-Lite Latest",
        "Latest release of Gemini Flash-Lite",
        (_MILLION, 65536),
        _GENERATE,
        _SAMPLING_25,
    ),
    _model(
        "gemini-2.5-flash-preview-tts",
        "gemini-2.5-flash-exp-tts-2025-05-19",
        "Gemini 2.5 Flash Preview TTS",
        "Gemini 2.5 Flash Preview TTS",
        (8192, 16384),
        ["countTokens", "generateContent", "batchGenerateContent"],
        {"temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2},
    ),
    _model(
        "gemini-2.5-flash-image",
        "2.0",
        "Nano Banana",
        "Gemini 2.5 Flash Preview Image",
        (32768, 32768),
        ["generateContent", "countTokens", "batchGenerateContent"],
        {"temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2},
        no_system_instruction=True,
    ),
    # names google-genai's own test suite (3.6) sends to the service; fields inferred
    _model(
        "gemini-2.0-flash-preview-image-generation",
        "2.0",
        "Gemini 2.0 Flash Preview Image Generation",
        "Gemini 2.0 Flash Preview Image Generation",
        (32768, 8192),
        ["generateContent", "countTokens", "batchGenerateContent"],
        _SAMPLING_20,
    ),
    _model(
        "gemini-3.8-flash",
        "3.8",
        "Gemini 3.8 Flash",
        "Gemini 3.8 Flash",
        (_MILLION, 65536),
        _GENERATE,
        _SAMPLING_25,
    ),
    _model(
        "gemini-2.5-flash-preview-tts-voice-replication-rev22-2025-10-28",
        "gemini-2.5-flash-preview-tts-voice-replication-rev22-2025-10-28",
        "Gemini 2.5 Flash Preview TTS (voice replication)",
        "Gemini 2.5 Flash Preview TTS with voice replication",
        (8192, 16384),
        ["countTokens", "generateContent"],
        {"temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2},
    ),
    _model(
        "gemini-embedding-001",
        "001",
        "Gemini Embedding 001",
        "Obtain a distributed representation of a text.",
        (2048, 1),
        _EMBED,
    ),
    _model(
        "gemini-embedding-2",
        "2",
        "Gemini Embedding 2",
        "Obtain a distributed representation of a text, image, video, audio or document.",
        (8192, 1),
        _EMBED,
    ),
    _model(
        "text-embedding-004",
        "004",
        "Text Embedding 004",
        "Obtain a distributed representation of a text.",
        (2048, 1),
        ["embedContent"],
    ),
)

_BY_NAME = {entry["name"]: entry for entry in MODELS}


def find(model: str) -> dict[str, Any] | None:
    """The catalog entry of ``model`` (``models/`` prefix optional), or None."""
    return _BY_NAME.get(model if model.startswith("models/") else f"models/{model}")


def any_model(model: str) -> dict[str, Any]:
    """A Model resource for a name outside the catalog (``known_models_only=False``): every
    generation and embedding method, the 2.5 models' limits."""
    name = model.removeprefix("models/")
    methods = list(dict.fromkeys(_GENERATE + _EMBED))
    return _model(
        name, "001", name, "A model the emulator was not told about.", (_MILLION, 65536), methods
    )


def supports(model: str, method: str) -> bool:
    """Whether ``model`` is in the catalog and lists ``method`` (e.g. ``batchGenerateContent``)."""
    entry = find(model)
    return entry is not None and method in entry["supportedGenerationMethods"]


def not_found_message(model: str, method: str, version: str = "v1beta") -> str:
    """The service's 404 for an unknown model or an unsupported method."""
    name = model if model.startswith("models/") else f"models/{model}"
    return (
        f"{name} is not found for API version {version}, or is not supported for {method}. "
        "Call ListModels to see the list of available models and their supported methods."
    )


def public(entry: dict[str, Any]) -> dict[str, Any]:
    """A catalog entry as the service sends it (the emulator's own ``_`` keys dropped)."""
    return {k: v for k, v in entry.items() if not k.startswith("_")}
