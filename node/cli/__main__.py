"""``python -m node.cli``: the same as the ``lienthong`` command."""

from node.cli import main

main()
