import sys

from devstack.stack.cli import main

sys.exit(main())
