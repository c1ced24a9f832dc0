"""What the worker, the runner and the job handlers hand each other (no import of ours: every layer may use it).

A job handler (webapp/services/handlers) turns a job into a RunSpec; the runner runs it and gives back an Outcome;
the worker passes that to the handler's finish. The registry the worker is given maps each job kind to one Handler.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class RunSpec:
    playbook: str
    extravars: dict = field(default_factory=dict)
    secrets: dict = field(default_factory=dict)
    label: str = ""


@dataclass
class Outcome:
    status: str                 # successful | failed | canceled | timeout | error (ansible-runner's, plus error)
    rc: int | None = None
    error: str = ""
    artifact_data: dict = field(default_factory=dict)
    facts: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)


class NotRunnable(Exception):
    """Raised by a handler's prepare() or then() when the job cannot run (what it acts on is gone): the job fails
    with this message, no playbook runs."""


class Handler(Protocol):
    """One job kind, as the worker sees it (s: a store session, job: a webapp.store.models.Job).

    prepare: the first run. then: after each successful run, the job's next run prepared from what that one found
    (job.runs names the runs so far), or None when the job is done (a cloud's servers are made, then certificates
    naming their addresses are issued, then the deploy runs; a restore, then a backup, then each standby rebuilt).
    cleanup: after the runs, one more that must run to the end (a canceled create's teardown), or None. finish: the
    job's end. cleanup and finish get the outcome of the last run. lost: the job ended abnormally (its worker died,
    or a fault of ours)."""

    def prepare(self, s, job) -> RunSpec: ...
    def then(self, s, job, outcome: Outcome) -> RunSpec | None: ...
    def cleanup(self, s, job, outcome: Outcome) -> RunSpec | None: ...
    def finish(self, s, job, outcome: Outcome) -> None: ...
    def lost(self, s, job) -> None: ...
