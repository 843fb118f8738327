"""``python -m temdenoise``: the ``temdenoise`` command (:mod:`temdenoise.cli`)."""

import sys

from temdenoise.cli import main

sys.exit(main())
