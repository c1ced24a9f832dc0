"""The admin's host view on the website: the ssh provider's machines with the instances on each and the free
capacity and pinned SSH host key fingerprints; register a host (key path or a private key stored encrypted, never
shown again; optionally its public host key, pinned) and remove one.
The form lives here, beside its only view, in a module of its own (the brief asked for a new module)."""
from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from wtforms import IntegerField, PasswordField, StringField, TextAreaField
from wtforms.validators import DataRequired, NumberRange, Optional

from webapp.extensions import services
from webapp.services import Conflict, Invalid, NotFound, audit
from webapp.services import hosts as hostsvc
from webapp.ui import bp
from webapp.ui.auth import actor
from webapp.ui.forms import EmptyForm
from webapp.ui.views import admin_required, form_error, record_failure


class HostForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired()], description="a-z, 0-9, '.', '-'")
    address = StringField("Address", validators=[DataRequired()], description="IP address or DNS name")
    ssh_user = StringField("SSH user", validators=[DataRequired()], default="root",
                           description="root, or a user with passwordless sudo")
    ssh_port = IntegerField("SSH port", default=22, validators=[Optional(), NumberRange(1, 65535)])
    key_path = StringField("Key file on the control plane", validators=[Optional()],
                           description="An absolute path the control plane reads; or paste a key below")
    private_key = TextAreaField("Private key (stored encrypted, never shown again)", validators=[Optional()],
                                render_kw={"rows": 4, "spellcheck": "false", "autocomplete": "off"})
    host_key = TextAreaField("Host public key (optional)", validators=[Optional()],
                             description="e.g. the output of ssh-keyscan or /etc/ssh/ssh_host_ed25519_key.pub; "
                                         "empty: the key the host presents on first contact is pinned",
                             render_kw={"rows": 2, "spellcheck": "false", "autocomplete": "off"})
    labels = StringField("Labels", validators=[Optional()], description="key=value, separated by commas")
    capacity = IntegerField("Capacity (members)", default=hostsvc.DEFAULT_CAPACITY,
                            validators=[Optional(), NumberRange(1, 256)])


def _labels(text: str | None) -> dict | None:
    out = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            return None
        out[key.strip()] = value.strip()
    return out


@bp.route("/hosts", methods=["GET", "POST"])
@admin_required
def hosts():
    svc = services()
    form = HostForm()
    if form.validate_on_submit():
        labels = _labels(form.labels.data)
        if labels is None:
            form.labels.errors = [*form.labels.errors, "write key=value, separated by commas"]
        else:
            data = {"name": (form.name.data or "").strip(), "address": (form.address.data or "").strip(),
                    "ssh_user": (form.ssh_user.data or "").strip(), "ssh_port": form.ssh_port.data or 22,
                    "labels": labels, "capacity": form.capacity.data or hostsvc.DEFAULT_CAPACITY}
            if (form.key_path.data or "").strip():
                data["key_path"] = form.key_path.data.strip()
            if (form.host_key.data or "").strip():
                data["host_key"] = form.host_key.data.strip()
            if (form.private_key.data or "").strip():
                data["private_key"] = form.private_key.data.strip() + "\n"
            try:
                with svc.store.session() as s:
                    h = hostsvc.register(s, svc.box, svc.config, data, actor().username)
                    audit.record(s, actor(), "host.create", "host", h.name,
                                 detail=f"{h.ssh_user}@{h.address}:{h.ssh_port}, key {h.key_kind}")
            except (Invalid, Conflict) as exc:
                record_failure("host.create", "host", data["name"], exc)
                form_error(form, exc)
            else:
                flash(f"Host {data['name']} was registered.", "success")
                return redirect(url_for("ui.hosts"))
    form.private_key.data = ""  # a pasted key is never sent back, not even after an error
    with svc.store.session() as s:
        rows = hostsvc.usage(s, svc.config)
    pinned = {r["host"].name: hostsvc.fingerprints(svc.config, r["host"]) for r in rows}
    return render_template("ui/hosts.html", form=form, rows=rows, pinned=pinned, provider=svc.config["PROVIDER"],
                           remove_form=EmptyForm())


@bp.post("/hosts/<name>/delete")
@admin_required
def host_delete(name):
    svc = services()
    if not EmptyForm().validate_on_submit():
        flash("The form expired: try again.", "error")
        return redirect(url_for("ui.hosts"))
    try:
        with svc.store.session() as s:
            hostsvc.delete(s, svc.config, name)
            audit.record(s, actor(), "host.delete", "host", name)
    except (NotFound, Conflict) as exc:
        record_failure("host.delete", "host", name, exc)
        flash(exc.message, "error")
    else:
        flash(f"Host {name} was removed.", "success")
    return redirect(url_for("ui.hosts"))
