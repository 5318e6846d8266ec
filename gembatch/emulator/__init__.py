"""A faithful local emulator of the Gemini Batch + File APIs (Gemini Developer API, v1beta).

It speaks the service's REST wire format, so the real google-genai SDK and curl talk to it
unchanged::

    from google import genai
    from google.genai import types
    from gembatch.emulator import Emulator, HttpFault

    with Emulator(faults=[HttpFault(endpoint="batches.create", status=429, nth=2)]) as emu:
        options = types.HttpOptions(base_url=emu.base_url)
        client = genai.Client(api_key=emu.api_key, http_options=options)
        job = client.batches.create(model="gemini-2.5-flash", src=[{"contents": "Hi"}],
                                    config={"display_name": "hello"})

How the service behaves where public reports differ is data: ``Behaviour`` (one named switch
per reported variant; ``Behaviour.strict()`` is the real service as reported, ``lenient()`` the
kind behaviour; ``Emulator(behaviour=None)`` uses ``DEFAULT_BEHAVIOUR``), and quotas and rate
limits are ``Limits`` (tier-1 figures by default, ``Limits.off()``).

From the command line: ``python -m gembatch.emulator --port 8765 --data-dir DIR`` (or
``gembatch emulator ...``); ``--help`` lists the ``--fault`` and ``--behaviour`` syntax.

Modules, one concern each::

    server        HTTP on 127.0.0.1, and ``Emulator``, which owns the parts
    transport     the same handler as an in-process httpx transport
    handler       the one seam, request -> response: routing, auth, faults, the model list
    web           Request, Response, JSON bodies, paging
    files_api     the File API (uploads, get, list, delete, download)
    batches_api   the Batch API (create, get, list, cancel, delete)
    interactive   generateContent, streamGenerateContent, countTokens, embedContent
    jobs          job lifecycle and the worker;  operations: a job as an Operation
    lines         answering input lines (and worker processes);  inputs: input checks at create
    store         the data directory;  codec: JSON;  errors: ApiError, gRPC codes
    faults        fault rules;  behaviour: service switches;  catalog: the model list
    limits        quota settings;  quota: their accounting and 429s
    schema_faults structured-output misbehaviours of batch jobs
    model         the fake model, re-exporting proto, validate, tokens, draws, schema_values,
                  answers and embeddings
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
