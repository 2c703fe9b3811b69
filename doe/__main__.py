"""``python -m doe``: see doe.cli."""

import sys

from doe.cli import main

sys.exit(main())
