"""``python -m fastface.cli ...``: the ``fastface`` command."""
import sys

from . import main

sys.exit(main())
