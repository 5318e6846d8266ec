"""A faithful local emulator of the Gemini Batch + File APIs (Gemini Developer API, v1beta).

It speaks the service's REST wire format, so the real google-genai SDK and curl talk to it unchanged::

    from google import genai
    from google.genai import types
    from gembatch.emulator import Emulator, HttpFault

    with Emulator(faults=[HttpFault(endpoint="batches.create", status=429, nth=2)]) as emu:
        client = genai.Client(api_key=emu.api_key, http_options=types.HttpOptions(base_url=emu.base_url))
        job = client.batches.create(model="gemini-2.5-flash", src=[{"contents": "Hi"}])

From the command line: ``python -m gembatch.emulator --port 8765 --data-dir DIR`` (or
``gembatch emulator ...``); ``--help`` lists the ``--fault`` syntax.

Pieces: ``handler`` (the one seam, request -> response), ``server`` (HTTP on 127.0.0.1 and
``Emulator``), ``transport`` (the same handler as an in-process httpx transport), ``jobs`` (job
lifecycle and worker), ``store`` (the data directory), ``faults`` (fault rules), ``model`` (the
deterministic fake model).
"""

from __future__ import annotations

from .errors import ApiError
from .faults import (
    ENDPOINTS,
    Delays,
    DropConnection,
    Faults,
    HttpFault,
    JobOutcome,
    LineFaults,
    parse_fault,
)
from .server import DEFAULT_API_KEY, Emulator

__all__ = [
    "DEFAULT_API_KEY",
    "ENDPOINTS",
    "ApiError",
    "Delays",
    "DropConnection",
    "Emulator",
    "Faults",
    "HttpFault",
    "JobOutcome",
    "LineFaults",
    "parse_fault",
]
