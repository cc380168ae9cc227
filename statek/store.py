"""Where statek's state lives: dbzero start-up, prefixes, and the write discipline.

`import statek` touches no storage. A process either follows the documented start-up
(`db0.init(dbzero_root=DIR)`, `statek.init()`, `statek.open_prefix(name)`) or calls
`open_default_store()`, which does all three over `STATEK_DATA_DIR` (default `./statek-data`).

Write discipline: every multi-write state change runs inside `transition()`, which holds
dbzero's autocommit off for its duration (`db0.locked()`, about 5 µs; `db0.atomic()` costs
about 300 µs and would dominate a step). Commits happen only between transitions, so a crash
leaves each job either before or after a transition, never inside one.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import gc
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import dbzero as db0

from statek import worker_state
from statek._speedups import Transition
from statek.errors import NotInitializedError, StoreDamagedError, StoreLockedError

if TYPE_CHECKING:
    from statek.settings import StatekSettings


@dataclass
class _Runtime:
    settings: StatekSettings | None = None
    settings_given: bool = False  # bound by init(settings), not derived from the environment
    restricted: bool = True
    opened: list[str] = field(default_factory=list)
    autocommitting: set[str] = field(default_factory=set)  # opened with autocommit on
    holders: dict[str, Path] = field(default_factory=dict)  # prefix -> holder file we wrote
    feeding: set[str] = field(default_factory=set)  # opened "feed": writes go to the outbox


_runtime = _Runtime()

_NO_PREFIX_HELP = (
    "statek has no open dbzero prefix: call statek.open_default_store(), or "
    "db0.init(dbzero_root=DIR); statek.init(); statek.open_prefix(NAME) before using the model"
)


def init(settings: StatekSettings | None = None, restricted: bool = True) -> StatekSettings:
    """Bind settings and the sandbox mode for this process (does not open storage).

    Without `settings`, a settings object bound by an earlier `init(settings)` stays bound, so
    `start_statek(settings=None)` (which calls `init(None)`) runs with what the application
    chose; otherwise the environment's (`get_statek_settings()`) are bound. `close()` forgets
    them; `init(get_statek_settings())` goes back to the environment's explicitly."""
    from statek.settings import get_statek_settings

    if settings is not None:
        resolved, given = settings, True
    elif _runtime.settings_given and _runtime.settings is not None:
        resolved, given = _runtime.settings, True
    else:
        resolved, given = get_statek_settings(), False
    _runtime.settings = resolved
    _runtime.settings_given = given
    _runtime.restricted = bool(restricted) and resolved.restricted
    _configure_providers(resolved)
    worker_state.current()  # the worker's state owner, kept until `close()`
    return resolved


def _configure_providers(settings: StatekSettings) -> None:
    try:
        from statek.providers import configure_builtins
    except ImportError:  # providers are optional for storage-only use
        return
    configure_builtins(settings)


def settings() -> StatekSettings:
    """The settings bound by `init()`, or the environment's when `init()` was not called."""
    if _runtime.settings is None:
        from statek.settings import get_statek_settings

        return get_statek_settings()
    return _runtime.settings


def restricted_mode() -> bool:
    return _runtime.restricted


def db_initialized() -> bool:
    try:
        db0.get_config()
    except RuntimeError:
        return False
    return True


def current_prefix() -> str:
    """Name of dbzero's current prefix; one clear error when there is none."""
    try:
        return str(db0.get_current_prefix().name)
    except RuntimeError:
        raise NotInitializedError(_NO_PREFIX_HELP) from None


def has_prefix() -> bool:
    """Whether dbzero is initialised with a current prefix."""
    try:
        db0.get_current_prefix()
    except RuntimeError:
        return False
    return True


def require_prefix() -> None:
    current_prefix()


_Memo = TypeVar("_Memo", bound=type)

_PY_TP_NEW = 65  # `Py_tp_new` in CPython's stable ABI (Include/typeslots.h)
_NewFunc = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.py_object, ctypes.py_object,
                             ctypes.py_object)


def _type_slot_new(cls: type) -> Any:
    """The C `tp_new` dbzero gave `cls`, as a callable (`__new__` is not in its dict)."""
    get_slot = ctypes.pythonapi.PyType_GetSlot
    get_slot.restype = ctypes.c_void_p
    get_slot.argtypes = [ctypes.py_object, ctypes.c_int]
    address = get_slot(cls, _PY_TP_NEW)
    if not address:
        raise TypeError(f"{cls.__qualname__} has no tp_new slot to guard")
    return _NewFunc(address)


def requires_prefix(cls: _Memo) -> _Memo:
    """Make constructing the @db0.memo class `cls` raise NotInitializedError, naming the fix,
    when no prefix is open.

    dbzero allocates a memo object in its C `tp_new`, before any `__init__` runs, and fails
    there with its own RuntimeError. This installs a `__new__` that checks first and then
    calls that same C `tp_new` (read through the stable `PyType_GetSlot`). Apply it to each
    memo class separately (dbzero gives a memo subclass its own `tp_new`), and only to
    classes users construct: it costs about a microsecond per object. Singletons cannot be
    guarded (dbzero tells them apart by their `tp_new`)."""
    existing = vars(cls).get("__new__")
    if getattr(existing, "_statek_requires_prefix", False):
        return cls  # already guarded (guarding again would make __new__ call itself)
    if existing is not None:
        raise TypeError(f"{cls.__qualname__} defines its own __new__; cannot guard it")
    from statek.models.root import StatekRoot  # a known singleton (lazy: models import store)

    memo_new = _type_slot_new(cls)
    if ctypes.cast(memo_new, ctypes.c_void_p).value == ctypes.cast(
            _type_slot_new(StatekRoot), ctypes.c_void_p).value:
        raise TypeError(f"{cls.__qualname__} is a dbzero singleton: dbzero recognises those by "
                        "their tp_new, so it cannot be replaced")

    def __new__(subtype: type, *args: Any, **kwargs: Any) -> Any:
        if not has_prefix():
            what = "dbzero is not initialised" if not db_initialized() else "no prefix is open"
            raise NotInitializedError(
                f"cannot create {subtype.__qualname__}: {what}. {_NO_PREFIX_HELP}")
        if _runtime.feeding and feeding(current_prefix()):  # dbzero would abort the process
            raise feeding_error(current_prefix(), f"creating {subtype.__qualname__}", False)
        return memo_new(subtype, args, kwargs)

    __new__._statek_requires_prefix = True  # type: ignore[attr-defined]
    cls.__new__ = __new__  # type: ignore[assignment]  # a function here is a staticmethod
    return cls


def open_prefix(name: str, mode: str = "rw", *, autocommit: bool = False,
                **kwargs: Any) -> None:
    """Open (creating if needed) a prefix and make it current.

    statek commits its prefixes itself (every client call, the worker's group commits), so
    dbzero's autocommit is off unless asked for: then transitions must hold `db0.locked()`,
    which can deadlock against dbzero 0.7.0's autocommit thread (it waits for the GIL while
    holding the lock `locked()` waits for).

    Mode "feed" opens the prefix read-only and sends this process's writes through the
    prefix's outbox (`statek.outbox`): the worker holding the prefix applies them."""
    if not db_initialized():
        raise NotInitializedError(
            f"cannot open prefix {name!r}: dbzero is not initialised; call "
            "db0.init(dbzero_root=DIR) first, or statek.open_default_store()"
        )
    if mode not in ("rw", "r", "feed"):
        raise ValueError(f"open mode must be 'rw', 'r' or 'feed', not {mode!r}")
    feed = mode == "feed"  # read-only, writes go through the prefix's outbox (statek.outbox)
    if feed:
        mode = "r"
    try:
        db0.open(name, mode, autocommit=autocommit, **kwargs)
    except RuntimeError as exc:
        locked = _locked_error(exc)
        if locked is not None:
            raise locked from None
        if _DAMAGED.search(str(exc)):  # dbzero's words for a file it cannot read
            raise StoreDamagedError(damaged_text(name, exc, prefix_stem(name))) from exc
        raise
    if mode == "rw":
        _write_holder(name)
    if feed:
        _runtime.feeding.add(name)
    else:
        _runtime.feeding.discard(name)
    if name not in _runtime.opened:
        _runtime.opened.append(name)
    if autocommit:
        _runtime.autocommitting.add(name)
    else:
        _runtime.autocommitting.discard(name)


def open_default_store(
    data_dir: str | Path | None = None, prefix: str | None = None, *,
    when_held: str = "raise", when_free: str = "write",
) -> tuple[Path, str]:
    """The embedded store: init dbzero over the data dir and open the default prefix.

    When a worker holds the prefix, `when_held="feed"` opens it read-only and sends writes
    through its outbox (see `open_prefix`); the default raises StoreLockedError. When none
    does, the default (`when_free="write"`) opens it read-write, so a worker started later
    is refused while this process lives; `when_free="feed"` feeds it anyway (its writes
    wait in the outbox for a worker): for long-lived producers (a web app) that must never
    keep a worker out. The store must exist then (a worker, or `statek agent add`, made
    it): FileNotFoundError says so otherwise."""
    if when_held not in ("raise", "feed"):
        raise ValueError(f"when_held must be 'raise' or 'feed', not {when_held!r}")
    if when_free not in ("write", "feed"):
        raise ValueError(f"when_free must be 'write' or 'feed', not {when_free!r}")
    cfg = settings()
    root = Path(data_dir) if data_dir is not None else cfg.data_dir
    name = prefix or cfg.default_prefix
    if when_free == "feed" and not store_file(root, name).exists():
        raise FileNotFoundError(
            f"no store at {root}/{name} to feed: when_free='feed' never creates one; start "
            "a worker once (or `statek agent add`) to create it")
    if _runtime.settings is None:
        init()
    init_dbzero(root, cfg)
    try:
        if when_free == "feed":
            open_prefix(name, "feed")
            return root, name
        try:
            open_prefix(name, "rw")
        except StoreLockedError:
            if when_held != "feed":
                raise
            open_prefix(name, "feed")
    except StoreDamagedError as exc:  # named by its file: this function knows the root
        cause = exc.__cause__ or exc  # dbzero's error, as every StoreDamagedError's cause
        raise StoreDamagedError(damaged_text(name, cause, root / name)) from cause
    return root, name


def init_dbzero(root: Path, cfg: StatekSettings) -> None:
    """`db0.init` over `root` (made if missing) unless done, with the settings' object cache
    (applied to an initialised dbzero too): every statek process that opens the store goes
    through here."""
    cache = None if cfg.store_cache_mb is None else cfg.store_cache_mb * 2**20
    if not db_initialized():
        root.mkdir(parents=True, exist_ok=True)
        db0.init(dbzero_root=str(root), **({} if cache is None else {"cache_size": cache}))
    elif cache is not None:
        db0.set_cache_size(cache)


#: What dbzero 0.7.0 says of a prefix file it cannot read (docs/storage.md S18); other open
#: errors (a prefix that does not exist in read-only mode...) are raised as they are.
_DAMAGED = re.compile(r"Corrupted|Not a dbzero file|fread failed|Invalid|Bad ?address|"
                      r"checksum|unexpected end", re.IGNORECASE)


def damaged_text(name: str, exc: BaseException, stem: Path | None) -> str:
    """StoreDamagedError's message: the file (`stem` + ".db0", when known) and what to do."""
    where = f"the store file {stem}.db0" if stem is not None else f"the store prefix {name!r}"
    return (f"{where} cannot be opened: {str(exc).strip()}. It is damaged or not a dbzero "
            "file; statek does not repair store files: restore it from a backup, or move it "
            "away to start an empty store")


def feeding(name: str) -> bool:
    """Whether this process opened prefix `name` in mode "feed" (writes via the outbox)."""
    return name in _runtime.feeding


def feeding_error(name: str, what: str, remote: bool = True) -> StoreLockedError:
    """The error for a write a feeding process cannot send through the outbox (dbzero
    raises an internal error, or aborts the process, on a write to a read-only prefix):
    it names the worker holding the store and where to send the call instead (`remote`:
    the worker's HTTP API offers it)."""
    stem = prefix_stem(name)
    info = read_holder(f"{stem}.db0.lock") if stem is not None else None
    pid, url = (info.get("pid"), info.get("url")) if info else (None, None)
    who = f"the worker (pid {pid})" if isinstance(pid, int) else "a worker"
    if not remote:
        how = "do it in the worker's process, or while no worker runs"
    elif isinstance(url, str):
        how = f"call it on statek.connect({url!r}) or use `statek ... --url {url}`"
    else:
        how = ("start that worker with an HTTP API (`statek worker --http-port PORT`) and use "
               "statek.connect(URL), or do it while no worker runs")
    return StoreLockedError(
        f"{what}: {who} holds the store {name!r} and this process only feeds it (mode "
        f"'feed': submit, push and cancel go through its outbox); {what} must happen in "
        f"the worker: {how}.", pid=pid if isinstance(pid, int) else None,
        url=url if isinstance(url, str) else None)


def store_file(root: Path, name: str) -> Path:
    """The file dbzero keeps prefix `name` in under `root` (whether it exists or not)."""
    return root / f"{name.lstrip('/')}.db0"


def prefix_stem(name: str) -> Path | None:
    """`<dbzero root>/<name>` for an open prefix (its file is that plus ".db0"), found
    among this process's open files (Linux); None when it cannot be found."""
    suffixes = ("/" + name.lstrip("/") + ".db0", "/" + name.lstrip("/") + ".db0.lock")
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for fd in fds:
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            for suffix in suffixes:
                if target.endswith(suffix):
                    return Path(target[: -len(suffix) + len("/" + name.lstrip("/"))])
    return None


def close() -> None:
    """Commit and close every prefix (the next start needs `db0.init` again) and forget the
    bound settings (the next `init()` reads the environment's).

    Caches holding dbzero objects (the worker's state owner, then other hooks) are dropped
    first and collected while dbzero is still open: freeing such an object after
    `db0.close()` can crash the interpreter."""
    worker_state.close_state()
    for hook in _close_hooks:
        hook()
    gc.collect()
    if db_initialized():
        with contextlib.suppress(RuntimeError):
            commit_all()
        db0.close()
    _remove_holders()
    _runtime.opened.clear()
    _runtime.autocommitting.clear()
    _runtime.feeding.clear()
    _runtime.settings = None
    _runtime.settings_given = False


_close_hooks: list[Callable[[], None]] = []


_LOCK_FAILED = re.compile(r"Failed to aquire lock of:?\s*(\S+\.db0\.lock)")


def _holder_path(lock_path: str) -> Path:
    return Path(lock_path[: -len(".lock")] + ".holder")


def _write_holder(name: str) -> None:
    """Beside the prefix's lock file dbzero holds, note who holds it (pid, command line,
    worker URL) so a second writer's error can name that process. Linux only: the lock
    file is found among this process's open files."""
    suffix = "/" + name.lstrip("/") + ".db0.lock"
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return
    for fd in fds:
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.endswith(suffix):
                _runtime.holders[name] = _holder_path(target)
                note_holder_url(None, only=name)
                return


def note_holder_url(url: str | None, *, only: str | None = None) -> None:
    """(Re)write the holder files of the prefixes this process holds, with `url`: the
    address of this worker's HTTP API, which a second writer is told to use."""
    for name, path in _runtime.holders.items():
        if only is not None and name != only:
            continue
        info = {"pid": os.getpid(), "cmdline": _command_line(), "since": time.time(),
                "url": url}
        with contextlib.suppress(OSError):
            temporary = path.with_name(path.name + f".{os.getpid()}")
            temporary.write_text(json.dumps(info), encoding="utf-8")
            temporary.replace(path)


def _command_line() -> str:
    try:
        with open("/proc/self/cmdline", "rb") as raw:
            return raw.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return " ".join([sys.executable, *sys.argv])


def _remove_holders() -> None:
    for path in _runtime.holders.values():
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                path.unlink()
    _runtime.holders.clear()


def read_holder(lock_path: str, *, out_of_files_raises: bool = False) -> dict[str, Any] | None:
    """What the holder file beside `lock_path` says, if its process still lives.
    `out_of_files_raises`: this process running out of file descriptors raises OSError
    (EMFILE/ENFILE) instead of reading as "no holder"."""
    try:
        text = _holder_path(lock_path).read_text(encoding="utf-8")
    except OSError as exc:
        if out_of_files_raises and exc.errno in (errno.EMFILE, errno.ENFILE):
            raise
        return None
    try:
        info = json.loads(text)
        pid = int(info["pid"])
        os.kill(pid, 0)
    except PermissionError:
        return info if isinstance(info, dict) else None  # alive, another user's
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if isinstance(info, dict) else None


def _locked_error(exc: RuntimeError) -> StoreLockedError | None:
    """dbzero's "Failed to aquire lock" as an error naming the holder and what to do."""
    found = _LOCK_FAILED.search(str(exc))
    if found is None:
        return None
    lock_path = found.group(1)
    store = lock_path[: -len(".db0.lock")]
    info = read_holder(lock_path)
    if info is None:
        who, pid, url = "another process", None, None
    else:
        pid, url = info.get("pid"), info.get("url")
        who = f"process {pid} ({str(info.get('cmdline', '?'))[:200]})"
    how = ("on this machine, open the store with statek.open_default_store(when_held='feed') "
           "(writes go through an outbox the worker applies), or "
           + (f"submit through its HTTP API: statek.connect({url!r}) or `statek ... --url {url}`"
              if url else "start that worker with an HTTP API (`statek worker --http-port "
              "PORT`) and use statek.connect(URL) or `statek ... --url URL`"))
    return StoreLockedError(
        f"the store {store} is open for writing by {who}; dbzero allows one writer per "
        f"prefix. To feed that worker, {how}; to read, open the prefix with mode 'r'; or "
        "stop that process first.", pid=pid if isinstance(pid, int) else None,
        url=url if isinstance(url, str) else None,
        cmdline=str(info["cmdline"]) if info and info.get("cmdline") else None)


def on_close(hook: Callable[[], None]) -> Callable[[], None]:
    """Register a cache-dropping hook run by `close()` (cached memo objects go stale)."""
    _close_hooks.append(hook)
    return hook


def opened_prefixes() -> list[str]:
    return list(_runtime.opened)


def commit_all() -> None:
    """Commit every open prefix."""
    db0.commit()


def _dbzero_lock() -> Any:
    return db0.locked()


_transition = Transition(_runtime.autocommitting, _dbzero_lock)
"""With autocommit off on every prefix statek opened (the default), commits happen only
between transitions and nothing needs locking. Otherwise the outermost block holds
`db0.locked()` and inner blocks join it: a nested `db0.locked()`, and in rarer timing any
`db0.locked()`, can deadlock dbzero 0.7.0 against its autocommit thread. A compiled kernel
(`statek._speedups`): every step and every push enters a few."""


def transition() -> Transition:
    """A block no autocommit can split: a crash sees all of it or none of it. Nests."""
    return _transition
