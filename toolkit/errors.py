"""The one exception hierarchy of kgt; the CLI turns these into one line and an exit code.

Stdlib only, so a probe importing it pays for nothing. The exception: `lab/wanrouter/`
keeps its own ConfigError/SetupError, because it runs alone in a container as a plain
stdlib program that cannot import `toolkit`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One finding about an input file: where it is and what is wrong."""

    file: str
    line: int | None
    path: str
    message: str
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        prefix = "warning: " if self.severity == "warning" else ""
        path = f" {self.path}:" if self.path else ""
        return f"{where}:{path} {prefix}{self.message}"


class KgtError(Exception):
    """Base of every error kgt reports to a user (never shown as a traceback)."""

    exit_code = 1


class UsageError(KgtError):
    """The command line itself is wrong."""

    exit_code = 2


class TopologyError(KgtError):
    """The topology file is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class PkiError(KgtError):
    """A certificate, key or CA of the site PKI is missing, invalid or does not match its host.

    Carries one Problem per finding (`FILE: host H: what is wrong`), all of them at once.
    """

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class SecretsError(KgtError):
    """A secrets file is missing, unreadable, or lacks a secret the topology needs."""


class RenderError(KgtError):
    """Rendering or writing the output directory failed."""


class LabError(KgtError):
    """The Docker lab could not be brought up, inspected or torn down."""


class CheckError(KgtError):
    """A check could not be carried out (as opposed to a check that found a fault)."""


class CheckAborted(CheckError):
    """A check that ended early with a state; its message is the reason, `str()` adds the state.

    `UNKNOWN: <reason>` is written here once, not in every message.
    """

    state = "UNKNOWN"

    @property
    def reason(self) -> str:
        """The message without the state."""
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return f"{self.state}: {self.reason}"


class CannotCheck(CheckAborted):
    """The check could not be carried out (credentials, secrets, topology): UNKNOWN."""

    exit_code = 3
    state = "UNKNOWN"


class NothingReachable(CheckAborted):
    """No node or endpoint could be reached at all: CRITICAL."""

    exit_code = 2
    state = "CRITICAL"


class ProbeUnknown(KgtError):
    """A probe could not be carried out (bad input, rejected credentials): the probe edge says UNKNOWN."""

    exit_code = 3


class TargetUnreachable(KgtError):
    """A probe's target did not answer, or answered with an error: a CRITICAL finding, not a failed probe."""

    exit_code = 2


class ProbeTimeout(BaseException):
    """The `-t` deadline of a probe passed.

    A BaseException on purpose: libraries the probes use catch `Exception` broadly
    (haproxy-stats turns any error into a log line), and a deadline must not be swallowed.
    """


class SchemaMissing(Exception):
    """The counters the verify workload needs are not in the table (dropped while running?).

    Not a KgtError: the workload records it in the history as a failed operation.
    """


class DrillRefused(KgtError):
    """The drill did not start (site not healthy, interrupted before the fault): verdict unknown."""

    exit_code = 2


class Sent(Exception):
    """A request went out and then the connection failed: the outcome is unknown.

    Not a KgtError: it never reaches the command line; the drills' workloads record it as
    an `info` outcome.
    """


class DeadlineExceeded(Exception):
    """The condition did not hold before the deadline; carries the last value or error seen."""

    def __init__(self, what: str, seconds: float, last: object) -> None:
        self.what, self.seconds, self.last = what, seconds, last
        super().__init__(self.describe())

    def describe(self) -> str:
        """The message: what, how long, the last result."""
        return f"{self.what}: not ready after {self.seconds:.0f}s (last: {self.last})"


class Stopped(DeadlineExceeded):
    """`stop()` said to give up before the condition held (an interrupt, a shutdown)."""

    def describe(self) -> str:
        """The message: what, after how long it was stopped, the last result."""
        return f"{self.what}: stopped after {self.seconds:.1f}s (last: {self.last})"


class StoreError(KgtError):
    """etcd, the store of `kgt publish` and `kgt agent`, refused a request or answered with an error."""


class StoreUnavailable(StoreError):
    """No etcd endpoint answered (refused, timed out, TLS failed); the message names each one and why."""


class StoreAuthFailed(StoreError):
    """etcd did not take the user name and password, or asked for a login and no user is configured."""


class StorePermissionDenied(StoreError):
    """etcd's auth does not let this user read or write that key."""


class CommitUnknown(StoreError):
    """A compare-and-write transaction went out and no answer came back: it may or may not have been applied.

    An outcome unknown, like `Sent`: the publisher reads the store again before it decides.
    """


class Compacted(StoreError):
    """A watch asked for revisions etcd has compacted away: the watcher reads everything again, then watches on."""

    def __init__(self, revision: int, compact_revision: int) -> None:
        self.revision, self.compact_revision = revision, compact_revision
        super().__init__(
            f"etcd watch from revision {revision}: history compacted up to revision {compact_revision}; "
            "read everything again"
        )


class LockTimeout(StoreError):
    """The etcd lock stayed held by another holder for the whole wait."""


class PublishError(KgtError):
    """A publish could not be written as asked (a concurrent publish, no etcd member in the topology)."""


class AgentError(KgtError):
    """The agent's own configuration is unusable."""


class ActionFailed(KgtError):
    """A service did not take its new files: the action failed, or it is not healthy after it."""

    def __init__(self, service: str, message: str) -> None:
        self.service = service
        super().__init__(message)


class NotActed(ActionFailed):
    """A coordinated step that was not taken (its rollout halted, the cluster not whole, its turn never came)."""


class Halted(NotActed):
    """The service's rollout was stopped by a failed restart elsewhere."""


class RolloutUnreadable(KgtError):
    """etcd could not be read (`kgt rollout`)."""

    exit_code = 3
