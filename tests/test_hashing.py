"""Request content addresses: canonical, stable, the same with and without the plugin."""

from __future__ import annotations

import hashlib

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from gembatch._build import hashing
from gembatch._build.lines import build_generate_lines, static_json


def _hash(
    frame: pl.DataFrame,
    static: dict,
    *,
    model: str = "gemini-2.5-flash",
    service: str = hashing.GOOGLE,
    keys: pl.Expr | None = None,
) -> list[str]:
    lines = build_generate_lines(
        frame,
        prompt=pl.col("p"),
        keys=keys if keys is not None else pl.int_range(pl.len()).cast(pl.Utf8),
        static=static,
        hash_prefix=hashing.hash_prefix("generate", model, service),
    )
    return lines["hash"].to_list()


def test_hashes_ignore_keys_but_not_content_model_or_service():
    frame = pl.DataFrame({"p": ["a", "b", "a"]})
    h = _hash(frame, {})
    assert h[0] == h[2] != h[1] and all(len(x) == 64 for x in h)
    assert _hash(frame, {}, keys=pl.lit("k") + pl.int_range(pl.len()).cast(pl.Utf8)) == h
    assert _hash(frame, {}, model="models/gemini-2.5-flash") == h  # "models/" is the same model
    assert _hash(frame, {}, model="gemini-2.5-pro")[0] != h[0]
    assert _hash(frame, {}, service="emulator")[0] != h[0]
    assert _hash(frame, {"generationConfig": {"temperature": 0.5}})[0] != h[0]


def test_the_shared_part_is_canonical_key_order_and_floats():
    a = {
        "generationConfig": {"temperature": 1.0, "topP": 0.95},
        "systemInstruction": {"parts": [{"text": "x"}]},
    }
    b = {
        "systemInstruction": {"parts": [{"text": "x"}]},
        "generationConfig": {"topP": 0.950, "temperature": 1},
    }
    assert static_json(a) == static_json(b)
    frame = pl.DataFrame({"p": ["q"]})
    assert _hash(frame, a) == _hash(frame, b)


def test_whitespace_inside_a_prompt_is_content():
    assert len(set(_hash(pl.DataFrame({"p": ["a b", "a  b", "a b "]}), {}))) == 3


def test_plugin_and_hashlib_give_the_same_digests():
    values = pl.Series(["", "é", "x" * 10_000, '\x00\n"', None])
    fallback = hashing._hashlib_sha256(values).to_list()
    assert fallback[:4] == [hashlib.sha256(v.encode()).hexdigest() for v in values[:4]]
    got = values.to_frame("v").select(hashing.hash_expr(pl.col("v"))).to_series().to_list()
    assert got[:4] == fallback[:4] and got[4] is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=30))
def test_equal_hashes_exactly_for_equal_prompts(prompts):
    hashes = _hash(
        pl.DataFrame({"p": prompts}, schema={"p": pl.Utf8}), {"generationConfig": {"seed": 1}}
    )
    for i, a in enumerate(prompts):
        for j, b in enumerate(prompts):
            assert (hashes[i] == hashes[j]) == (a == b)
