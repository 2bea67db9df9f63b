"""``python -m ledgerdns.resolver``: the resolver without the rest of the command line.

What ``ledgerdns resolver`` re-executes itself as (see `ledgerdns.resolver.cli`).
"""

import sys

from ledgerdns.resolver.cli import main

sys.exit(main())
