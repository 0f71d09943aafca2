"""pytest set-up for the whole repository, loaded however pytest is started (`pytest`,
`pytest book/05_vae.ipynb`, `pytest tests/test_vae.py`): the smoke setting.

nbval starts one kernel per notebook from this process; the kernels inherit these variables,
so every chapter runs in the small, fast setting under pytest. Set before any kernel starts.
"""

import os

os.environ["VAE_COURSE_SMOKE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
