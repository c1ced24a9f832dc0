#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: user
short_description: Create or delete a pgaas user and set their allowances
version_added: 0.1.0
description:
  - Makes a pgaas user (an account of the website and the API) exist with the given storage allowance and maximum
    number of databases, or not exist, through the pgaas JSON API (C(/api/v1/users)). Needs an administrator's
    token.
  - The password and O(is_admin) are used when the user is created; the API has no way for an administrator to
    change them afterwards (users change their own password), so they are not compared. An existing user whose
    O(is_admin) differs fails the task rather than pretend.
author:
  - pgaas project (!UNKNOWN)
extends_documentation_fragment:
  - pgaas.pgaas.api
  - pgaas.pgaas.api.state
options:
  username:
    description:
      - The user's name (2 to 63 characters; a lowercase letter, then lowercase letters, digits, C(_), C(.) or
        C(-)).
    type: str
    required: true
  state:
    description:
      - V(present) creates the user or sets their allowances; V(absent) deletes the user.
    type: str
    choices: [present, absent]
    default: present
  password:
    description:
      - The password of a user to create (the API's length rule applies). Required to create one; not compared
        afterwards.
    type: str
  is_admin:
    description:
      - Whether the user is an administrator. Used when the user is created (not given, V(false)); an existing
        user whose role differs fails the task.
    type: bool
  storage_allowance_mb:
    description:
      - Total quota, in MB, the user's databases may have together (V(0) is no limit). Not given, unchanged (a new
        user gets the control plane's default).
    type: int
  max_databases:
    description:
      - How many databases the user may own (V(0) is no limit). Not given, unchanged.
    type: int
  transfer_to:
    description:
      - With O(state=absent), hand the user's databases to this user.
    type: str
  delete_databases:
    description:
      - With O(state=absent), delete the user's databases with them (at once, without final dumps). Without this or
        O(transfer_to), a user who owns databases is not deleted (the API's message names them); with both,
        O(transfer_to) wins.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Give a tenant an account with 2 GB for at most three databases
  pgaas.pgaas.user:
    api_url: http://127.0.0.1:8000
    api_token: "{{ pgaas_admin_token }}"
    username: ann
    password: "{{ vault_ann_password }}"
    storage_allowance_mb: 2048
    max_databases: 3

- name: Delete a user and hand their databases to another
  pgaas.pgaas.user:
    username: ann
    state: absent
    transfer_to: bob
"""

RETURN = r"""
user:
  description:
    - The user as C(GET /api/v1/users/{username}) shows them, with their capacity (allowance, what is allocated
      and used, what is left), after the change (in check mode, as they were).
  returned: when the user exists at the end
  type: dict
  sample:
    username: ann
    is_admin: false
    storage_allowance_mb: 2048
    max_databases: 3
    capacity:
      storage_left_mb: 1548
      databases_left: 2
"""

from ansible_collections.pgaas.pgaas.plugins.module_utils.api import StateModule, argument_spec, path, run_module

ALLOWANCES = ("storage_allowance_mb", "max_databases")


def view(user):
    if user is None:
        return {"state": "absent"}
    out = {"state": "present", "username": user["username"], "is_admin": user.get("is_admin")}
    out.update((k, user.get(k)) for k in ALLOWANCES)
    return out


class User(StateModule):
    view = staticmethod(view)
    key = "user"

    def __init__(self, module):
        super(User, self).__init__(module, path("users", module.params["username"]))

    def read(self):
        answer = self.api.get_or_none(self.url)
        return answer["user"] if answer else None

    def wanted(self, user):
        return dict((k, self.p[k]) for k in ALLOWANCES
                    if self.p[k] is not None and (user is None or self.p[k] != user.get(k)))

    def create(self):
        if self.p["password"] is None:
            self.module.fail_json(msg="user %s does not exist: give password to create them" % self.p["username"])
        self.result["changed"] = True
        planned = dict(state="present", username=self.p["username"], is_admin=bool(self.p["is_admin"]))
        planned.update((k, self.p[k]) for k in ALLOWANCES)
        if self.module.check_mode:
            return planned
        self.api.request("POST", "/users", {"username": self.p["username"], "password": self.p["password"],
                                            "is_admin": bool(self.p["is_admin"])})
        allowances = self.wanted(None)
        if allowances:
            self.api.request("PATCH", self.url, allowances)
        return self.finish()

    def update(self, user):
        self.result["user"] = user
        if self.p["is_admin"] is not None and self.p["is_admin"] != user.get("is_admin"):
            self.module.fail_json(msg="user %s has is_admin=%s; the API cannot change it after creation (asked: %s)"
                                  % (user["username"], user.get("is_admin"), self.p["is_admin"]), user=user)
        allowances = self.wanted(user)
        if not allowances:
            return view(user)
        self.result["changed"] = True
        if self.module.check_mode:
            return dict(view(user), **allowances)
        self.api.request("PATCH", self.url, allowances)
        return self.finish()

    def absent(self, user):
        if user is None:
            return view(None)
        self.result["changed"] = True
        if self.module.check_mode:
            return view(None)
        query = {}
        if self.p["transfer_to"]:
            query["transfer_to"] = self.p["transfer_to"]
        if self.p["delete_databases"]:
            query["delete_databases"] = "true"
        self.api.request("DELETE", self.url, query=query or None)
        return view(None)


def main():
    run_module(
        User,
        argument_spec(
            state=True,
            username=dict(type="str", required=True),
            password=dict(type="str", no_log=True),
            is_admin=dict(type="bool"),
            storage_allowance_mb=dict(type="int"),
            max_databases=dict(type="int"),
            transfer_to=dict(type="str"),
            delete_databases=dict(type="bool", default=False),
        ),
    )


if __name__ == "__main__":
    main()
