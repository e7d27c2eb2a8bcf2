"""`python -m dynmx` runs the CLI."""

import sys

from dynmx.cli import main

if __name__ == "__main__":  # not when a child process of the zone parser imports it
    sys.exit(main())
