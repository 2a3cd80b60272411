"""`python -m veil` is the same as the `veil` command."""

from veil.cli.app import main

main()
