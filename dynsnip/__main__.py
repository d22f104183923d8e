import sys

from dynsnip.cli import main

sys.exit(main())
