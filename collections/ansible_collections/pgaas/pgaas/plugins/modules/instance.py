#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: instance
short_description: Create, resize, configure or delete a pgaas instance
version_added: 0.1.0
description:
  - Makes a pgaas instance (a PostgreSQL primary and its standbys under Patroni) exist with the given sizes and
    settings, or not exist, through the pgaas JSON API. Needs an administrator's token.
  - A create is C(POST /api/v1/instances); a change of O(cpus), O(memory_mb), O(storage_gb) or O(settings) is one
    C(PATCH /api/v1/instances/{name}); a delete is C(DELETE /api/v1/instances/{name}). Each starts a job, which the
    module awaits (O(wait)).
  - Only what is given is compared. O(replicas), O(synchronous), O(admin_database) and O(admin_password) are
    used when the instance is created; the API cannot change the first three afterwards, so an existing instance
    that differs in them fails the task rather than pretend.
  - When the instance is busy with a job (creating, changing, deleting), the module waits for that job first.
author:
  - pgaas project (!UNKNOWN)
extends_documentation_fragment:
  - pgaas.pgaas.api
  - pgaas.pgaas.api.state
  - pgaas.pgaas.api.wait
options:
  name:
    description:
      - The instance's name (3 to 40 characters of lowercase letters, digits and hyphens).
    type: str
    required: true
  state:
    description:
      - V(present) creates or changes it; V(absent) deletes it, with its containers, volumes and network.
    type: str
    choices: [present, absent]
    default: present
  replicas:
    description:
      - Number of standbys (1 to 3); the API's default (1) when not given. Only on creation.
    type: int
  synchronous:
    description:
      - Synchronous replication (a commit waits for a standby). Only on creation; the API's default when not
        given.
    type: bool
  admin_database:
    description:
      - The database created for, and owned by, the instance's admin role; the URIs point at it. Only on creation.
    type: str
  admin_password:
    description:
      - The instance's admin role's password (12 to 128 characters). Only on creation.
      - When not given, the API generates one and answers it once; the module returns it as RV(admin_password).
    type: str
  cpus:
    description:
      - CPUs per member (0.1 to 256).
    type: float
  memory_mb:
    description:
      - Memory per member in MiB (256 to 1048576).
    type: int
  storage_gb:
    description:
      - Size of each member's data volume in GB; it can only grow.
    type: int
  settings:
    description:
      - PostgreSQL settings (name to value) the instance must have, applied through Patroni. Only the settings
        named are compared, as text (V(true)/V(false) as C(on)/C(off)); a value of V(null) resets that setting.
      - The API checks each one against the running primary and refuses, with a message naming it, those that do
        not exist, cannot be changed or would break the pair.
      - On creation they are applied with a second job once the instance is available (the create request has no
        settings), so only with O(wait=true).
    type: dict
  force:
    description:
      - With O(state=absent), also delete the tenant databases the instance holds. Without it, an instance that
        holds tenant databases is not deleted (the API's message says how many).
    type: bool
    default: false
notes:
  - A change of sizes or settings needs the instance to be available; the API's message says otherwise.
  - Settings that need a restart are applied but wait for one (C(POST /api/v1/instances/{name}/restart)); the
    returned RV(instance) shows C(pending_restart).
"""

EXAMPLES = r"""
- name: Create a synchronous pair
  pgaas.pgaas.instance:
    api_url: http://127.0.0.1:8000
    api_token: "{{ pgaas_admin_token }}"
    name: shop
    synchronous: true
    memory_mb: 1024
    admin_password: "{{ vault_shop_admin_password }}"

- name: Raise its memory and set work_mem (one PATCH, one job)
  pgaas.pgaas.instance:
    name: shop
    memory_mb: 2048
    settings:
      work_mem: 16MB

- name: Create one and keep the generated admin password, shown once
  pgaas.pgaas.instance:
    name: reports
  register: reports
  no_log: true

- name: Delete an instance with its tenant databases
  pgaas.pgaas.instance:
    name: shop
    state: absent
    force: true
"""

RETURN = r"""
instance:
  description:
    - The instance as C(GET /api/v1/instances/{name}) shows it to an administrator, after the change (in check
      mode, as it was). Absent after a delete.
  returned: when the instance exists at the end
  type: dict
  sample:
    name: shop
    status: available
    synchronous: true
    replicas_wanted: 1
    memory_mb: 1024
    uri: postgresql://127.0.0.1:20000,127.0.0.1:20001/app?target_session_attrs=read-write&sslmode=verify-full
    settings:
      work_mem: 16MB
admin_password:
  description:
    - The admin role's password the API generated on creation. The API shows it this once and never again; it is
      returned only when the module created the instance without O(admin_password).
    - Treat it as a secret. Set C(no_log) on the creating task (the result then stays out of output and logs,
      and a registered variable still holds it), or give O(admin_password) yourself, from a vault.
  returned: when created without O(admin_password)
  type: str
job:
  description:
    - The last job the module started (or awaited), without its events.
  returned: when a job was started or awaited
  type: dict
  sample:
    id: 12
    kind: instance_create
    status: succeeded
    url: /api/v1/jobs/12
"""

from ansible_collections.pgaas.pgaas.plugins.module_utils.api import (
    JobFailed, StateModule, argument_spec, job_summary, merged_settings, path, run_module, settings_changes)

SIZES = ("cpus", "memory_mb", "storage_gb")
CREATE_ONLY = (("replicas", "replicas_wanted"), ("synchronous", "synchronous"), ("admin_database", "admin_database"))


def view(inst):
    """What the diff shows of an instance."""
    if inst is None:
        return {"state": "absent"}
    out = {"state": "present", "name": inst["name"], "replicas": inst.get("replicas_wanted"),
           "synchronous": inst.get("synchronous"), "admin_database": inst.get("admin_database"),
           "settings": merged_settings(inst.get("settings"), {})}
    out.update((k, inst.get(k)) for k in SIZES)
    return out


class Instance(StateModule):
    view = staticmethod(view)
    key = "instance"

    def __init__(self, module):
        super(Instance, self).__init__(module, path("instances", module.params["name"]))

    def read(self):
        """The instance, once any job it is busy with has ended (when waiting)."""
        inst = self.api.get_or_none(self.url)
        if inst and inst.get("active_job") and self.p["wait"]:
            self.result["job"] = job_summary(self.await_job(inst["active_job"], check=False))
            inst = self.api.get_or_none(self.url)
        return inst

    def await_job(self, ref, check=True):
        if not self.p["wait"]:
            return ref
        try:
            return self.api.wait_job(ref, self.p["wait_timeout"])
        except JobFailed as e:
            if check:
                raise
            return e.job  # an earlier job's failure: the instance's own status tells the rest

    def started(self, answer):
        job = answer["job"]
        self.result["job"] = job_summary(self.await_job(job) if self.p["wait"] else job)

    def create(self):
        body = {"name": self.p["name"]}
        for key in ("replicas", "synchronous", "admin_database", "admin_password") + SIZES:
            if self.p[key] is not None:
                body[key] = self.p[key]
        self.result["changed"] = True
        planned = dict(view(None), state="present", name=self.p["name"], replicas=self.p["replicas"],
                       synchronous=self.p["synchronous"], admin_database=self.p["admin_database"],
                       settings=merged_settings({}, self.p["settings"] or {}))
        planned.update((k, self.p[k]) for k in SIZES)
        if self.module.check_mode:
            return planned
        answer = self.api.request("POST", "/instances", body)[1]
        if self.p["admin_password"] is None and answer.get("admin_password"):
            self.result["admin_password"] = answer["admin_password"]
        self.started(answer)
        if self.p["settings"] and not self.p["wait"]:
            self.module.warn("settings are applied once the instance is available: run the task again after the "
                             "create job (or with wait=true)")
        elif self.p["settings"]:
            inst = self.api.get(self.url)
            changes = settings_changes(self.p["settings"], inst.get("settings"))
            if changes:
                self.started(self.api.request("PATCH", self.url, {"settings": changes})[1])
        return self.finish()

    def update(self, inst):
        if inst.get("status") == "failed":
            self.module.fail_json(msg="instance %s is failed: %s (retry it with POST /api/v1/instances/%s/retry, or "
                                      "delete it with state=absent)" % (inst["name"], inst.get("status_reason") or
                                                                        "no reason recorded", inst["name"]),
                                  instance=inst, **self.result)
        for option, field in CREATE_ONLY:
            if self.p[option] is not None and self.p[option] != inst.get(field):
                self.module.fail_json(msg="instance %s has %s=%r; the API cannot change it after creation (asked: %r)"
                                      % (inst["name"], option, inst.get(field), self.p[option]), instance=inst)
        body = dict((k, self.p[k]) for k in SIZES if self.p[k] is not None and self.p[k] != inst.get(k))
        changes = settings_changes(self.p["settings"], inst.get("settings"))
        if changes:
            body["settings"] = changes
        if not body:
            self.result["instance"] = inst
            return view(inst)
        self.result["changed"] = True
        planned = dict(view(inst), settings=merged_settings(inst.get("settings"), changes))
        planned.update((k, body[k]) for k in SIZES if k in body)
        if self.module.check_mode:
            self.result["instance"] = inst
            return planned
        self.started(self.api.request("PATCH", self.url, body)[1])
        return self.finish()

    def absent(self, inst):
        if inst is None:
            return view(None)
        self.result["changed"] = True
        if self.module.check_mode:
            return view(None)
        answer = self.api.request("DELETE", self.url, query={"force": "true"} if self.p["force"] else None)[1]
        self.started(answer)
        if not self.p["wait"]:
            self.result["instance"] = self.api.get_or_none(self.url)
        return view(None)


def main():
    run_module(
        Instance,
        argument_spec(
            wait=True,
            state=True,
            name=dict(type="str", required=True),
            replicas=dict(type="int"),
            synchronous=dict(type="bool"),
            admin_database=dict(type="str"),
            admin_password=dict(type="str", no_log=True),
            cpus=dict(type="float"),
            memory_mb=dict(type="int"),
            storage_gb=dict(type="int"),
            settings=dict(type="dict"),
            force=dict(type="bool", default=False),
        ),
    )


if __name__ == "__main__":
    main()
