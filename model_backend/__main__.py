"""``python -m model_backend``: the headless command line."""

import sys

from .commands.main import main

sys.exit(main())
