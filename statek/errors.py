"""Every error statek raises on purpose, so callers can catch one family."""

from __future__ import annotations


class StatekError(Exception):
    """Base class of all statek errors."""


class NotInitializedError(StatekError):
    """The model was used before a dbzero prefix was open."""


class IllegalTransitionError(StatekError):
    """A job was asked to move between two statuses the state machine does not connect."""


class UnstorableValueError(StatekError, TypeError):
    """A value that dbzero cannot persist was handed to the model."""


class SandboxViolation(StatekError):
    """Job code tried something restricted mode forbids."""


class ProviderError(StatekError):
    """A model provider failed for good (after its retries)."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class ProviderNotFoundError(StatekError, LookupError):
    """No provider is registered under the requested name."""


class AgentNotFoundError(StatekError, LookupError):
    """No agent has the given role or uuid, or several share the role."""


class JobNotFoundError(StatekError, LookupError):
    """No job exists with the given id."""


class JobPendingError(JobNotFoundError):
    """The job was submitted through the outbox and the worker has not applied it yet."""


class StoreLockedError(StatekError, RuntimeError):
    """Another process has the prefix open for writing (dbzero allows one writer)."""

    def __init__(self, message: str, *, pid: int | None = None, url: str | None = None,
                 cmdline: str | None = None):
        super().__init__(message)
        self.pid = pid
        self.url = url
        self.cmdline = cmdline  # the holder's command line, when it recorded one


class StoreDamagedError(StatekError, RuntimeError):
    """dbzero cannot read a prefix's file: damaged, empty, or not a dbzero file. statek does
    not repair store files; the message names the file."""


class ConfigurationError(StatekError, ValueError):
    """A setting has a value statek cannot use."""


class ProviderNotConfiguredError(ProviderNotFoundError, ConfigurationError):
    """A job's MODEL or PROVIDER names no usable provider and no default provider is set.

    A configuration problem, not a transient one: the step that meets it ends the job at once
    instead of retrying (the offline `scripted` provider is never picked silently)."""


class MissingAPIKeyError(ProviderError, ConfigurationError):
    """A provider pointed at a hosted API has no API key: raised on first use, before any
    request is sent, and never retried (no amount of waiting brings a key)."""
