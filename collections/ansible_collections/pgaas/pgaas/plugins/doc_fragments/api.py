# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options every pgaas.pgaas module shares: where the API is and the token to call it with."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  api_url:
    description:
      - The pgaas control plane's URL, for example C(http://127.0.0.1:8000) (the C(/api/v1) prefix is added when
        missing).
      - When not given, the E(PGAAS_API_URL) environment variable is used.
    type: str
    required: true
  api_token:
    description:
      - An API token (C(POST /api/v1/tokens) or the website's Tokens page) of scope C(write); the C(_info) modules
        need only C(read).
      - The token acts as its user. Administrators manage instances and users; a database belongs to the user whose
        token created it, so each tenant's databases are managed with that tenant's token.
      - When not given, the E(PGAAS_API_TOKEN) environment variable is used.
    type: str
    required: true
  validate_certs:
    description:
      - Whether to verify the TLS certificate of an C(https) O(api_url).
    type: bool
    default: true
  ca_path:
    description:
      - A PEM file of CA certificates to verify an C(https) O(api_url) against, instead of the system's.
    type: path
  timeout:
    description:
      - Seconds each HTTP request to the API may take.
    type: int
    default: 30
"""

    WAIT = r"""
options:
  wait:
    description:
      - Wait for the job a change starts (C(GET /api/v1/jobs/{id})) until it ends. A job that fails, is canceled or
        errs fails the task with the job's own error message.
      - With V(false) the task returns as soon as the API has accepted the change, with the job in RV(job).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for a job before the task fails (the job keeps running on the control plane).
    type: int
    default: 900
"""

    STATE = r"""
attributes:
  check_mode:
    description: Reports what would change and changes nothing.
    support: full
  diff_mode:
    description: Shows what the module manages of the resource, and whether it exists, before and after (never a
      password).
    support: full
"""

    INFO = r"""
attributes:
  check_mode:
    description: Runs in check mode too (it only reads).
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
"""
