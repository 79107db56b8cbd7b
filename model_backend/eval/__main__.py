"""``python -m model_backend.eval``: the evaluation harness."""

import sys

from .cli import main

sys.exit(main())
