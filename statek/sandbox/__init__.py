"""Sandbox for job code: compile it per statement, run it with guarded builtins and hooks.

Restricted mode (the default) is enforced twice: the compiler refuses what it can see in the
source, and the runtime hooks refuse what only shows up while the code runs.
"""

from statek.sandbox.audit import install_audit_hook, trust_host_code
from statek.sandbox.compiler import (
    CompiledBlock,
    CompiledStatement,
    clear_compile_cache,
    compile_block,
    compile_cache_size,
)
from statek.sandbox.guards import (
    ModuleView,
    exec_globals,
    is_internal_name,
    make_uncatchable,
    module_view_name,
    rebind_exec_globals,
)
from statek.sandbox.isolation import (
    JOB_STATE_KEY,
    MEMO_ALLOWED,
    plain_copy,
    release_decimal_context,
)
from statek.sandbox.policy import DEFAULT_ALLOWED_IMPORTS, JOB_FILENAME, SandboxPolicy

__all__ = [
    "DEFAULT_ALLOWED_IMPORTS",
    "JOB_FILENAME",
    "JOB_STATE_KEY",
    "MEMO_ALLOWED",
    "CompiledBlock",
    "CompiledStatement",
    "ModuleView",
    "SandboxPolicy",
    "clear_compile_cache",
    "compile_block",
    "compile_cache_size",
    "exec_globals",
    "install_audit_hook",
    "is_internal_name",
    "make_uncatchable",
    "module_view_name",
    "plain_copy",
    "rebind_exec_globals",
    "release_decimal_context",
    "trust_host_code",
]
