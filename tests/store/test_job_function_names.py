"""The names injected into job code are one list, whichever process runs the code.

`JOB_BUILTINS` tells the supervisor which names in a warmup are statek's and not external
locals; the worker's `JobFunctions` and the executor's functions (isolation="process") each
build the namespace. `set_budget` was once in the worker's only: an isolated job calling it
got a NameError, and a warmup using it was taken to need an external local."""

from __future__ import annotations

import re

import statek
from statek.execution.job_functions import JobFunctions
from statek.isolation import child
from statek.models.code_analysis import JOB_BUILTINS
from statek.sandbox.isolation import JOB_STATE_KEY


def test_worker_and_executor_inject_the_same_names(api: statek.StatekClientAPI,
                                                   agent: statek.Agent) -> None:
    job = api.submit_new_job(agent, warmup_code="exit(1)")
    in_worker = set(JobFunctions(job, "w0").builtins((), None)) - {JOB_STATE_KEY}
    in_executor = set(child._Functions().builtins({}, None))
    assert in_worker == in_executor == set(JOB_BUILTINS)


def test_a_warmup_using_them_needs_no_external_locals(api: statek.StatekClientAPI,
                                                      agent: statek.Agent) -> None:
    job = api.submit_new_job(agent, warmup_code="exit(1)")
    injected = set(JobFunctions(job, "w0").builtins((), None)) - {JOB_STATE_KEY}
    names = statek.SupervisedAgent("names")
    names.update_warmup_def("\n".join(f"x_{name} = {name}" for name in sorted(injected)))
    assert list(names.warmup_externals) == []


#: Injected names the code-first prompt need not describe: listed so a name added to
#: JOB_BUILTINS must be described or listed on purpose.
NOT_IN_PROMPT: set[str] = set()


def test_the_prompt_describes_the_injected_functions() -> None:
    from statek.execution.conversation import CODE_FIRST_GUIDE

    described = set(re.findall(r"\b(\w+)\(", CODE_FIRST_GUIDE))  # functions: name(
    described |= set(re.findall(r"`(\w+)`", CODE_FIRST_GUIDE))  # values: `name`
    assert described <= set(JOB_BUILTINS)  # no function the job does not have
    assert set(JOB_BUILTINS) - described == NOT_IN_PROMPT


def test_one_default_import_allow_list() -> None:
    """The sandbox's default allow-list, the settings' default and what each executor
    preloads before its limits apply are the same modules."""
    from statek import settings
    from statek.isolation.runner import PRELOAD
    from statek.sandbox.policy import DEFAULT_ALLOWED_IMPORTS

    assert set(settings.DEFAULT_ALLOWED_IMPORTS) == DEFAULT_ALLOWED_IMPORTS == set(PRELOAD)
