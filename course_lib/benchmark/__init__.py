"""One evaluation protocol for every shipped generative model: ``python -m course_lib.benchmark``.

Introduced in: Benchmark. Each chapter evaluated its models its own way (k = 100, 500 or 1000
importance samples, 1,000 to 10,000 images). This module re-evaluates every model of
`BENCHMARKED` with one `Protocol`: the same test images (the first ``n`` of the seeded
permutation of `course_lib.evaluation.test_subset`, binarized once with seed 0), the same
``k``, the same seeded noise, and the same sample-quality measure (the Fréchet LeNet distance
of ``samples`` decoder means against as many test images). It also times each model's
training step. The numbers go into each record under ``"benchmark"`` (weights untouched);
the benchmark chapter only reads them. Usage::

  python -m course_lib.benchmark                     # every model of BENCHMARKED, then the loop ratio
  python -m course_lib.benchmark vae_conv --n 10000 --device cuda
  python -m course_lib.benchmark --dry-run vae_mlp32 # print, write nothing
"""

from .images import generate, reconstruct
from .protocol import BENCHMARKED, Entry, Protocol, cached_bounds, test_data
from .run import evaluate, main, store
from .speed import loop_ratio, train_speed
from .table import BOUND_LABELS, DATA_LABELS, html_table, table_rows

__all__ = ["BENCHMARKED", "Entry", "Protocol", "cached_bounds", "test_data", "generate",
           "reconstruct", "evaluate", "main", "store", "loop_ratio", "train_speed", "BOUND_LABELS", "DATA_LABELS", "html_table",
           "table_rows"]
