"""Facts about the course that live in exactly one place.

`REPO_URL` is the single source of the repository address and `RELEASE` the git tag that the
Colab setup cell installs: the setup cell of every notebook is generated from them
(``python -m course_lib.notebook``) and a test checks that `_config.yml` and every notebook
agree with them. To release: bump `__version__`, run ``python -m course_lib.notebook``, commit,
and tag that commit ``v<version>``; the book built from it then installs exactly that code.
"""

__version__ = "0.3.0"
RELEASE = f"v{__version__}"   # the tag the Colab cell clones: the code the book was built from
REPO_URL = "https://github.com/open-vae-course/vae-course"
BRANCH = "main"               # what the launch buttons of the web book point at
