"""The syscall table: one line per call, Blink style.

Each line: name, number on x86-64 (arch/x86/entry/syscalls/syscall_64.tbl), number on
AArch64 (include/uapi/asm-generic/unistd.h; None where the call does not exist there, like
open or stat), handler (None: known, not implemented: -ENOSYS and logged by name), strace
argument kinds (see strace.KINDS) and the result kind. The per-ISA dicts are derived at
import, where the table is also checked (unique names and numbers, known kinds).

    >>> BY_NR["x86_64"][257].name
    'openat'
    >>> BY_NAME["openat"].nr["aarch64"]
    56
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import clock, fd, fs, futex, mm, proc, signals, strace

ISAS = ("x86_64", "aarch64")


@dataclass(frozen=True)
class Syscall:
    name: str
    nr: dict[str, int]  # isa -> number, only for the ISAs that have the call
    handler: Callable[..., int] | None  # handler(env, a0..a5) -> int, negative = -errno
    args: tuple[str, ...]  # strace kind of each argument
    ret: str = "int"  # strace kind of the result: int, hex (addresses) or none (does not return)


def S(name: str, x86_64: int | None, aarch64: int | None, handler, args: str = "",
      ret: str = "int") -> Syscall:
    nr = {isa: n for isa, n in zip(ISAS, (x86_64, aarch64)) if n is not None}
    return Syscall(name, nr, handler, tuple(a for a in args.split(",") if a), ret)


_ = None  # no such call on that ISA / not implemented

TABLE: tuple[Syscall, ...] = (
    #  name              x86_64 aarch64 handler                strace argument kinds
    # --- file descriptors
    S("read",                0,   63, fd.read,               "fd,ptr,size"),
    S("write",               1,   64, fd.write,              "fd,buf@2,size"),
    S("close",               3,   57, fd.close,              "fd"),
    S("poll",                7,    _, fd.poll,               "ptr,size,int"),
    S("lseek",               8,   62, fd.lseek,              "fd,long,whence"),
    S("ioctl",              16,   29, fd.ioctl,              "fd,ioctl,hex"),
    S("pread64",            17,   67, fd.pread64,            "fd,ptr,size,long"),
    S("pwrite64",           18,   68, fd.pwrite64,           "fd,buf@2,size,long"),
    S("readv",              19,   65, fd.readv,              "fd,ptr,int"),
    S("writev",             20,   66, fd.writev,             "fd,ptr,int"),
    S("pipe",               22,    _, fd.pipe,               "ptr"),
    S("dup",                32,   23, fd.dup,                "fd"),
    S("dup2",               33,    _, fd.dup2,               "fd,fd"),
    S("sendfile",           40,   71, fd.sendfile,           "fd,fd,ptr,size"),
    S("fcntl",              72,   25, fd.fcntl,              "fd,fcntl,hex"),
    S("fsync",              74,   82, fd.fsync,              "fd"),
    S("fdatasync",          75,   83, fd.fdatasync,          "fd"),
    S("ftruncate",          77,   46, fd.ftruncate,          "fd,long"),
    S("getdents64",        217,   61, fd.getdents64,         "fd,ptr,size"),
    S("fadvise64",         221,  223, fd.fadvise64,          "fd,long,long,int"),
    S("ppoll",             271,   73, fd.ppoll,              "ptr,size,ptr,ptr,size"),
    S("fallocate",         285,   47, fd.fallocate,          "fd,hex,long,long"),
    S("dup3",              292,   24, fd.dup3,               "fd,fd,oflags"),
    S("pipe2",             293,   59, fd.pipe2,              "ptr,oflags"),
    # --- paths
    S("open",                2,    _, fs.open,               "path,oflags,mode"),
    S("stat",                4,    _, fs.stat,               "path,ptr"),
    S("fstat",               5,   80, fs.fstat,              "fd,ptr"),
    S("lstat",               6,    _, fs.lstat,              "path,ptr"),
    S("access",             21,    _, fs.access,             "path,amode"),
    S("truncate",           76,   45, fs.truncate,           "path,long"),
    S("getcwd",             79,   17, fs.getcwd,             "ptr,size"),
    S("chdir",              80,   49, fs.chdir,              "path"),
    S("fchdir",             81,   50, fs.fchdir,             "fd"),
    S("rename",             82,    _, fs.rename,             "path,path"),
    S("mkdir",              83,    _, fs.mkdir,              "path,mode"),
    S("rmdir",              84,    _, fs.rmdir,              "path"),
    S("creat",              85,    _, fs.creat,              "path,mode"),
    S("link",               86,    _, fs.link,               "path,path"),
    S("unlink",             87,    _, fs.unlink,             "path"),
    S("symlink",            88,    _, fs.symlink,            "path,path"),
    S("readlink",           89,    _, fs.readlink,           "path,ptr,size"),
    S("chmod",              90,    _, fs.chmod,              "path,mode"),
    S("fchmod",             91,   52, fs.fchmod,             "fd,mode"),
    S("chown",              92,    _, fs.chown,              "path,int,int"),
    S("fchown",             93,   55, fs.fchown,             "fd,int,int"),
    S("lchown",             94,    _, fs.lchown,             "path,int,int"),
    S("umask",              95,  166, fs.umask,              "mode"),
    S("statfs",            137,   43, fs.statfs,             "path,ptr"),
    S("fstatfs",           138,   44, fs.fstatfs,            "fd,ptr"),
    S("openat",            257,   56, fs.openat,             "fd,path,oflags,mode"),
    S("mkdirat",           258,   34, fs.mkdirat,            "fd,path,mode"),
    S("fchownat",          260,   54, fs.fchownat,           "fd,path,int,int,atflags"),
    S("newfstatat",        262,   79, fs.newfstatat,         "fd,path,ptr,atflags"),
    S("unlinkat",          263,   35, fs.unlinkat,           "fd,path,atflags"),
    S("renameat",          264,   38, fs.renameat,           "fd,path,fd,path"),
    S("linkat",            265,   37, fs.linkat,             "fd,path,fd,path,atflags"),
    S("symlinkat",         266,   36, fs.symlinkat,          "path,fd,path"),
    S("readlinkat",        267,   78, fs.readlinkat,         "fd,path,ptr,size"),
    S("fchmodat",          268,   53, fs.fchmodat,           "fd,path,mode"),
    S("faccessat",         269,   48, fs.faccessat,          "fd,path,amode"),
    S("utimensat",         280,   88, fs.utimensat,          "fd,path,ptr,atflags"),
    S("renameat2",         316,  276, fs.renameat2,          "fd,path,fd,path,hex"),
    S("statx",             332,  291, fs.statx,              "fd,path,atflags,hex,ptr"),
    S("faccessat2",        439,  439, fs.faccessat2,         "fd,path,amode,atflags"),
    # --- memory
    S("mmap",                9,  222, mm.mmap,               "ptr,size,prot,mflags,fd,hex", ret="hex"),
    S("mprotect",           10,  226, mm.mprotect,           "ptr,size,prot"),
    S("munmap",             11,  215, mm.munmap,             "ptr,size"),
    S("brk",                12,  214, mm.brk,                "ptr", ret="hex"),
    S("mremap",             25,  216, mm.mremap,             "ptr,size,size,hex,ptr", ret="hex"),
    S("madvise",            28,  233, mm.madvise,            "ptr,size,int"),
    # --- signals
    S("rt_sigaction",       13,  134, signals.rt_sigaction,  "sig,ptr,ptr,size"),
    S("rt_sigprocmask",     14,  135, signals.rt_sigprocmask, "how,ptr,ptr,size"),
    S("kill",               62,  129, signals.kill,          "int,sig"),
    S("sigaltstack",       131,  132, signals.sigaltstack,   "ptr,ptr"),
    S("tkill",             200,  130, signals.tkill,         "int,sig"),
    S("tgkill",            234,  131, signals.tgkill,        "int,int,sig"),
    # --- process
    S("sched_yield",        24,  124, proc.sched_yield),
    S("getpid",             39,  172, proc.getpid),
    S("socket",             41,  198, proc.socket,           "int,int,int"),
    S("exit",               60,   93, proc.exit,             "int", ret="none"),
    S("wait4",              61,  260, proc.wait4,            "int,ptr,hex,ptr"),
    S("uname",              63,  160, proc.uname,            "ptr"),
    S("getrlimit",          97,  163, proc.getrlimit,        "rlimit,ptr"),
    S("sysinfo",            99,  179, proc.sysinfo,          "ptr"),
    S("getuid",            102,  174, proc.getuid),
    S("getgid",            104,  176, proc.getgid),
    S("geteuid",           107,  175, proc.geteuid),
    S("getegid",           108,  177, proc.getegid),
    S("setpgid",           109,  154, proc.setpgid,          "int,int"),
    S("getppid",           110,  173, proc.getppid),
    S("getpgrp",           111,    _, proc.getpgrp),
    S("setsid",            112,  157, proc.setsid),
    S("getgroups",         115,  158, proc.getgroups,        "int,ptr"),
    S("getresuid",         118,  148, proc.getresuid,        "ptr,ptr,ptr"),
    S("getresgid",         120,  150, proc.getresgid,        "ptr,ptr,ptr"),
    S("getpgid",           121,  155, proc.getpgid,          "int"),
    S("getsid",            124,  156, proc.getsid,           "int"),
    S("prctl",             157,  167, proc.prctl,            "prctl,hex,hex,hex,hex"),
    S("arch_prctl",        158,    _, proc.arch_prctl,       "archprctl,hex"),
    S("setrlimit",         160,  164, proc.setrlimit,        "rlimit,ptr"),
    S("gettid",            186,  178, proc.gettid),
    S("futex",             202,   98, futex.futex,           "ptr,futexop,int,ptr,ptr,hex"),
    S("sched_getaffinity", 204,  123, proc.sched_getaffinity, "int,size,ptr"),
    S("set_tid_address",   218,   96, proc.set_tid_address,  "ptr"),
    S("exit_group",        231,   94, proc.exit_group,       "int", ret="none"),
    S("set_robust_list",   273,   99, proc.set_robust_list,  "ptr,size"),
    S("prlimit64",         302,  261, proc.prlimit64,        "int,rlimit,ptr,ptr"),
    S("getrandom",         318,  278, proc.getrandom,        "ptr,size,hex"),
    S("rseq",              334,  293, proc.rseq,             "ptr,size,hex,hex"),
    # --- time
    S("nanosleep",          35,  101, clock.nanosleep,       "ptr,ptr"),
    S("gettimeofday",       96,  169, clock.gettimeofday,    "ptr,ptr"),
    S("getrusage",          98,  165, clock.getrusage,       "int,ptr"),
    S("times",             100,  153, clock.times,           "ptr"),
    S("time",              201,    _, clock.time_,           "ptr"),
    S("clock_gettime",     228,  113, clock.clock_gettime,   "clock,ptr"),
    S("clock_getres",      229,  114, clock.clock_getres,    "clock,ptr"),
    S("clock_nanosleep",   230,  115, clock.clock_nanosleep, "clock,int,ptr,ptr"),
    # --- known, not implemented: -ENOSYS, logged by name with -d unimp
    S("rt_sigreturn",       15,  139, _,                     ""),
    S("select",             23,    _, _,                     "int,ptr,ptr,ptr,ptr"),
    S("msync",              26,  227, mm.msync,              "ptr,size,hex"),
    S("mincore",            27,  232, _,                     "ptr,size,ptr"),
    S("connect",            42,  203, _,                     "fd,ptr,int"),
    S("clone",              56,  220, _,                     "hex,ptr,ptr,ptr,ptr"),
    S("fork",               57,    _, _,                     ""),
    S("vfork",              58,    _, _,                     ""),
    S("execve",             59,  221, _,                     "path,ptr,ptr"),
    S("flock",              73,   32, _,                     "fd,int"),
    S("getdents",           78,    _, _,                     "fd,ptr,size"),
    S("sched_setaffinity", 203,  122, _,                     "int,size,ptr"),
    S("getcpu",            309,  168, _,                     "ptr,ptr,ptr"),
    S("pselect6",          270,   72, _,                     "int,ptr,ptr,ptr,ptr,ptr"),
    S("epoll_create1",     291,   20, _,                     "hex"),
    S("memfd_create",      319,  279, _,                     "path,hex"),
    S("membarrier",        324,  283, _,                     "int,hex,int"),
    S("copy_file_range",   326,  285, _,                     "fd,ptr,fd,ptr,size,hex"),
    S("clone3",            435,  435, _,                     "ptr,size"),
    S("close_range",       436,  436, _,                     "fd,fd,hex"),
)

BY_NAME: dict[str, Syscall] = {}
BY_NR: dict[str, dict[int, Syscall]] = {isa: {} for isa in ISAS}


def _build() -> None:
    for e in TABLE:
        if e.name in BY_NAME:
            raise ValueError(f"syscall {e.name} listed twice")
        BY_NAME[e.name] = e
        if e.ret not in strace.RESULT_KINDS:
            raise ValueError(f"{e.name}: unknown result kind {e.ret!r}")
        if len(e.args) > 6:
            raise ValueError(f"{e.name}: more than six arguments")
        for k in e.args:
            strace.check_kind(k, len(e.args))
        for isa, n in e.nr.items():
            if n in BY_NR[isa]:
                raise ValueError(f"{isa} syscall {n} is both {BY_NR[isa][n].name} and {e.name}")
            BY_NR[isa][n] = e


_build()
