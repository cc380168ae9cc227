"""OS limits an executor process puts on itself before it runs any job code.

resource limits always apply (address space, open files, core files, no child processes for
non-root users); seccomp (through the optional `pyseccomp` package and the system's
libseccomp) adds, where available, no sockets, no new processes or programs, no tracing and
no file writes. Both are applied by the executor to itself, so no privileges are needed.
"""

from __future__ import annotations

import errno
import os
import resource
from typing import Any

#: System calls that create processes, run programs, trace or mount.
_DENIED = ("fork", "vfork", "execve", "execveat", "ptrace", "process_vm_readv",
           "process_vm_writev", "mount", "umount2", "pivot_root", "chroot", "setns",
           "unshare", "socket", "socketpair", "creat", "unlink", "unlinkat", "rename",
           "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "truncate", "ftruncate",
           "chmod", "fchmod", "fchmodat", "chown", "fchown", "fchownat", "lchown", "link",
           "linkat", "symlink", "symlinkat", "kill", "tkill", "tgkill", "reboot")


def apply_resource_limits(memory_mb: int, open_files: int) -> None:
    """Address space, open files, no core files, no child processes (RLIMIT_NPROC does not
    bind root: seccomp covers that case)."""
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))


def set_cpu_budget(seconds: int) -> None:
    """Let the process use `seconds` more CPU seconds; past them the kernel ends it
    (SIGXCPU). Set before every run; only the soft limit moves."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used) + 1 + seconds
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def apply_seccomp() -> str:
    """Install the filter; returns "seccomp" or the reason it is not available."""
    try:
        import pyseccomp as seccomp  # type: ignore[import-untyped]  # optional (libseccomp)
    except Exception as exc:  # ImportError, or OSError when libseccomp is missing
        return f"unavailable ({type(exc).__name__}: {exc})"
    try:
        rules: Any = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        for name in _DENIED:
            try:
                rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
            except Exception:  # a call this architecture does not have
                continue
        # threads stay possible (clone with CLONE_THREAD); new processes do not
        clone_thread = 0x00010000
        rules.add_rule(seccomp.ERRNO(errno.EPERM), "clone",
                       seccomp.Arg(0, seccomp.MASKED_EQ, clone_thread, 0))
        rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
        writes = (os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_TRUNC, os.O_APPEND)
        for flag in writes:
            rules.add_rule(seccomp.ERRNO(errno.EACCES), "openat",
                           seccomp.Arg(2, seccomp.MASKED_EQ, flag, flag))
            rules.add_rule(seccomp.ERRNO(errno.EACCES), "open",
                           seccomp.Arg(1, seccomp.MASKED_EQ, flag, flag))
        rules.load()
    except Exception as exc:
        return f"failed ({type(exc).__name__}: {exc})"
    return "seccomp"


def die_with_parent() -> None:
    """Ask the kernel to kill this process when the scheduler process dies (Linux)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass  # not Linux: EOF on the pipe still ends the executor
