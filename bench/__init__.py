"""hqemu's benchmarks: the speed comparison against qemu-x86_64 and native (`python -m bench`).

    $ .venv/bin/python -m bench --size quick
    $ .venv/bin/python -m bench --only int_loop,fp_nbody --configs native,qemu,hybridm --reps 3

runner.py holds the workload and configuration tables and the timed runs, report.py the tables;
docs/performance.md has a real run. The standalone scripts (quick_mips.py, compile_latency.py,
dispatch.py, quick_codegen.py) measure single mechanisms.
"""
