"""`python -m cache_utils`: the command line tool."""

from .cli import main

raise SystemExit(main())
