"""`python -m hqemu [options] program [args...]`: the same as the `hqemu` command."""

import sys

from .cli import main

sys.exit(main())
