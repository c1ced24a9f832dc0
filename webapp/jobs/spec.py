"""Variables as data for ansible-runner, shared by the runner and the providers (no import of ours: every layer may
use it). What the runner and the job handlers hand each other is in webapp/jobs/types.py.

Ansible evaluates Jinja in variable values. Nothing that a user typed may ever be evaluated, so every extra var,
secret and inventory value pgaas writes is data: YAML in which each string is tagged `!unsafe`. A `Template` is
the one exception: Jinja that our own code wrote on purpose.
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml


class Template(str):
    """Jinja written by our own code (never user text), passed to Ansible as a template. Every other extra var,
    secret or inventory value is data, tagged !unsafe so that Ansible never evaluates it."""


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


def vars_yaml(data: dict) -> str:
    """YAML for Ansible in which every string is data, not a template, except a Template's."""
    return yaml.dump(_as_data(data), Dumper=_UnsafeDumper, default_flow_style=False, allow_unicode=True)


def write_vars_file(path: Path, data: dict) -> None:
    """A 0600 YAML file (for `-e @file`, `vars_files` or an inventory) of vars_yaml(data)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(vars_yaml(data))
