"""`python -m indunet.cli`."""

import sys

from indunet.cli import main

sys.exit(main())
