"""`python -m bot`: the same program as `kie-slack`."""

import sys

from bot.cli import main

sys.exit(main())
