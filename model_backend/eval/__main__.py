"""``python -m model_backend.eval``: the evaluation harness."""

import sys

from ..commands.eval import main

sys.exit(main())
