"""The instance page (administrators), built in one session: the live view of its members, its databases and
jobs, the settings each member runs, its primary changes, and the forms of every section (settings, sizes, access,
restart, switchover, failover, rebuild, delete). The routes of instances.py and failover.py draw it again with
the form they were posted in its place when the service refuses."""
from __future__ import annotations

from flask import render_template, request
from wtforms.fields.choices import SelectChoice

from webapp.extensions import services
from webapp.services import access, livestate
from webapp.services import backups as bsvc
from webapp.services import databases as dbsvc
from webapp.services import failover as fsvc
from webapp.services import instances as isvc
from webapp.services import jobs as jobsvc
from webapp.services import settings as ssvc
from webapp.ui import forms
from webapp.ui.common import actor, instance_or_404, tls_view

AUTOMATIC = ""  # the switchover candidate when none is named: Patroni's choice


def instance_view(inst, st, state_age: float | None = None, active_job=None) -> dict:
    """What the pages show of an instance: Patroni's view when it answers (state_age: how old, in seconds;
    services/livestate.py), the placement otherwise."""
    if st is not None and st.reachable:
        members = ([st.primary] if st.primary else []) + list(st.replicas)
    else:
        state = "unknown" if inst.status == "available" else inst.status
        members = [isvc.MemberState(name=m.name, host=m.host, address=m.address, port=m.pg_port, container=m.name,
                                    role="primary" if m.ordinal == 0 else "replica", state=state)
                   for m in inst.members]
    uri, ro_uri = isvc.uris(inst)
    return {"inst": inst, "name": inst.name, "status": isvc.effective_status(inst, st),
            "reason": inst.status_reason or (st.problem if st is not None and not st.healthy else ""),
            "members": members, "primary": next((m for m in members if m.role == "primary"), None),
            "replicas": [m for m in members if m.role != "primary"], "same_host": isvc.same_host(inst),
            "live": st is not None and st.reachable, "active_job": active_job, "uri": uri, "ro_uri": ro_uri,
            "state_age": state_age if st is not None else None,
            "tls": tls_view(inst)}


def managed_settings(inst) -> dict:
    """The PostgreSQL settings changed through pgaas: {name: value}."""
    return {k: (v.get("value") if isinstance(v, dict) else v)
            for k, v in ((inst.meta or {}).get("settings") or {}).items()}


def _settings_view(inst, svc) -> dict | None:
    """Per member: each setting changed through pgaas (and any waiting for a restart), with its flags."""
    if inst.status != "available":
        return None
    cur = ssvc.current(inst, svc.box, float(svc.config["PROBE_TIMEOUT"]) + 1)
    names = sorted({x["name"] for m in cur["members"] for x in m["settings"]} | set(cur["requested"]))
    rows = [{"name": n, "requested": cur["requested"].get(n),
             "members": [next((x for x in m["settings"] if x["name"] == n), None) for m in cur["members"]]}
            for n in names]
    return {"members": cur["members"], "rows": rows, "pending_restart": cur["pending_restart"]}


def _failover_view(s, inst, v: dict, switchover_form=None, failover_form=None, rebuild_form=None) -> dict:
    """The failover section: recent primary changes, the switchover and failover forms, each member's state with
    its rebuild button."""
    changes = [{"at": c.at, "from": c.from_member, "to": c.to_member, "cause": c.cause, "timeline": c.timeline,
                "lag_bytes": c.lag_bytes, "job_id": c.job_id, "reason": c.reason}
               for c in fsvc.history(s, inst, limit=20)]
    lost = {m.name: m.lost_since for m in inst.members}
    primary = v["primary"].name if v.get("primary") else None
    standbys = [m for m in v["members"] if m.name != primary]
    sw = switchover_form or forms.SwitchoverForm(prefix="sw", formdata=None)
    sw.candidate.choices = [SelectChoice(AUTOMATIC, "the synchronous standby, else the least lagging one")] + \
        [SelectChoice(m.name, f"{m.name} ({m.state})") for m in standbys]
    fo = failover_form or forms.FailoverForm(prefix="fo", formdata=None)
    fo.candidate.choices = [SelectChoice(m.name, f"{m.name} ({m.state})") for m in standbys]
    members = [{"name": m.name, "state": m.state, "primary": m.name == primary, "lost_since": lost.get(m.name),
                "form": forms.RebuildForm(prefix=forms.RebuildForm.prefix_for(m.name), formdata=None)}
               for m in v["members"]]
    return {"changes": changes, "switchover_form": sw, "failover_form": fo, "members": members,
            "rebuild_errors": rebuild_form.form_errors if rebuild_form is not None else [],
            "rebuild_after": float(services().config["REBUILD_AFTER_SECONDS"])}


def _backups_view(s, inst, start_form=None, policy_form=None, restore_form=None) -> dict | None:
    """The Backups section: the list, the recoverable window, the archiver, Back up now and the policy form; None
    for an instance without backups."""
    st = bsvc.stanza_of(s, inst)
    if st is None:
        return None
    view = bsvc.describe(s, st)
    return {**view, "start_form": start_form or forms.BackupStartForm(prefix="bk", formdata=None),
            "policy_form": policy_form or forms.BackupPolicyForm(prefix="bp", formdata=None, **view["policy"]),
            "restore_form": restore_form or forms.RestoreForm(prefix="rs", formdata=None)}


def render(name: str, status: int = 200, delete_form=None, switchover_form=None, failover_form=None,
           rebuild_form=None, **form_overrides):
    """The page and its status; a form given (e.g. settings_form=) takes the place of the empty one."""
    svc = services()
    with svc.store.session() as s:
        inst = instance_or_404(s, name)
        st, age = livestate.read(s, [inst], float(svc.config["PROBE_TIMEOUT"]),
                                 live=request.args.get("live") == "1").get(name, (None, None))
        view = instance_view(inst, st, age, jobsvc.active_job(s, name))
        dbs = dbsvc.visible(s, actor(), name)
        db_rows = [{"name": d.name, "owner": d.owner.username, "quota_mb": d.quota_mb, "status": d.status}
                   for d in dbs]
        jobs = jobsvc.list_jobs(s, name, limit=20)
        settings_text = "\n".join(f"{k} = {v}" for k, v in sorted(managed_settings(inst).items()))
        edit = {
            "settings_form": forms.InstanceSettingsForm(prefix="set", formdata=None, settings=settings_text),
            "sizes_form": forms.InstanceSizesForm(prefix="size", formdata=None, cpus=inst.cpus,
                                                  memory_mb=inst.memory_mb, storage_gb=inst.storage_gb),
            "restart_form": forms.EmptyForm(prefix="restart", formdata=None),
            "access_form": forms.InstanceAccessForm(
                prefix="acc", formdata=None, open_to_all=not inst.access_restricted,
                users=", ".join(access.allowed_usernames(inst) or [])),
            **form_overrides}
        failover = _failover_view(s, inst, view, switchover_form, failover_form, rebuild_form)
        backups = _backups_view(s, inst, edit.pop("backup_form", None), edit.pop("backup_policy_form", None),
                                edit.pop("restore_form", None))
        page = render_template("ui/instance.html", v=view, meta=inst.meta or {}, databases=db_rows, jobs=jobs,
                               delete_form=delete_form or forms.ConfirmDeleteForm(prefix="del", formdata=None),
                               settings=_settings_view(inst, svc), failover=failover, backups=backups,
                               **edit)
    return page, status
