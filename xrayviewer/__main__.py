"""`python -m xrayviewer` runs the same command line as the `xrayviewer` script."""

from xrayviewer.cli import main

raise SystemExit(main())
