"""The command line: the only click code, its progress bars and plain-text views."""
