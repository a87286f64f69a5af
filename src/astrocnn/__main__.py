"""``python -m astrocnn``: the ``astrocnn`` command."""
import sys

from astrocnn.apps.cli import main

sys.exit(main())
