"""The ``gemini`` namespace on polars frames: a thin shortcut to :mod:`gembatch.api`.

Importing gembatch registers it, so ``df.gemini.batch_generate(...)`` is
``gembatch.batch_generate(df, ...)``. Type checkers cannot see registered namespaces; typed code can
call the functions directly.
"""

from __future__ import annotations

import inspect
from typing import Any

import polars as pl

from . import api

__all__ = ["GeminiFrameNamespace"]


class GeminiFrameNamespace:
    """``df.gemini`` / ``lf.gemini``: batch generation and embeddings for this frame."""

    def __init__(self, frame: pl.DataFrame | pl.LazyFrame) -> None:
        self._frame = frame

    def batch_generate(self, prompt: str | pl.Expr, **kwargs: Any) -> Any:
        """See :func:`gembatch.batch_generate`.

        >>> out = df.gemini.batch_generate("prompt", config=cfg, options=FAST, progress=False)
        >>> out["gemini_status"].to_list()
        ['ok', 'ok']
        """
        return api.batch_generate(self._frame, prompt, **kwargs)

    def plan(self, prompt: str | pl.Expr, **kwargs: Any) -> Any:
        """See :func:`gembatch.plan`: what ``batch_generate`` would send and cost, sending nothing.

        >>> df.gemini.plan("prompt", config=cfg).to_send
        2
        """
        return api.plan(self._frame, prompt, **kwargs)

    def estimate(self, prompt: str | pl.Expr, **kwargs: Any) -> Any:
        """See :func:`gembatch.estimate`: tokens and the cost bound at the batch rate.

        >>> df.gemini.estimate("prompt", config=cfg.replace(max_output_tokens=10)).requests
        2
        """
        return api.estimate(self._frame, prompt, **kwargs)

    def batch_embed(self, text: str | pl.Expr, **kwargs: Any) -> Any:
        """See :func:`gembatch.batch_embed`.

        >>> out = df.gemini.batch_embed("text", output_dimensionality=4, options=FAST,
        ...                             progress=False)
        >>> out["gemini_embedding"].dtype
        Array(Float32, shape=(4,))
        """
        return api.batch_embed(self._frame, text, **kwargs)


def _mirror(method: Any, fn: Any) -> None:
    """Give ``method`` the signature and parameter docs of ``fn`` without its first parameter (the
    frame), so that help() and Shift-Tab show every option; the examples stay the method's own."""
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())[1:]
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    method.__signature__ = sig.replace(parameters=[self_param, *params])
    body = "\n".join(
        line
        for line in inspect.cleandoc(fn.__doc__ or "").splitlines()
        if not line.lstrip().startswith((">>>", "..."))
    )
    own = inspect.cleandoc(method.__doc__ or "")
    method.__doc__ = f"{own}\n\n{body}"


for _name, _fn in (
    ("batch_generate", api.batch_generate),
    ("plan", api.plan),
    ("estimate", api.estimate),
    ("batch_embed", api.batch_embed),
):
    _mirror(getattr(GeminiFrameNamespace, _name), _fn)


def register() -> None:
    """Register the namespace on polars DataFrame and LazyFrame, and on pandas DataFrame: at once
    when pandas is imported already, else when it is (``import gembatch.pandas`` registers it
    explicitly)."""
    import sys
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # re-registering (a reload) warns
        for register_ns in (
            pl.api.register_dataframe_namespace,
            pl.api.register_lazyframe_namespace,
        ):
            register_ns("gemini")(GeminiFrameNamespace)
    if sys.modules.get("pandas") is not None:  # (None: pandas blocked, e.g. in tests)
        register_pandas()
    elif not any(isinstance(f, _WhenPandasImported) for f in sys.meta_path):
        sys.meta_path.insert(0, _WhenPandasImported())  # pandas imported after gembatch


class _WhenPandasImported:
    """An import hook: when pandas is imported after gembatch (the order isort gives), its
    DataFrames get ``.gemini`` as soon as pandas is loaded, as when it was imported first. It
    leaves ``sys.meta_path`` once pandas is loaded (a mere lookup of pandas' spec leaves it on)."""

    def __init__(self) -> None:
        self._looking = False

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        import importlib.util
        import sys

        if name != "pandas" or self._looking:
            return None
        self._looking = True
        try:  # what the other finders find
            spec = importlib.util.find_spec(name)
        finally:
            self._looking = False
        loader = getattr(spec, "loader", None)
        run = getattr(loader, "exec_module", None)
        if run is None:
            return spec

        def exec_module(module: Any) -> None:
            run(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            try:
                register_pandas()
            except Exception:  # noqa: BLE001 - never break the user's import of pandas
                pass

        loader.exec_module = exec_module  # type: ignore[union-attr]  # this spec's loader only
        return spec


def register_pandas() -> None:
    """Register ``pd.DataFrame.gemini`` (results come back as pandas DataFrames)."""
    import warnings

    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pd.api.extensions.register_dataframe_accessor("gemini")(GeminiFrameNamespace)
