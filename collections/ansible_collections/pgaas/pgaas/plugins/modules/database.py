#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: database
short_description: Create, change, re-password or delete a tenant database on a pgaas instance
version_added: 0.1.0
description:
  - Makes a tenant database (with its own login role) exist on a pgaas instance with the given quota, connection
    limit and parameters, or not exist, through the pgaas JSON API (C(/api/v1/instances/{instance}/databases)).
  - A database belongs to the user whose token created it. Manage a tenant's databases with that tenant's token
    (O(api_token)); an administrator's token sees and changes every database, and creates databases of its own.
  - Only what is given is compared. A change of O(quota_mb), O(connection_limit) or O(parameters) is one C(PATCH).
  - A delete ends the database's sessions and drops it with its role; by default a job keeps a final dump first
    (restorable for the control plane's grace period), which the module awaits (O(wait)).
author:
  - pgaas project (!UNKNOWN)
extends_documentation_fragment:
  - pgaas.pgaas.api
  - pgaas.pgaas.api.state
  - pgaas.pgaas.api.wait
options:
  instance:
    description:
      - The instance the database lives on.
    type: str
    required: true
  name:
    description:
      - The database's name, which is also its login role's name.
    type: str
    required: true
  state:
    description:
      - V(present) creates or changes it; V(absent) drops it.
    type: str
    choices: [present, absent]
    default: present
  quota_mb:
    description:
      - Storage quota in MB, within what the owner's storage allowance has left (the API's message says how much).
        A database over its quota becomes read-only.
      - When not given on creation, the API chooses one under an allowance.
    type: int
  connection_limit:
    description:
      - Most connections the database's role may hold at once.
    type: int
  parameters:
    description:
      - Per-database settings (planner, memory, timeout and client settings such as C(work_mem),
        C(statement_timeout), C(search_path)). Only those named are compared, as text; V(null) resets one.
    type: dict
  password:
    description:
      - The role's password (the API's length rules apply). When given, it is set right after the database is
        created, and again on every run with O(update_password=always).
      - When not given, the API generates one on creation and answers it once; the module returns it as
        RV(password).
    type: str
  update_password:
    description:
      - V(on_create) sets a password only when the database is created. V(always) sets O(password), or asks the
        API for a new generated one, on every run, so the task always reports a change (the API cannot tell
        whether a password already matches).
    type: str
    choices: [on_create, always]
    default: on_create
  final_dump:
    description:
      - With O(state=absent), keep a final dump first (a job; the database can be restored from it during the
        control plane's grace period). V(false) drops it at once.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Give a tenant a database, with its own token
  pgaas.pgaas.database:
    api_url: http://127.0.0.1:8000
    api_token: "{{ ann_token }}"
    instance: shop
    name: ann_orders
    quota_mb: 500
    connection_limit: 20
    parameters:
      work_mem: 8MB
    password: "{{ vault_ann_orders_password }}"

- name: Create one and keep the generated password (shown once)
  pgaas.pgaas.database:
    instance: shop
    name: reports
  register: reports_db
  no_log: true

- name: Drop a database at once, without a final dump
  pgaas.pgaas.database:
    instance: shop
    name: scratch
    state: absent
    final_dump: false
"""

RETURN = r"""
database:
  description:
    - The database as C(GET /api/v1/instances/{instance}/databases/{name}) shows it, after the change (in check
      mode, as it was). Never a password.
  returned: when the database exists at the end
  type: dict
  sample:
    name: ann_orders
    instance: shop
    owner: ann
    role: ann_orders
    uri: postgresql://127.0.0.1:20000,127.0.0.1:20001/ann_orders?target_session_attrs=read-write&sslmode=verify-full
    quota_mb: 500
    connection_limit: 20
    parameters:
      work_mem: 8MB
    status: ok
password:
  description:
    - A password the API generated (on creation without O(password), or with O(update_password=always) and no
      O(password)). The API answers it this once.
    - Treat it as a secret. Set C(no_log) on the task (a registered variable still holds it), or give
      O(password) yourself, from a vault.
  returned: when the API generated a password in this run
  type: str
job:
  description:
    - The delete job the module started, without its events.
  returned: when a delete with a final dump was started
  type: dict
"""

from ansible_collections.pgaas.pgaas.plugins.module_utils.api import (
    ApiError, StateModule, argument_spec, job_summary, merged_settings, path, run_module, settings_changes)

LIMITS = ("quota_mb", "connection_limit")


def view(db):
    if db is None:
        return {"state": "absent"}
    out = {"state": "present", "name": db["name"], "instance": db["instance"], "owner": db.get("owner"),
           "parameters": merged_settings(db.get("parameters"), {})}
    out.update((k, db.get(k)) for k in LIMITS)
    return out


class Database(StateModule):
    view = staticmethod(view)
    key = "database"

    def __init__(self, module):
        p = module.params
        super(Database, self).__init__(module, path("instances", p["instance"], "databases", p["name"]))

    def create(self):
        body = {"name": self.p["name"]}
        body.update((k, self.p[k]) for k in LIMITS if self.p[k] is not None)
        if self.p["parameters"]:
            body["parameters"] = self.p["parameters"]
        self.result["changed"] = True
        planned = {"state": "present", "name": self.p["name"], "instance": self.p["instance"], "owner": None,
                   "parameters": merged_settings({}, self.p["parameters"] or {})}
        planned.update((k, self.p[k]) for k in LIMITS)
        if self.module.check_mode:
            return planned
        created = self.api.request("POST", path("instances", self.p["instance"], "databases"), body)[1]["database"]
        if self.p["password"] is None:
            self.result["password"] = created.get("password")
            return self.finish()
        try:
            self.set_password()
        except ApiError:
            self.result["password"] = created.get("password")  # the one that works, since the given one was refused
            raise
        return self.finish()

    def update(self, db):
        body = dict((k, self.p[k]) for k in LIMITS if self.p[k] is not None and self.p[k] != db.get(k))
        changes = settings_changes(self.p["parameters"], db.get("parameters"))
        if changes:
            body["parameters"] = changes
        repassword = self.p["update_password"] == "always"
        self.result["database"] = db
        if not body and not repassword:
            return view(db)
        self.result["changed"] = True
        planned = dict(view(db), parameters=merged_settings(db.get("parameters"), changes))
        planned.update((k, body[k]) for k in LIMITS if k in body)
        if self.module.check_mode:
            return planned
        if body:
            self.api.request("PATCH", self.url, body)
        if repassword:
            self.set_password()
        return self.finish()

    def set_password(self):
        body = {"password": self.p["password"]} if self.p["password"] is not None else {}
        answer = self.api.request("POST", self.url + "/password", body)[1]
        if self.p["password"] is None:
            self.result["password"] = answer.get("password")

    def absent(self, db):
        if db is None:
            return view(None)
        self.result["changed"] = True
        if self.module.check_mode:
            return view(None)
        status, answer = self.api.request("DELETE", self.url,
                                          query=None if self.p["final_dump"] else {"final_dump": "false"})
        if status == 202:
            job = answer["job"]
            if self.p["wait"]:
                job = self.api.wait_job(job, self.p["wait_timeout"])
            self.result["job"] = job_summary(job)
        return view(None)


def main():
    run_module(
        Database,
        argument_spec(
            wait=True,
            state=True,
            instance=dict(type="str", required=True),
            name=dict(type="str", required=True),
            quota_mb=dict(type="int"),
            connection_limit=dict(type="int"),
            parameters=dict(type="dict"),
            password=dict(type="str", no_log=True),
            update_password=dict(type="str", default="on_create", choices=["on_create", "always"], no_log=False),
            final_dump=dict(type="bool", default=True),
        ),
    )


if __name__ == "__main__":
    main()
