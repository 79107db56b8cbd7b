"""``python -m model_backend.worker``: run the worker on stdin/stdout."""

import sys

from .server import main

sys.exit(main())
