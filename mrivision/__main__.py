"""`python -m mrivision ...` (and `torchrun -m mrivision ...`): the command line."""
import sys

from mrivision.cli import main

sys.exit(main())
