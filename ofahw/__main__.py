"""``python -m ofahw``: the same as the ``ofahw`` console script."""

import sys

from ofahw.cli.main import main

sys.exit(main())
