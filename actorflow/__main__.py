"""``python -m actorflow``: the same as the ``actorflow`` command."""

import sys

from actorflow.cli import main

sys.exit(main())
