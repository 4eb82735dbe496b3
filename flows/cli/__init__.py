"""The ``chs`` command line: arguments, one function per sub-command, and the entry point."""
