"""``python -m gmailsim``: the standalone simulator."""

import sys

from gmailsim.cli import main

sys.exit(main())
