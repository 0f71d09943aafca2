"""Facts about the course that live in exactly one place.

`REPO_URL` is the single source of the repository address: the Colab setup cell of every
notebook is generated from it (``python -m course_lib.notebook --sync``) and a test checks
that `_config.yml` and every notebook agree with it.
"""

__version__ = "0.1.0"
REPO_URL = "https://github.com/open-vae-course/vae-course"
BRANCH = "main"
