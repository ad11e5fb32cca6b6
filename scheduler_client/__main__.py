import sys

from scheduler_client.cli import main

sys.exit(main())
