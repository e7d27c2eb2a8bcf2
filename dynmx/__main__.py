"""`python -m dynmx` runs the CLI."""

import sys

from dynmx.cli import main

sys.exit(main())
