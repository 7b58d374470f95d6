"""Every tunable of hqemu in one frozen dataclass, with its default and a one-line reason.

The CLI (cli.py), the HQEMU_* environment, the status endpoint and the tests all read
this table; nothing else declares a knob.

    >>> p = Params()                      # the defaults
    >>> p = replace(p, hot_threshold=1)   # a variant for a test
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


def knob(default, reason: str, flag: str = "", metavar: str = "", choices: tuple = (), env: str = ""):
    """A Params field. `flag`: its CLI option (default: -field-name; single or double dash both
    work, as in QEMU). `env`: its environment twin (default: HQEMU_FIELD_NAME). A bool knob is a
    flag without a value; metavar names the value of the others."""
    return field(default=default, metadata={"reason": reason, "flag": flag, "metavar": metavar,
                                            "choices": choices, "env": env})


@dataclass(frozen=True)
class Params:
    # --- guest process ---------------------------------------------------------------------
    argv0: str | None = knob(None, "argv[0] seen by the guest; default: the program path", "-0", "ARGV0")
    stack_size: int = knob(8 << 20, "guest main stack size, as the default ulimit -s", "-s", "SIZE")
    sysroot: str = knob("", "prefix for absolute guest paths that exist under it", "-L", "PREFIX",
                        env="HQEMU_LD_PREFIX")
    seed: int | None = knob(None, "fix AT_RANDOM and getrandom for reproducible runs", "-seed", "N")
    guest_space: int = knob(1 << 38, "host address space reserved for the guest, PROT_NONE until mapped",
                            metavar="BYTES")
    # --- logging ---------------------------------------------------------------------------
    strace: bool = knob(False, "log each guest syscall with decoded arguments and result", "-strace")
    log_items: str = knob("", "comma list of log items (-d help lists them)", "-d", "ITEMS", env="HQEMU_LOG")
    log_file: str = knob("", "write logs to this file instead of stderr", "-D", "FILE",
                         env="HQEMU_LOG_FILENAME")
    stats_file: str = knob("", "write the run's statistics as JSON to this file at exit (also when the "
                           "guest dies by a signal)", metavar="FILE")
    perfmap: bool = knob(False, "write /tmp/perf-PID.map entries for installed native code so perf names it",
                         "-perfmap")
    # --- status endpoint --------------------------------------------------------------------
    status_port: int | None = knob(None, "serve live statistics over HTTP on this port (0: a free port, "
                                   "printed on stderr); off by default", metavar="PORT")
    status_bind: str = knob("127.0.0.1", "address the status endpoint binds to", metavar="ADDR")
    # --- translation cache ------------------------------------------------------------------
    code_cache: str = knob("~/.cache/hqemu/code", "directory of the persistent translation cache, keyed "
                           "by the guest code bytes ('' turns it off)", metavar="DIR")
    # --- quick tier ------------------------------------------------------------------------
    max_block_insns: int = knob(512, "longest guest block lifted at once; bounds translation latency",
                                metavar="N")
    quick_loop_iters: int = knob(1024, "back edges a block looping on itself takes inside one quick-tier "
                                 "call, its registers in locals (0: every run returns to the engine)",
                                 metavar="N")
    # --- trace tier -------------------------------------------------------------------------
    llvm_mode: str = knob("hybridm", "hybridm: LLVM traces compiled by worker processes while the guest "
                          "runs; hybrids: compiled at once on the main thread (deterministic); block: "
                          "every block through LLVM, no traces; none: quick tier only (HQEMU's modes)",
                          metavar="MODE", choices=("hybridm", "hybrids", "block", "none"))
    hot_threshold: int = knob(50, "arrivals at a candidate trace head before NET recording starts "
                              "(HQEMU: 50)", metavar="N")
    trace_max_blocks: int = knob(16, "longest NET trace in guest blocks (HQEMU: 16)", metavar="N")
    trace_merge: bool = knob(True, "merge hot traces that jump among themselves into one region with a real "
                             "CFG, compiled again as a new version (HQEMU's trace merging)", "-trace-merge")
    workers: int = knob(1, "LLVM worker processes compiling traces in hybridm mode (HQEMU: up to 8)",
                        metavar="N")
    opt_level: str = knob("cheap", "LLVM pipeline for traces: cheap (SROA, InstCombine, SimplifyCFG, "
                          "DSE; codegen -O1) is as fast as O2 here at half the compile time",
                          metavar="LEVEL", choices=("none", "cheap", "O1", "O2", "O3"))
    trace_queue_size: int = knob(32, "optimization requests waiting for a worker; more are refused, "
                                 "not queued", metavar="N")


PARAMS_FIELDS = {f.name: f for f in fields(Params)}

# log items -d accepts, with what each shows
LOG_ITEMS = {
    "in_asm": "guest instructions of each block translated",
    "op": "IR of each block as lifted",
    "op_opt": "IR of each block after the cheap passes",
    "exec": "every block executed, with its pc",
    "unimp": "unimplemented syscalls and instructions",
    "strace": "guest syscalls (same as -strace)",
    "stats": "counters at exit",
    "cache": "the persistent code cache: files loaded, ignored and written",
    "traceback": "the Python traceback of an internal error (for hqemu's developers)",
}
