"""``python -m fastface ...``: the ``fastface`` command."""
import sys

from .cli import main

sys.exit(main())
