"""`python -m ledgerdns` runs the command line."""

import sys

if sys.argv[1:2] == ["resolver"]:
    # The light resolver alone: not the ~0.4 s and ~20 MiB of every other subcommand's imports.
    from ledgerdns.resolver.cli import main as resolver_main

    sys.exit(resolver_main(sys.argv[2:]))

from ledgerdns.cli import main

sys.exit(main())
