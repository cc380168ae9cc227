"""Subprocess half of tests/store/test_values_fuzz.py (no tests here): runs values through every
write path of the client API and of job code, in a process of its own, so a crash in dbzero
fails the test instead of killing pytest.

Usage: python -m tests.store.test_values_driver <pickled values file> <result json file>
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import faulthandler
import json
import math
import pickle
import sys
import tempfile
from typing import Any

#: Job code for each write path: `{v}` is the value's source text.
JOB_PATHS = {
    "bind": "v = {v}",
    "append": "xs = [0]\n# %%\nxs.append({v})",
    "extend": "xs = [0]\n# %%\nxs.extend([{v}, 1])",
    "item": "xs = [0]\n# %%\nxs[0] = {v}",
    "iadd": "xs = [0]\n# %%\nxs += [{v}]",
    "dict_item": "d = {{'a': 1}}\n# %%\nd['k'] = {v}",
    "dict_key": "d = {{'a': 1}}\n# %%\nd[{v}] = 1",
    "get": "d = {{'a': 1}}\n# %%\nd.get({v})",
    "update": "d = {{'a': 1}}\n# %%\nd.update({{'k': {v}}})",
    "setdefault": "d = {{'a': 1}}\n# %%\nd.setdefault('k', {v})",
    "set_add": "s = {{1}}\n# %%\ns.add({v})",
    "nested": "n = [[0], {{'x': [1]}}]\n# %%\nn[0].append({v})\nn[1]['x'].append({v})",
    "exit": "exit({v})",
    "print": "print({v})\nexit(0)",
    "delegate": "f = delegate(helper, shared={v})\nexit(0)",
}


def source(value: Any) -> str:
    """Python source rebuilding `value` in job code (floats spelt so nan/inf parse)."""
    kind = type(value)
    if kind is float:
        return f"float({str(value)!r})" if not math.isfinite(value) else repr(value)
    if kind is decimal.Decimal:
        return f"Decimal({str(value)!r})"
    if kind is list:
        return "[" + ", ".join(source(item) for item in value) + "]"
    if kind is tuple:
        return "(" + "".join(source(item) + ", " for item in value) + ")"
    if kind is set:
        return "{" + ", ".join(source(item) for item in value) + "}" if value else "set()"
    if kind is dict:
        return "{" + ", ".join(f"{source(k)}: {source(v)}" for k, v in value.items()) + "}"
    return repr(value)


def outcome(call: Any, what: str) -> str:
    from statek.errors import UnstorableValueError

    print(what, file=sys.stderr, flush=True)  # the last line names the path that crashed
    try:
        call()
    except UnstorableValueError as exc:
        return "refused: " + str(exc)[:200]
    except TypeError as exc:  # unhashable keys and the like: Python's own refusal
        return "typeerror: " + str(exc)[:200]
    return "stored"


def client_paths(api: Any, agent: Any, value: Any, listener: Any) -> dict[str, str]:
    """`listener`: a supervised agent that can take events (push_event refuses others)."""
    job = api.submit_new_job(agent, {})
    return {
        "submit": outcome(what="submit", call=lambda: api.submit_new_job(agent, {"v": value})),
        "batch": outcome(what="batch",
                         call=lambda: api.submit_new_jobs_batch(agent, [{"a": 1}, {"v": value}])),
        "param": outcome(what="param", call=lambda: api.submit_new_job(agent, {}, p=value)),
        "metadata": outcome(what="metadata",
                            call=lambda: api.submit_new_job(agent, {}, metadata={"m": value})),
        "message": outcome(what="message", call=lambda: api.push_message(job, value)),
        "event": outcome(what="event", call=lambda: api.push_event(listener, value)),
    }


async def job_paths(api: Any, agent: Any, value: Any) -> dict[str, str]:
    from statek.executors.utils import run_job_step

    results = {}
    text = source(value)
    for name, template in JOB_PATHS.items():
        code = "from decimal import Decimal\nimport datetime\n" + template.format(v=text)
        print("job", name, file=sys.stderr, flush=True)
        job = api.submit_new_job(agent, {"helper": agent}, warmup_code=code)
        for _ in range(3):
            if await run_job_step(job, "values-driver"):
                break
        results[name] = f"{job.status}: {(job.error or '').strip()[-300:]}"
    return results


def main() -> None:
    import dbzero as db0

    import statek
    from statek.providers import ScriptedProvider, add_provider

    faulthandler.enable()
    with open(sys.argv[1], "rb") as handle:
        values = pickle.load(handle)
    db0.init(dbzero_root=tempfile.mkdtemp(prefix="values-driver-"))
    statek.init()
    statek.open_prefix("values", "rw")
    api = statek.StatekClientAPI()
    agent = statek.Agent("values")
    listener = statek.SupervisedAgent("listener")
    listener.update_warmup_def("exit(event)")
    add_provider("values-driver", ScriptedProvider(["exit(0)"], cycle=True))
    report = []
    for value in values:
        print("value", repr(value)[:300], file=sys.stderr, flush=True)
        entry = {"value": repr(value)[:200], "client": client_paths(api, agent, value,
                                                                        listener)}
        entry["job"] = asyncio.run(job_paths(api, agent, value))
        report.append(entry)
    jobs_before = len(api.submit_new_jobs_batch(agent, []))  # an empty batch is fine
    with open(sys.argv[2], "w") as handle:
        json.dump({"report": report, "empty_batch": jobs_before}, handle)
    statek.close()


if __name__ == "__main__":
    _ = datetime  # job code imports it; the driver's values may hold dates
    main()
