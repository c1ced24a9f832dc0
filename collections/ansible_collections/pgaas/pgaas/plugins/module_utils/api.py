# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pgaas JSON API as the modules call it: one client (token, TLS options, the one error shape), pagination,
and the wait for a job. Only ansible.module_utils.urls: no requests."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import socket
import time

from ansible.module_utils.basic import AnsibleModule, env_fallback
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import quote, urlencode
from ansible.module_utils.urls import open_url

API_PREFIX = "/api/v1"
FINISHED = ("succeeded", "failed", "canceled", "error")
PAGE = 1000  # the API's largest page

API_ARGS = dict(
    api_url=dict(type="str", required=True, fallback=(env_fallback, ["PGAAS_API_URL"])),
    api_token=dict(type="str", required=True, no_log=True, fallback=(env_fallback, ["PGAAS_API_TOKEN"])),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
    timeout=dict(type="int", default=30),
)

WAIT_ARGS = dict(
    wait=dict(type="bool", default=True),
    wait_timeout=dict(type="int", default=900),
)


def argument_spec(wait=False, state=False, **own):
    """The shared options (API_ARGS), the job's (WAIT_ARGS) with wait, state present/absent with state, and own."""
    spec = dict(API_ARGS)
    if wait:
        spec.update(WAIT_ARGS)
    if state:
        spec["state"] = dict(type="str", default="present", choices=["present", "absent"])
    spec.update(own)
    return spec


def path(*segments):
    """An API path from its segments, each quoted: path("instances", name) -> /instances/NAME."""
    return "".join("/" + quote(to_text(s), safe="") for s in segments)


class ApiError(Exception):
    """An answer of 400 or more: {"error": {"code", "message", "details"?}}."""

    def __init__(self, status, body, method, url):
        err = body.get("error") if isinstance(body, dict) else None
        err = err if isinstance(err, dict) else {}
        self.status = status
        self.code = err.get("code") or "http_%d" % status
        self.message = err.get("message") or "HTTP %d from %s %s" % (status, method, url)
        self.details = err.get("details") or {}
        super(ApiError, self).__init__(self.message)


class JobFailed(Exception):
    def __init__(self, job, message):
        self.job = job
        super(JobFailed, self).__init__(message)


class Client(object):
    """Calls the API as the token's user; every failure ends the module through fail()."""

    def __init__(self, module):
        self.module = module
        p = module.params
        base = p["api_url"].rstrip("/")
        self.base = base if base.endswith(API_PREFIX) else base + API_PREFIX
        self.token = p["api_token"]
        self.writes = 0  # changes the API accepted so far: a failure after none changed nothing

    def request(self, method, api_path, body=None, query=None):
        """(status, JSON answer or {}) for 2xx; raises ApiError for an answer of 400 or more."""
        url = self.base + api_path + ("?" + urlencode(query) if query else "")
        headers = {"Authorization": "Bearer " + self.token, "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        p = self.module.params
        try:
            resp = open_url(url, data=data, headers=headers, method=method, timeout=p["timeout"],
                            validate_certs=p["validate_certs"], ca_path=p["ca_path"],
                            http_agent="pgaas.pgaas-collection", follow_redirects="none")
            status, raw = resp.getcode(), resp.read()
        except HTTPError as e:
            status, raw = e.code, e.read()
        except (URLError, socket.error, socket.timeout) as e:
            self.module.fail_json(msg="cannot reach the pgaas API at %s: %s" % (self.base, to_text(e)))
        try:
            answer = json.loads(to_text(raw)) if raw else {}
        except ValueError:
            answer = {}
            if status < 400:
                self.module.fail_json(msg="%s %s answered %d with something that is not JSON" % (method, url, status))
        if status >= 400:
            raise ApiError(status, answer, method, url)
        if method != "GET":
            self.writes += 1
        return status, answer

    def get(self, api_path, query=None):
        return self.request("GET", api_path, query=query)[1]

    def get_or_none(self, api_path):
        """The resource, or None when the API answers 404."""
        try:
            return self.get(api_path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def list(self, api_path, key, query=None):
        """Every item of a paged list (limit/offset; the answer names its items `key`)."""
        items, offset = [], 0
        while True:
            q = dict(query or {}, limit=PAGE, offset=offset)
            page = self.get(api_path, q)
            items.extend(page.get(key) or [])
            if not page.get("next") or not page.get(key):
                return items
            offset += len(page[key])

    def wait_job(self, job_ref, timeout):
        """Poll the job until it ends; its final body. JobFailed (with the job's own error) unless it succeeded.
        Only new events are fetched on each poll (?after=)."""
        job_id = job_ref["id"]
        deadline = time.monotonic() + timeout
        after, delay = 0, 0.5
        while True:
            job = self.get(path("jobs", job_id), {"after": after})
            events = job.get("events") or []
            if events:
                after = max(e.get("id") or 0 for e in events)
            if job.get("status") in FINISHED:
                break
            if time.monotonic() >= deadline:
                msg = "job %s (%s) is still %s after %d s (wait_timeout); it keeps running on the control plane: " \
                      "GET %s" % (job_id, job.get("kind"), job.get("status"), timeout, job.get("url"))
                raise JobFailed(job, msg)
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)
        if job["status"] != "succeeded":
            msg = "job %s (%s) %s: %s" % (job_id, job.get("kind"), job["status"], job.get("error") or "no error message")
            raise JobFailed(job, msg)
        return job

    def fail(self, exc, result):
        """End the module with the API's own message (or the job's), keeping what the result has so far."""
        out = dict(result, changed=self.writes > 0)
        if isinstance(exc, ApiError):
            out.update(msg=exc.message, status=exc.status, code=exc.code, details=exc.details)
        else:
            out.update(msg=to_text(exc), job=job_summary(exc.job))
        self.module.fail_json(**out)


def job_summary(job):
    """A job as the modules return it: never its events (their messages are the control plane's business)."""
    if not job:
        return None
    return dict((k, job.get(k)) for k in ("id", "kind", "status", "instance", "error", "url", "result")
                if k in job)


def as_setting_text(value):
    """A setting's value as the API stores it (webapp/services/settings.py, databases.checked_parameters)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "on" if value else "off"
    return to_text(value)


def settings_changes(wanted, current):
    """{name: value} of the wanted settings whose text differs from the current ones (names compared without
    case; a None value asks for a reset, which is a change only when the setting is set)."""
    have = dict((k.lower(), v) for k, v in (current or {}).items())
    out = {}
    for name, value in (wanted or {}).items():
        now = have.get(name.lower())
        if value is None:
            if now is not None:
                out[name] = None
        elif as_setting_text(value) != as_setting_text(now):
            out[name] = value
    return out


def merged_settings(current, changes):
    """current with changes applied (a None removes), for the diff's after."""
    out = dict((k.lower(), v) for k, v in (current or {}).items())
    for name, value in changes.items():
        if value is None:
            out.pop(name.lower(), None)
        else:
            out[name.lower()] = as_setting_text(value)
    return out


class StateModule(object):
    """state present/absent over one API resource. A subclass gives view(resource) (what the diff shows of it;
    None: absent), and create(), update(current) and absent(current), each returning the diff's after (and
    changing nothing in check mode); read() is the resource at url, or None."""

    def __init__(self, module, url):
        self.module = module
        self.p = module.params
        self.api = Client(module)
        self.url = url
        self.result = dict(changed=False)

    key = None  # the result's name for the resource

    def read(self):
        return self.api.get_or_none(self.url)

    def finish(self):
        """The resource as it is after a change, into the result; the diff's after."""
        resource = self.read()
        self.result[self.key] = resource
        return self.view(resource)

    def run(self):
        before = self.read()
        if self.p["state"] == "absent":
            after = self.absent(before)
        elif before is None:
            after = self.create()
        else:
            after = self.update(before)
        if self.module._diff:
            self.result["diff"] = dict(before=self.view(before), after=after)
        self.module.exit_json(**self.result)


def run_module(cls, spec, **kwargs):
    """Run a StateModule subclass; a refusal of the API or a failed job ends it with that message."""
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True, **kwargs)
    runner = cls(module)
    try:
        runner.run()
    except (ApiError, JobFailed) as e:
        runner.api.fail(e, runner.result)
