"""``import gembatch.pandas`` registers ``pd.DataFrame.gemini`` (done automatically by ``import
gembatch``
when pandas was imported first). Needs ``pip install 'gembatch[pandas]'``.

>>> # import pandas as pd, gembatch
>>> # out = pdf.gemini.batch_generate("prompt", config=gembatch.Config(model="gemini-2.5-flash"))
"""

from __future__ import annotations

from .namespace import register_pandas

register_pandas()
