"""A faithful local emulator of the Gemini Batch + File APIs (Gemini Developer API, v1beta).

It speaks the service's REST wire format, so the real google-genai SDK and curl talk to it
unchanged::

    from google import genai
    from google.genai import types
    from gembatch.emulator import Emulator, HttpFault

    with Emulator(faults=[HttpFault(endpoint="batches.create", status=429, nth=2)]) as emu:
        options = types.HttpOptions(base_url=emu.base_url)
        client = genai.Client(api_key=emu.api_key, http_options=options)
        job = client.batches.create(model="gemini-2.5-flash", src=[{"contents": "Hi"}])

How the service behaves where public reports differ is data: ``Behaviour`` (one named switch
per reported variant; ``Behaviour.strict()`` is the real service as reported, ``lenient()`` the
kind behaviour; ``Emulator(behaviour=None)`` uses ``DEFAULT_BEHAVIOUR``), and quotas and rate
limits are ``Limits`` (tier-1 figures by default, ``Limits.off()``).

From the command line: ``python -m gembatch.emulator --port 8765 --data-dir DIR`` (or
``gembatch emulator ...``); ``--help`` lists the ``--fault`` and ``--behaviour`` syntax.

Pieces: ``server`` (HTTP on 127.0.0.1 and ``Emulator``), ``transport`` (the same handler as an
in-process httpx transport), ``handler`` (the one seam, request -> response: routing, faults, the
model list, interactive calls), ``web`` (Request, Response, JSON helpers), ``files_api`` and
``batches_api`` (the File and Batch APIs), ``jobs`` (job lifecycle and worker), ``lines``
(answering input lines, worker processes), ``inputs`` (input checks at create), ``store`` (the
data directory), ``faults`` (fault rules), ``behaviour`` (service switches), ``limits`` and
``quota`` (quotas and rate limits), ``catalog`` (the model list), ``schema_faults`` (structured-
output misbehaviours), and the fake model: ``model`` re-exports ``proto``, ``validate``,
``tokens``, ``draws``, ``schema_values``, ``answers`` and ``embeddings``.
"""

from __future__ import annotations

from .behaviour import BEHAVIOUR_NAMES, DEFAULT_BEHAVIOUR, Behaviour, parse_behaviour
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
from .limits import DEFAULT_LIMITS, Limits
from .server import DEFAULT_API_KEY, Emulator

__all__ = [
    "BEHAVIOUR_NAMES",
    "DEFAULT_API_KEY",
    "DEFAULT_BEHAVIOUR",
    "DEFAULT_LIMITS",
    "ENDPOINTS",
    "ApiError",
    "Behaviour",
    "Delays",
    "DropConnection",
    "Emulator",
    "Faults",
    "HttpFault",
    "JobOutcome",
    "LineFaults",
    "Limits",
    "parse_behaviour",
    "parse_fault",
]
