"""One module per ``tracegen`` subcommand; see :mod:`tracegen.cli` for the protocol.

Shared argument helpers live in :mod:`tracegen.commands._common`. Heavy packages (torch,
matplotlib) are imported inside a command's ``run``, never at module import.
"""
