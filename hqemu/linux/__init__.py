"""The Linux user-mode personality: the guest address space, the ELF loader (and, beside them,
the syscall layer).

    >>> from hqemu.linux.memory import GuestMemory
    >>> from hqemu.linux import loader
    >>> image = loader.load(env, "./a.out", ["a.out"], ["PATH=/bin"])
"""
