"""Process-isolated execution of job code (`isolation="process"`, STATEK_ISOLATION=process).

The worker (scheduler) process keeps all storage and never runs job code; a pool of
`executor_processes` executor processes runs it, under the same RestrictedPython policy as
in-process mode, with OS limits each executor puts on itself before its first run:

* RLIMIT_AS (`executor_memory_mb`), RLIMIT_NOFILE (`executor_open_files`), no core files,
  RLIMIT_NPROC 0 (binds non-root users), and RLIMIT_CPU moved before every run
  (`executor_cpu_seconds` more; past it the kernel ends the executor);
* a seccomp filter, when the optional `pyseccomp` package and libseccomp are installed: no
  sockets, no fork/exec/new processes, no ptrace or signals to others, no file writes (open
  for writing, unlink, rename, mkdir...). Without it the pool logs a warning once
  ("isolated executors run without a seccomp filter") and `ExecutorPool.protections` says
  why;
* the executor dies with the worker (PR_SET_PDEATHSIG, and EOF on its pipe).

A run past its wall-clock limit (what is left of the step's `step_code_budget`, else
`executor_step_timeout`) is killed with its executor, C-level loops included (a catastrophic
regex); a crashed executor is replaced too. The job gets the error (over the budget: the job
ends, as in-process); jobs queued behind it run in the replacement.

Same job semantics as in-process, with these differences, all from job code living in
another process: functions, classes, generators and modules job code made live in its
executor (lost when that executor is replaced, as in a worker restart; `def`/`class`/
`import` statements are replayed); stored objects (futures, agents, jobs) are handles there,
read through the same allow-lists and refusals as in-process (the attributes are fetched from
the worker, containers as copies); `wait_for` sends a function by module and name (the worker
resolves and checks it as in-process) or a host function given to the job; values a sync tool
returns must be plain data (others become opaque handles); `os.getpid()` in unrestricted code
is the executor's. A job always runs in the same executor (its namespace is there); each step
runs in a fresh context there, as in-process (a decimal context set up by a step ends with it).

Modules: `protocol` (frames of plain data; the worker refuses any class from an executor),
`child` (the executor), `limits`, `pool` (spawn, feed, watch, replace), `runner` (phase 4 of a
step, run code, in this mode).
"""
