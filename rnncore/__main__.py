"""``python -m rnncore``: the ``rnncore`` command (:mod:`rnncore.cli`); with no arguments it runs
``rnncore diagnose``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
