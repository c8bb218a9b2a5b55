"""`python -m kanmon` is `gated`."""

from kanmon.gated.cli import main

main()
