"""Seeded choices of one request: words from a SHAKE-256 stream, the rest from a seeded Random.

Example::

    >>> d = Draws(b"seed")
    >>> d.words() == Draws(b"seed").words()
    True
"""

from __future__ import annotations

import hashlib
import random

__all__ = ["VOCAB", "Draws"]

VOCAB = (  # 64 words: a random byte & 63 picks one without bias
    "amber",
    "basalt",
    "cobalt",
    "delta",
    "ember",
    "fjord",
    "granite",
    "harbor",
    "indigo",
    "juniper",
    "kestrel",
    "lagoon",
    "meadow",
    "nebula",
    "orchid",
    "prairie",
    "quartz",
    "raven",
    "saffron",
    "tundra",
    "umber",
    "valley",
    "willow",
    "xenon",
    "yarrow",
    "zephyr",
    "anchor",
    "beacon",
    "canyon",
    "dune",
    "estuary",
    "falcon",
    "glacier",
    "heron",
    "island",
    "jasper",
    "kelp",
    "lichen",
    "mesa",
    "nectar",
    "ocean",
    "pebble",
    "quill",
    "river",
    "summit",
    "thistle",
    "upland",
    "vapor",
    "wharf",
    "yonder",
    "zenith",
    "alpine",
    "brook",
    "cedar",
    "dawn",
    "elm",
    "fern",
    "grove",
    "hollow",
    "ivy",
    "jade",
    "knoll",
    "lantern",
    "maple",
)


class Draws:
    """The seeded choices of one request.

    Words come from a SHAKE-256 stream of the seed (one byte each, cheap enough for a million
    lines); everything else (structured values, safety ratings) from ``random.Random(seed)``, made
    on first use because seeding a Mersenne Twister costs as much as the rest of a plain answer.
    """

    __slots__ = ("_rng", "pos", "seed", "stream")

    def __init__(self, seed: bytes) -> None:
        self.seed, self.stream, self.pos = seed, b"", 0
        self._rng: random.Random | None = None

    @property
    def rng(self) -> random.Random:
        if self._rng is None:
            self._rng = random.Random(int.from_bytes(self.seed, "big"))
        return self._rng

    def words(self) -> str:
        """8-40 words of the 64-word vocabulary: one byte for the count, one per word."""
        pos = self.pos
        if pos + 41 > len(self.stream):  # SHAKE output is prefix-stable: a longer read extends it
            self.stream = hashlib.shake_256(self.seed).digest(2 * len(self.stream) + 164)
        data = self.stream[pos : pos + 41]
        count = 8 + data[0] % 33
        self.pos = pos + 1 + count
        return " ".join([VOCAB[b & 63] for b in data[1 : 1 + count]])
