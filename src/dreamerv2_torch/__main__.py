"""`python -m dreamerv2_torch` is the `dreamerv2-torch` command."""

import sys

from .cli import main

sys.exit(main())
