"""``import gembatch.pandas`` registers ``pd.DataFrame.gemini`` (``import gembatch`` does it too:
at once when pandas is imported already, else as soon as pandas is). Needs pandas
(``pip install 'gembatch[pandas]'``).

>>> import pandas as pd
>>> import gembatch.pandas
>>> pdf = pd.DataFrame({"prompt": ["Say hi"]}, index=["x"])
>>> out = pdf.gemini.batch_generate("prompt", config=cfg, options=FAST, progress=False)
>>> type(out).__name__, out["gemini_status"].tolist()
('DataFrame', ['ok'])
"""

from __future__ import annotations

from .namespace import register_pandas

__all__: list[str] = []

register_pandas()
