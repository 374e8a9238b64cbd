"""fashion_tuner command line: `python main.py --help`."""

import sys

from fashion_tuner.cli import main

if __name__ == "__main__":
    sys.exit(main())
