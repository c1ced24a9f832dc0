#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: database_info
short_description: Read pgaas tenant databases
version_added: 0.1.0
description:
  - Reads the tenant databases the token's user may see through the pgaas JSON API (C(GET /api/v1/databases));
    a user sees their own, an administrator every one. Changes nothing; never returns a password.
author:
  - pgaas project (!UNKNOWN)
extends_documentation_fragment:
  - pgaas.pgaas.api
  - pgaas.pgaas.api.info
options:
  instance:
    description:
      - Only the databases of this instance.
    type: str
  name:
    description:
      - Only this database (with its live size and connections). Needs O(instance).
    type: str
  owner:
    description:
      - Only the databases of this user (administrators).
    type: str
"""

EXAMPLES = r"""
- name: Read my databases
  pgaas.pgaas.database_info:
    api_url: http://127.0.0.1:8000
    api_token: "{{ ann_token }}"
  register: mine

- name: Read one database of an instance, with its size
  pgaas.pgaas.database_info:
    instance: shop
    name: ann_orders
  register: orders
"""

RETURN = r"""
databases:
  description:
    - The databases, as C(GET /api/v1/instances/{instance}/databases/{name}) shows each (the size and connections
      only when O(name) is given).
  returned: always
  type: list
  elements: dict
  sample:
    - name: ann_orders
      instance: shop
      owner: ann
      role: ann_orders
      quota_mb: 500
      status: ok
      uri: postgresql://127.0.0.1:20000,127.0.0.1:20001/ann_orders?target_session_attrs=read-write&sslmode=verify-full
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgaas.pgaas.plugins.module_utils.api import ApiError, Client, argument_spec, path


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(instance=dict(type="str"), name=dict(type="str"), owner=dict(type="str")),
        required_by={"name": "instance"},
        supports_check_mode=True,
    )
    p = module.params
    api = Client(module)
    try:
        if p["name"]:
            one = api.get_or_none(path("instances", p["instance"], "databases", p["name"]))
            databases = [one] if one and (not p["owner"] or one.get("owner") == p["owner"]) else []
        else:
            query = dict((k, p[k]) for k in ("instance", "owner") if p[k])
            databases = api.list("/databases", "databases", query)
    except ApiError as e:
        api.fail(e, dict(changed=False))
    module.exit_json(changed=False, databases=databases)


if __name__ == "__main__":
    main()
