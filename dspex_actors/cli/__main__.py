"""``python -m dspex_actors.cli``: the ``dspex-actors`` command without the console script."""

import sys

from dspex_actors.cli._main import main

if __name__ == "__main__":
    sys.exit(main())
