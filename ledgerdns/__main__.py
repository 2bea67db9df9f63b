"""`python -m ledgerdns` runs the command line."""

import sys

from ledgerdns.cli import main

sys.exit(main())
