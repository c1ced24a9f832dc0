"""schemathesis against the generated OpenAPI document (/api/v1/openapi.json): every operation, with data that
fits the document and data that does not, over real HTTP to the app on loopback (SQLite metadata), as an
administrator, with no worker (a change only queues its job; nothing is deployed). No answer may be a 5xx."""
from __future__ import annotations

import time
from collections import Counter

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error

from tests.conftest import Live, make_app

# Examples per operation and generation mode: about 55 operations x 2 modes x 6 in about a minute on the shared
# 2-core machine. derandomize: the same examples on every run (a failure here is a bug to fix, not a flake).
EXAMPLES = 6
PORTS = {"PORT_RANGE_START": 34000, "PORT_RANGE_END": 34999}  # placement only: no member ever starts


class Admin:
    """The administrator's Authorization header, issued again (in the store: logins are rate limited) after a
    generated DELETE /tokens/{id} revoked it."""

    def __init__(self, srv: Live):
        self.srv, self.headers = srv, {"Authorization": srv.admin.session.headers["Authorization"]}

    def renew_if_revoked(self, response) -> None:
        if response.status_code == 401 and "revoked" in response.text:
            from webapp.services import accounts, audit

            with self.srv.app.extensions["pgaas"].store.session() as s:
                root = accounts.get_user(s, "root")
                _, raw = accounts.issue_token(s, root, "schemathesis", actor=audit.Actor("root", True, root.id))
            self.headers["Authorization"] = f"Bearer {raw}"


def test_no_operation_answers_a_server_error(tmp_path):
    srv = Live(make_app(f"sqlite:///{tmp_path / 'pgaas.sqlite'}", tmp_path / "instance", **PORTS), workers=0)
    try:
        api = srv.base + "/api/v1"
        schema = schemathesis.openapi.from_url(api + "/openapi.json")
        admin, errors, answers, started = Admin(srv), [], {}, time.monotonic()
        for result in schema.get_all_operations():
            operation = result.ok()
            seen = answers.setdefault(operation.label, Counter())
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

                @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
                @given(case=operation.as_strategy(generation_mode=mode))
                def run(case):
                    response = case.call(base_url=api, headers=admin.headers, timeout=30)
                    assert response.request.url.startswith(api + "/"), response.request.url
                    seen[response.status_code] += 1
                    admin.renew_if_revoked(response)
                    case.validate_response(response, checks=[not_a_server_error])

                try:
                    run()
                except (AssertionError, BaseExceptionGroup) as exc:  # every operation's failures, then all reported
                    errors.append(f"{operation.label} ({mode.value}): {str(exc).strip()[:1500]}")
        total = sum((c for c in answers.values()), Counter())
        print(f"{len(answers)} operations, {sum(total.values())} requests in {time.monotonic() - started:.0f} s: "
              f"{sorted(total.items())}")
        assert not errors, "\n\n".join(errors)
        # every operation was reached, and let in (an answer other than 401) at least once
        assert len(answers) >= 50 and all(set(c) - {401} for c in answers.values()), answers
        assert total[202] and total[201] and total[422] and total[400] and total[404], total
    finally:
        srv.close()
