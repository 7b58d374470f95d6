"""Native code in the main process: objects compiled by the LLVM workers, loaded and called.

    >>> from hqemu.native.loader import native
    >>> addr = native().load(obj, "trace_401000")
"""
