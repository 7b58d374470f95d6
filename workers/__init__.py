"""Code that runs inside the LLVM worker processes of the trace tier (not built yet).

Workers import only hqemu.ir: they receive a trace as IR text, lower it to LLVM IR, compile
it to an object file and send it back. Nothing here may import the frontends, the quick tier
or the Linux layer, so the workers stay ISA-independent and cheap to start.
"""
