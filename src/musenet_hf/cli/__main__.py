"""``python -m musenet_hf.cli``: the ``musenet`` command (see :mod:`musenet_hf.cli`)."""

import sys

from musenet_hf.cli import main

sys.exit(main())
