"""What a job hands to ansible-runner and gets back, shared by the runner, the job handlers and the providers
(no import of ours: every layer may use it).

Ansible evaluates Jinja in variable values. Nothing that a user typed may ever be evaluated, so every extra var,
secret and inventory value pgaas writes is data: YAML in which each string is tagged `!unsafe`. A `Template` is
the one exception: Jinja that our own code wrote on purpose.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml


class Template(str):
    """Jinja written by our own code (never user text), passed to Ansible as a template. Every other extra var,
    secret or inventory value is data, tagged !unsafe so that Ansible never evaluates it."""


@dataclass
class RunSpec:
    playbook: str
    extravars: dict = field(default_factory=dict)
    secrets: dict = field(default_factory=dict)
    label: str = ""


class _Unsafe(str):
    pass


class _UnsafeDumper(yaml.SafeDumper):
    """YAML for Ansible's loader: strings as `!unsafe` scalars (never templated); mapping keys stay plain."""


_UnsafeDumper.add_representer(_Unsafe, lambda d, v: d.represent_scalar("!unsafe", str(v), style='"'))


def _as_data(value):
    if isinstance(value, Template):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _as_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_data(v) for v in value]
    if isinstance(value, str) and "{" in value:
        # Only a string that could hold Jinja ({{ }}, {% %}, {# #}) is tagged: ansible-core 2.19 reads an !unsafe
        # scalar through YAML's implicit types, so !unsafe "8192" would come back as the integer 8192. Other
        # strings are quoted plain scalars, which stay strings and cannot be templates.
        return _Unsafe(value)
    return value


def write_vars_file(path: Path, data: dict) -> None:
    """A 0600 YAML file (for `-e @file`, `vars_files` or an inventory) in which every string is data, not a
    template, except a Template's."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.dump(_as_data(data), f, Dumper=_UnsafeDumper, default_flow_style=False, allow_unicode=True)


class NotRunnable(Exception):
    """Raised by a handler's prepare() when the job cannot run (what it acts on is gone): the job fails with this
    message, no playbook runs."""


@dataclass
class Outcome:
    status: str                 # successful | failed | canceled | timeout | error
    rc: int | None = None
    error: str = ""
    artifact_data: dict = field(default_factory=dict)
    facts: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)


