"""``python -m ammix ...`` (and ``torchrun -m ammix ...``): the ``ammix`` command."""

import sys

from ammix.cli import main

if __name__ == "__main__":
    sys.exit(main())
