"""Entry point of ``python -m dspex_actors.testing``."""

import sys

from dspex_actors.testing._cli import main

if __name__ == "__main__":
    sys.exit(main())
