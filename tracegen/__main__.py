"""``python -m tracegen`` runs the command line."""

import sys

from tracegen.cli import main

sys.exit(main())
