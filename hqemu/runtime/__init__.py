"""The runtime: builds the guest process (process.py) and runs its code (engine.py).

It is the one part that imports the IR, the frontends, the quick tier and the Linux layer.
"""
