"""Runner settings: one pydantic-settings model read from `STATEK_*` variables and `.env`.

Explicit keyword arguments win over the environment, which wins over `.env`, which wins over
the defaults. A bad value is reported with the field name and the variable it came from.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from statek.errors import ConfigurationError
from statek.sandbox.policy import DEFAULT_ALLOWED_IMPORTS as _SANDBOX_DEFAULT_IMPORTS

ENV_PREFIX = "STATEK_"
#: The sandbox's default import allow-list (defined once, in statek.sandbox.policy).
DEFAULT_ALLOWED_IMPORTS = tuple(sorted(_SANDBOX_DEFAULT_IMPORTS))

_Price = Annotated[float, Field(ge=0)]  # per million tokens (model_prices)


class StatekSettings(BaseSettings):
    """Everything a worker can be configured with.

    Field `x` is read from `STATEK_X` (case-insensitive); nested prompt definitions are loaded
    from `prompt_files_dir` on first access of `prompt_defs`.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    # Storage
    data_dir: Path = Field(Path("statek-data"), description="dbzero root of the embedded store.")
    default_prefix: str = Field("statek", description="Prefix opened by the embedded store.")
    store_cache_mb: int | None = Field(
        None, ge=16, description="dbzero's object cache in MiB for the embedded store (None: "
        "dbzero's default, 2 GiB). A long-running worker's memory grows to about this much "
        "plus ~100 MB as the cache fills (a soak run: 1.5 GB RSS after 190k jobs), then "
        "stays; a smaller cache bounds it, at the cost of re-reading objects from the file.")
    commit_interval: float = Field(
        0.05, gt=0, description="Group-commit window in seconds (the shortest: see "
        "commit_interval_max).")
    commit_interval_max: float = Field(
        0.25, gt=0, description="Longest group-commit window: when commits are costly (many "
        "jobs in flight), the window stretches so committing takes at most 5% of the loop's "
        "time, up to this. Set it to commit_interval for a fixed window.")
    commit_max_pending: int = Field(2000, gt=0, description="Commit after this many transitions.")
    gc_young_threshold: int = Field(
        20_000, ge=0, description="Allocations between young garbage collections while a "
        "worker loop runs (0 leaves the collector alone); see statek.runtime.collector.")

    # Prompts and warmups
    prompt_files_dir: Path | None = Field(None, description="Directory of <role>.md prompt files.")
    warmup_defs_dir: Path | None = Field(None, description="Directory of <role>.py warmup files.")

    # Providers
    default_provider: str | None = Field(
        None, description="Provider for jobs whose MODEL/PROVIDER names none. Unset: such "
        "jobs fail with an error saying what to set (the offline 'scripted' provider is used "
        "only when chosen, e.g. STATEK_DEFAULT_PROVIDER=scripted).")
    default_model: str | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    anthropic_api_key: SecretStr | None = None
    provider_timeout: float = Field(60.0, gt=0)
    provider_max_retries: int = Field(4, ge=0)
    provider_backoff_base: float = Field(0.5, ge=0)
    provider_backoff_max: float = Field(30.0, ge=0)
    provider_max_connections: int = Field(
        100, gt=0, description="Connections each HTTP provider keeps open at most: calls beyond "
        "it wait for one, so a provider answers at most this many / latency calls per second.")
    provider_max_response_bytes: int = Field(
        32 * 1024 * 1024, gt=0, description="Largest reply body (after decompression) a "
        "provider call reads; a bigger one fails the call.")
    provider_http_client: Literal["auto", "aiohttp", "pyreqwest", "asyncio"] = Field(
        "auto", description="HTTP client of the OpenAI and Anthropic providers: 'auto' and "
        "'asyncio' take statek's own HTTP/1.1 client (least worker CPU per call; no HTTP/2, "
        "proxies or redirects); 'pyreqwest' (statek[fast]) or 'aiohttp' by name.")

    # Rate limits (statek.admission): shared admission control for model calls
    rate_limits: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="Limits per 'provider/model' ('provider/*' or "
        "'provider': any model of it; '*': any provider), each {'rpm': requests, 'tpm': input+"
        "output tokens per rate_limit_window, 'concurrency': calls in flight}, shared by every "
        "job of the worker, e.g. STATEK_RATE_LIMITS='{\"openai/gpt-4o\": {\"rpm\": 500, "
        "\"tpm\": 30000}}'. Unset: calls are not queued (unless rate_limit_learn).")
    rate_limit_window: float = Field(
        60.0, gt=0, description="Seconds the rpm/tpm limits count over (providers meter per "
        "minute; tests scale it down).")
    rate_limit_headroom: float = Field(
        0.02, ge=0, lt=1, description="Share of each rpm/tpm limit kept out of bursts, for the "
        "time between admitting a call and the server counting it (the steady rate keeps the "
        "whole limit).")
    rate_limit_learn: bool = Field(
        False, description="Queue every HTTP provider's calls and learn its limits from the "
        "replies' x-ratelimit-*/anthropic-ratelimit-* headers and 429s, even with no "
        "rate_limits entry.")
    rate_limit_max_refusals: int = Field(
        8, ge=0, description="429s one call may meet (each pauses its key and queues the call "
        "again) before it fails.")
    rate_limit_estimator: str | None = Field(
        None, description="'module:function' taking a ChatRequest and returning the tokens "
        "to reserve; unset: characters/4 plus max_tokens (statek.admission.estimate).")

    @field_validator("rate_limits")
    @classmethod
    def _check_rate_limits(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for target, spec in value.items():
            unknown = set(spec) - {"rpm", "tpm", "concurrency"}
            if unknown:
                raise ValueError(f"rate_limits[{target!r}]: unknown keys {sorted(unknown)} "
                                 "(use rpm, tpm, concurrency)")
            for key, number in spec.items():
                if not number > 0:
                    raise ValueError(f"rate_limits[{target!r}][{key!r}] must be > 0, got {number}")
        return value

    # Harness limits (0 disables a limit)
    max_turns: int = Field(50, ge=0, description="Model requests per job.")
    max_exceptions: int = Field(20, ge=0, description="Exceptions in job code per job.")
    max_consecutive_exceptions: int = Field(5, ge=0)
    max_tokens: int = Field(0, ge=0, description="Total tokens per job (0 = unlimited).")
    step_timeout: float = Field(300.0, ge=0, description="Seconds one step may await.")
    reply_max_tokens: int | None = Field(None, gt=0, description="max_tokens sent per request.")
    step_code_budget: float = Field(
        5.0, ge=0, description="Seconds of synchronous job code (statements, sync tools) one "
        "step may run; past it the job ends with an error naming the budget (0 = unlimited). "
        "Enforced in the worker's main thread; see README 'Guarantees'.")
    step_kill_after: float = Field(
        30.0, ge=0, description="Hard limit: an external watchdog process SIGKILLs the worker "
        "when one run of job code lasts this long (C-level work the budget cannot interrupt, "
        "e.g. a catastrophic regex); 0 = no watchdog process.")
    max_job_crashes: int = Field(
        2, ge=0, description="Times the worker may die while one job's code runs before the "
        "next start ends that job (quarantine) instead of running it again. A kill from "
        "outside (an orchestrator's SIGKILL, the OOM killer) counts too: where workers are "
        "killed routinely, raise it, or 0 to count crashes without quarantining for them (the "
        "watchdog's own kills, step_kill_after, still quarantine a job at 2).")
    max_delegates_per_step: int = Field(
        1000, ge=1, description="Child jobs one run of a job's code may start with delegate(); "
        "one more ends the job with an error naming this budget.")
    max_delegates_per_tree: int = Field(
        10_000, ge=1, description="Child jobs a whole tree of delegated jobs (a submitted job and "
        "all its descendants) may start; one more ends the delegating job with an error.")

    # Budgets (statek.admission.budgets, statek.models.budget): durable per-job/tree budgets
    model_prices: dict[str, tuple[_Price, _Price]] = Field(
        default_factory=dict, description="Price per million input and output tokens by model "
        "name ('*': any other model) for cost budgets, e.g. "
        "STATEK_MODEL_PRICES='{\"gpt-4o\": [2.5, 10]}'; a model priced nowhere costs 0.")
    budget_policy: Literal["suspend", "fail"] = Field(
        "suspend", description="What a job does when a budget runs out and its budget names "
        "no policy: 'suspend' (resumes when the budget is raised) or 'fail' (ends with an error).")

    # Sandbox
    restricted: bool = True
    allowed_imports: Annotated[tuple[str, ...], NoDecode] = DEFAULT_ALLOWED_IMPORTS
    max_source_chars: int = Field(100_000, gt=0)
    max_ast_nodes: int = Field(20_000, gt=0)

    # Process-isolated execution (statek.isolation)
    isolation: Literal["in-process", "process"] = Field(
        "in-process", description="Where job code runs: 'in-process' (trusted code, fastest) "
        "or 'process' (a pool of executor processes with OS limits; the worker keeps storage "
        "and never runs job code).")
    executor_processes: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1,
        description="Executor processes of isolation='process' (default: CPU count).")
    executor_step_timeout: float = Field(
        10.0, gt=0, description="Wall seconds one run of job code may take in an executor "
        "when step_code_budget is 0; past it the executor is killed and replaced.")
    executor_cpu_seconds: int = Field(
        10, ge=1, description="CPU seconds one run may use in an executor (RLIMIT_CPU).")
    executor_memory_mb: int = Field(
        1024, ge=128, description="Address space of an executor process (RLIMIT_AS), MB.")
    executor_open_files: int = Field(
        64, ge=16, description="Open files of an executor process (RLIMIT_NOFILE).")

    # HTTP API served by the worker (statek.server)
    http_host: str = Field(
        "127.0.0.1", description="Address the worker's HTTP API binds; anything but a loopback "
        "address needs http_token.")
    http_port: int | None = Field(
        None, ge=0, le=65535, description="Port of the worker's HTTP API (0: one the OS picks; "
        "unset: no HTTP API).")
    http_token: SecretStr | None = Field(
        None, description="Bearer token every HTTP API request must carry (compared in "
        "constant time); required to bind a non-loopback address.")
    http_max_body: int = Field(
        16 * 1024 * 1024, gt=0, description="Largest HTTP request body in bytes (413 beyond).")
    http_max_batch: int = Field(
        10_000, gt=0, description="Most jobs one HTTP batch submission may create.")
    http_event_buffer: int = Field(
        100_000, gt=0, description="Status/console events kept for SSE clients resuming "
        "with Last-Event-ID; older ones are reported as a gap.")

    # Worker
    use_uvloop: bool = True
    shutdown_grace: float = Field(10.0, ge=0, description="Seconds in-flight steps get to finish.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    # Observability (statek.observability: metrics, health, traces, structured logs)
    log_format: Literal["text", "json"] = Field(
        "text", description="Worker log lines as text or one JSON object per line (job id, "
        "agent and step are on every record emitted within a step).")
    metrics_enabled: bool = Field(
        True, description="Keep step/model/commit counters for /metrics (statek[metrics]) and "
        "job context on log records; off skips every per-step hook.")
    trace_enabled: bool | None = Field(
        None, description="OpenTelemetry spans per step, model call and tool call "
        "(statek[otel]); unset: on when OTEL_EXPORTER_OTLP_ENDPOINT is set.")
    ready_deadline: float = Field(
        10.0, gt=1.0, description="/readyz answers 503 once the worker loop has not started "
        "an iteration for this many seconds (idle iterations come at least every second).")

    @model_validator(mode="after")
    def _commit_window_bounds(self) -> StatekSettings:
        """A longest window set below the shortest is a mistake worth naming; the default
        longest (250 ms) under a longer commit_interval just means a fixed window."""
        if ("commit_interval_max" in self.model_fields_set
                and self.commit_interval_max < self.commit_interval):
            raise ValueError(f"commit_interval_max ({self.commit_interval_max:g}) is below "
                             f"commit_interval ({self.commit_interval:g}); set them equal for "
                             "a fixed window")
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_log_format(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("default_provider", mode="before")
    @classmethod
    def _blank_provider_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("allowed_imports", mode="before")
    @classmethod
    def _split_imports(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip().strip("[]")
            return tuple(p.strip().strip("'\"") for p in text.split(",") if p.strip())
        return value

    @property
    def prompt_defs(self) -> dict[str, str]:
        """Prompt text by agent role, from `<prompt_files_dir>/<role>.md|.txt` (cached)."""
        return _load_text_defs(self.prompt_files_dir, (".md", ".txt"))

    def warmup_defs(self) -> dict[str, str]:
        """Warmup code by agent role, from `<warmup_defs_dir>/<role>.py`."""
        return _load_text_defs(self.warmup_defs_dir, (".py",))

    @classmethod
    def build(cls, **overrides: Any) -> StatekSettings:
        """Construct, turning pydantic's error into one that names field and variable."""
        try:
            built = cls(**overrides)
        except ValidationError as exc:
            raise ConfigurationError(_describe(exc, overrides)) from None
        except SettingsError as exc:  # a value the environment source could not even parse
            named = re.search(r'field "(\w+)"', str(exc))
            hint = (f" ({ENV_PREFIX}{named.group(1).upper()} must be valid JSON)"
                    if named else "")
            raise ConfigurationError(f"invalid statek settings: {exc}{hint}") from None
        _warn_unknown_variables()
        return built


#: STATEK_* variables read by something other than StatekSettings (the build, the import
#: selectors, the CLI's options, the test suite).
OTHER_VARIABLES = frozenset({
    "STATEK_NO_EXTENSIONS", "STATEK_REQUIRE_EXTENSIONS", "STATEK_COMPILE_PIPELINE",
    "STATEK_NO_COMPILED_PIPELINE", "STATEK_REQUIRE_COMPILED_PIPELINE", "STATEK_URL",
    "STATEK_HTTP_TOKEN", "STATEK_HYPOTHESIS_PROFILE", "STATEK_OUTBOX_KILL_SEED",
    "STATEK_OUTBOX_KILL_FULL", "STATEK_ADMISSION_JOBS", "STATEK_VENV", "STATEK_EXTRAS",
})
_warned: set[str] = set()


def _warn_unknown_variables() -> None:
    """A STATEK_* variable no setting reads is most likely a typo (STATEK_STEP_TIMOUT=5):
    pydantic-settings ignores it, so the worker ran with the default and nothing said so.
    One warning per name and process, with the closest setting's variable."""
    import difflib
    import logging

    known = {ENV_PREFIX + name.upper() for name in StatekSettings.model_fields} | OTHER_VARIABLES
    names = list(os.environ)
    env_file = StatekSettings.model_config.get("env_file")
    if isinstance(env_file, str) and os.path.isfile(env_file):  # pydantic reads it too
        from dotenv import dotenv_values

        names += [name for name in dotenv_values(env_file) if name not in os.environ]
    for name in names:
        upper = name.upper()
        if upper.startswith(ENV_PREFIX) and upper not in known and upper not in _warned:
            _warned.add(upper)
            close = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.75)
            hint = f"; did you mean {close[0]}?" if close else ""
            logging.getLogger("statek.settings").warning(
                "environment variable %s%s is not a statek setting and is ignored%s", name,
                "" if name in os.environ else f" (in {env_file})", hint)


def _load_text_defs(directory: Path | None, suffixes: tuple[str, ...]) -> dict[str, str]:
    if directory is None or not directory.is_dir():
        return {}
    return {
        path.stem: path.read_text(encoding="utf-8")
        for path in sorted(directory.iterdir())
        if path.suffix in suffixes and path.is_file()
    }


def _describe(exc: ValidationError, overrides: dict[str, Any]) -> str:
    problems = []
    for error in exc.errors():
        if not error["loc"]:  # a check across fields: its message names them
            problems.append(error["msg"].removeprefix("Value error, "))
            continue
        field = str(error["loc"][0])
        variable = ENV_PREFIX + field.upper()
        if field in overrides:
            source = "argument"
        elif variable in os.environ or variable.lower() in {k.lower() for k in os.environ}:
            source = f"environment variable {variable}"
        else:
            source = f"{variable} (environment or .env)"
        problems.append(f"{field}: {error['msg']} (input {error.get('input')!r} from {source})")
    return "invalid statek settings: " + "; ".join(problems)


@lru_cache(maxsize=1)
def _cached_settings() -> StatekSettings:
    return StatekSettings.build()


def get_statek_settings(**overrides: Any) -> StatekSettings:
    """The process-wide settings; with overrides, a fresh object where the arguments win."""
    if overrides:
        return StatekSettings.build(**overrides)
    return _cached_settings()


def reset_settings_cache() -> None:
    """Forget the cached settings (tests and long-lived processes that change the environment)."""
    _cached_settings.cache_clear()
