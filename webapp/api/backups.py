"""Backups of an instance (admins; a token of scope read reads): the list and the recoverable window, a backup now,
a restore in place, the schedule and retention. The work is services/backups.py's."""
from flask import url_for

from webapp.api import actor, auth_required, bp, json_body
from webapp.api import serializers as ser
from webapp.extensions import services
from webapp.schemas import backups as bk
from webapp.services import backups as bsvc


@bp.get("/instances/<name>/backups")
@auth_required(admin=True)
def list_backups(name):
    with services().store.session() as s:
        return bsvc.list_backups(s, name)


@bp.post("/instances/<name>/backups")
@auth_required(admin=True, operation=("instance.backup", "instance", "name"))
def start_backup(name):
    data = json_body(bk.BackupStart, audit=("instance.backup", "instance", name))
    with services().store.session() as s:
        job = bsvc.start_backup(s, actor(), name, data.get("type"))
        return {"job": ser.job_ref(job)}, 202, {"Location": url_for("api.get_job", job_id=job.id)}


@bp.post("/instances/<name>/restore")
@auth_required(admin=True, operation=("instance.restore", "instance", "name"))
def restore_in_place(name):
    data = json_body(bk.RestoreInPlace, audit=("instance.restore", "instance", name))
    with services().store.session() as s:
        job, out = bsvc.start_restore(s, actor(), name, data.get("target_time"), data.get("confirm"))
        return {"job": ser.job_ref(job), **out}, 202, {"Location": url_for("api.get_job", job_id=job.id)}


@bp.get("/instances/<name>/backup_policy")
@auth_required(admin=True)
def get_backup_policy(name):
    with services().store.session() as s:
        _, st = bsvc.live_stanza(s, name)
        return {"instance": name, "policy": bsvc.policy(st)}


@bp.put("/instances/<name>/backup_policy")
@auth_required(admin=True, operation=("instance.backup_policy", "instance", "name"))
def put_backup_policy(name):
    data = json_body(bk.BackupPolicyChange, audit=("instance.backup_policy", "instance", name))
    with services().store.session() as s:
        return {"instance": name, "policy": bsvc.update_policy(s, actor(), name, data)}
