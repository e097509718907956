"""`python -m conformance`: the same as the `conformance` command."""

import sys

from conformance._cli import main

sys.exit(main())
