"""``python -m course_lib.benchmark``: see `course_lib.benchmark` (introduced in: Benchmark)."""

from .run import main

main()
