"""``python -m aoti_hooks``: the ``aoti-hooks`` command."""

from .tools.cli import main

raise SystemExit(main())
