import sys

from bertforge.cli.main import main

sys.exit(main())
