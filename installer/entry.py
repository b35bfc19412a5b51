"""Entry script of the frozen app (PyInstaller): the same command line as `python -m xrayviewer`."""

import sys

from xrayviewer.cli import main

if __name__ == "__main__":
    sys.exit(main())
