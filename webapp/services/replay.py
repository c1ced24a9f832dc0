"""A job's playbook runs as an operator replays them with plain ansible-playbook (docs/operators.md, "Replaying a
job"): for each run the worker recorded (jobs.runs), the command line, the vars file it reads (YAML in which every
string that could be Jinja is !unsafe, as the worker's own) and the secrets by a reference to the operator's
secrets file (services/adoption.py), never their values."""
from __future__ import annotations

import shlex

from webapp.jobs.spec import Template, vars_yaml
from webapp.services.adoption import PASSWORDS, secrets_filename
from webapp.store.models import Job

# What the operator's secrets file holds; a run's other secrets are the job's own (a dump's one-time password).
SECRETS_FILE_KEYS = {*PASSWORDS, "pgaas_tls_ca_cert", "pgaas_tls_ca_key", "pgaas_tls_certs", "pgaas_tls_client"}


def inventory_filename(name: str) -> str:
    """Where an operator saves GET /api/v1/instances/NAME/inventory (as YAML) for a provider whose runs get an
    inventory of their own (ssh)."""
    return f"pgaas-{name}.inventory.yml"


def runs(job: Job) -> list[dict]:
    name = job.instance_name or "none"
    out = []
    for i, run in enumerate(job.runs or []):
        vars_file = f"pgaas-{name}.job-{job.id}{'' if i == 0 else f'-{i + 1}'}.vars.yml"
        data = {**(run.get("vars") or {}), **{k: Template(v) for k, v in (run.get("templates") or {}).items()}}
        inventory = run.get("inventory") or inventory_filename(name)
        parts = [shlex.quote(p) for p in ("ansible-playbook", run["playbook"], "-i", inventory, "-e", f"@{vars_file}")]
        entry = {"playbook": run["playbook"], "label": run.get("label") or None, "inventory": inventory,
                 "inventory_is_exported": not run.get("inventory"), "vars_file": vars_file, "vars": vars_yaml(data),
                 "secrets_file": None}
        secrets = run.get("secrets") or []
        if secrets:
            entry["secrets_file"] = secrets_filename(name)
            # -e @file gives the plays the secrets; pgaas_secrets_file is where the plays' vars_files read them
            parts += ["-e", f"@{entry['secrets_file']}", "-e", f"pgaas_secrets_file=$PWD/{entry['secrets_file']}"]
            other = sorted(set(secrets) - SECRETS_FILE_KEYS)
            if other:
                entry["other_secrets"] = other
        entry["command"] = " ".join(parts)
        out.append(entry)
    return out
