"""``python -m superpose.cli``: the same as the `superpose` command."""

import sys

from superpose.cli import main

sys.exit(main())
