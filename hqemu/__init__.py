"""hqemu: a dynamic binary translator for Linux user-mode programs, after HQEMU (CGO 2012)."""

__version__ = "0.1.0"
