"""Run-time backstop: a process audit hook refusing what restricted job code sets off indirectly.

The compiler and the attribute guards see what job code does itself. Allowed modules can still
do dangerous things on its behalf: ``functools.singledispatch`` evaluates string annotations,
``collections.namedtuple`` builds code from strings, and any helper may open a file. CPython
reports such operations as audit events (``compile``, ``exec``, ``open``, ``os.system``, ...)
whoever calls them; the hook here refuses them while the innermost caller that matters is
restricted job code. "Innermost that matters" is found by walking the stack outwards:

* a frame of restricted job code (filename ``<statek-job>``, hooks in its globals): refuse;
* a frame of trusted host code (a tool call, a sandbox substitute such as the safe
  ``namedtuple``; see `trust_host_code`) or of the import system (a lazy stdlib import reads
  and runs module files): allow;
* no such frame: the host is running, allow.

Only watched events pay for the walk; running job statements themselves (an ``exec`` of a
``<statek-job>`` code object) return at the first comparison. An audit hook cannot be removed,
so it is installed once per process, the first time a restricted namespace is made.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any, NoReturn

from statek.errors import SandboxViolation
from statek.sandbox.policy import JOB_FILENAME

#: Key of the violation callback in a job namespace (starts with "_": job code cannot name it).
VIOLATION_HOOK_KEY = "__statek_on_violation__"


def refuse(message: str) -> NoReturn:
    """Report a violation to the running job's callback, then raise it.

    The hooks are shared by every namespace of a policy, so the callback is found by walking
    up the stack to the innermost frame whose globals hold one."""
    violation = SandboxViolation(message)
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        hook = frame.f_globals.get(VIOLATION_HOOK_KEY)
        if hook is not None:
            hook(violation)
            break
        frame = frame.f_back
    raise violation

#: Key every restricted namespace holds (RestrictedPython's attribute hook): marks job code
#: that runs restricted. Unrestricted (trusted) job code is left alone.
RESTRICTED_MARK = "_getattr_"

#: Events refused in job context: they run code from strings, touch files, processes, the
#: network or the interpreter's internals.
_WATCHED_EVENTS = frozenset(
    {
        "compile", "exec", "open", "builtins.input", "builtins.breakpoint", "time.sleep",
        "code.__new__", "function.__new__", "sys._current_frames", "sys.settrace",
        "sys.setprofile", "sys.addaudithook", "sys.set_asyncgen_hooks",
        "gc.get_objects", "gc.get_referrers", "gc.get_referents",
        "marshal.loads", "marshal.load", "marshal.dumps", "pickle.find_class",
    }
)  # fmt: skip
_WATCHED_PREFIXES = (
    "os.", "subprocess.", "socket.", "shutil.", "ctypes.", "pty.", "fcntl.", "mmap.",
    "resource.", "signal.", "urllib.", "http.", "webbrowser.", "sqlite3.", "glob.", "tempfile.",
    "syslog.", "ftplib.", "smtplib.", "imaplib.", "poplib.", "nntplib.", "telnetlib.",
    "cpython.", "_posixsubprocess.", "winreg.", "msvcrt.", "_winapi.", "shelve.", "dbm.",
)  # fmt: skip

#: event -> watched?, filled on first sight of each event name.
_decisions: dict[str, bool] = {}
#: Code objects of host functions job code may call that legitimately set off watched events.
_trusted_codes: set[CodeType] = set()
_installed = False
_install_lock = threading.Lock()


def _watched(event: str) -> bool:
    decision = event in _WATCHED_EVENTS or event.startswith(_WATCHED_PREFIXES)
    _decisions[event] = decision
    return decision


def trust_host_code(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: audited operations below a call of `func` are the host's, not job code's
    (for tool calls and sandbox substitutes that run stdlib code on the job's behalf)."""
    code = getattr(func, "__code__", None)
    if not isinstance(code, CodeType):
        raise TypeError(f"trust_host_code() needs a Python function, not {func!r}")
    _trusted_codes.add(code)
    return func


def _is_import_frame(code: CodeType) -> bool:
    return code.co_filename.startswith("<frozen importlib")


def job_globals(frame: FrameType | None) -> dict[str, Any] | None:
    """Globals of the restricted job code on whose behalf `frame` (and its callers) run, or
    None when host code is in charge (see the module docstring for the rule)."""
    while frame is not None:
        code = frame.f_code
        if code.co_filename == JOB_FILENAME:
            g = frame.f_globals
            return g if RESTRICTED_MARK in g else None
        if code in _trusted_codes or _is_import_frame(code):
            return None
        frame = frame.f_back
    return None


def _describe(event: str, args: tuple[Any, ...]) -> str:
    if event == "compile" or event == "exec":
        return "evaluating a string as code (eval/exec/compile, also inside library helpers)"
    if event == "open":
        return f"opening {args[0]!r}" if args else "opening a file"
    return f"the operation {event!r}"


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event == "exec":
        code = args[0]
        if isinstance(code, CodeType) and code.co_filename == JOB_FILENAME:
            return  # a job statement being run by the interpreter
    else:
        watched = _decisions.get(event)
        if watched is None:
            watched = _watched(event)
        if not watched:
            return
    frame = sys._getframe(1)
    if job_globals(frame) is None:
        return
    refuse(f"{_describe(event, args)} is not available in restricted mode")


def install_audit_hook() -> None:
    """Install the hook (once per process; CPython offers no way to remove one)."""
    global _installed
    if _installed:
        return
    with _install_lock:
        if not _installed:
            sys.addaudithook(_hook)
            _installed = True
