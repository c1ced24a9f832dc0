#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: instance_info
short_description: Read pgaas instances
version_added: 0.1.0
description:
  - Reads one pgaas instance, or every instance the token's user may see, through the pgaas JSON API
    (C(GET /api/v1/instances)). Changes nothing.
  - Administrators see each instance whole (members, replicas with their lag, URIs, sizes, settings, metadata);
    other users see the instances open to them, each as its name, status and version.
author:
  - pgaas project (!UNKNOWN)
extends_documentation_fragment:
  - pgaas.pgaas.api
  - pgaas.pgaas.api.info
options:
  name:
    description:
      - Read only this instance. RV(instances) is then empty when it does not exist (or is not open to the user).
    type: str
"""

EXAMPLES = r"""
- name: Read every instance
  pgaas.pgaas.instance_info:
    api_url: http://127.0.0.1:8000
    api_token: "{{ pgaas_admin_token }}"
  register: pgaas

- name: Read one and show its read-write URI
  pgaas.pgaas.instance_info:
    name: shop
  register: shop

- name: Show the URI
  ansible.builtin.debug:
    msg: "{{ shop.instances[0].uri }}"
"""

RETURN = r"""
instances:
  description:
    - The instances, as C(GET /api/v1/instances/{name}) shows each (live state from Patroni for an administrator).
  returned: always
  type: list
  elements: dict
  sample:
    - name: shop
      status: available
      synchronous: true
      primary:
        name: pgaas-shop-0
        state: running
      replicas:
        - name: pgaas-shop-1
          state: streaming
          lag_bytes: 0
          sync_state: sync
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgaas.pgaas.plugins.module_utils.api import ApiError, Client, argument_spec, path


def main():
    module = AnsibleModule(argument_spec=argument_spec(name=dict(type="str")), supports_check_mode=True)
    api = Client(module)
    try:
        if module.params["name"]:
            one = api.get_or_none(path("instances", module.params["name"]))
            instances = [one] if one else []
        else:
            instances = api.list("/instances", "instances")
    except ApiError as e:
        api.fail(e, dict(changed=False))
    module.exit_json(changed=False, instances=instances)


if __name__ == "__main__":
    main()
