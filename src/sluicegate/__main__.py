"""`python -m sluicegate` runs the CLI."""

from .cli.main import main

main()
