"""``python -m consumer``: the consumer without the ``delightbridge`` console script."""

import sys

from consumer.cli import main

sys.exit(main())
