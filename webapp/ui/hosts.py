"""The admin's host view on the website: the ssh provider's machines with the instances on each and the free
capacity and pinned SSH host key fingerprints; register a host (key path or a private key stored encrypted, never
shown again; optionally its public host key, pinned) and remove one."""
from __future__ import annotations

from flask import flash, redirect, render_template, url_for

from webapp.extensions import services
from webapp.schemas import limits as L
from webapp.services import Conflict, Invalid, NotFound
from webapp.services import hosts as hostsvc
from webapp.ui import bp, forms
from webapp.ui.common import actor, admin_required, record_failure, refuse


@bp.route("/hosts", methods=["GET", "POST"])
@admin_required(operation=("host.create", "host", "name"))
def hosts():
    svc = services()
    form = forms.HostForm()
    if form.validate_on_submit():
        labels = form.parsed_labels()
        if labels is None:
            form.labels.errors = [*form.labels.errors, "write key=value, separated by commas"]
        else:
            data = {"name": (form.name.data or "").strip(), "address": (form.address.data or "").strip(),
                    "ssh_user": (form.ssh_user.data or "").strip(), "ssh_port": form.ssh_port.data or 22,
                    "labels": labels, "capacity": form.capacity.data or L.HOST_CAPACITY_DEFAULT}
            if (form.key_path.data or "").strip():
                data["key_path"] = form.key_path.data.strip()
            if (form.host_key.data or "").strip():
                data["host_key"] = form.host_key.data.strip()
            if (form.private_key.data or "").strip():
                data["private_key"] = form.private_key.data.strip() + "\n"
            try:
                with svc.store.session() as s:
                    hostsvc.register(s, svc.box, svc.config, data, actor())
            except (Invalid, Conflict) as exc:
                refuse(form, "host.create", "host", data["name"], exc)
            else:
                flash(f"Host {data['name']} was registered.", "success")
                return redirect(url_for("ui.hosts"))
    form.private_key.data = ""  # a pasted key is never sent back, not even after an error
    with svc.store.session() as s:
        rows = hostsvc.usage(s, svc.config)
    pinned = {r["host"].name: hostsvc.fingerprints(svc.config, r["host"]) for r in rows}
    return render_template("ui/hosts.html", form=form, rows=rows, pinned=pinned, provider=svc.config["PROVIDER"],
                           remove_form=forms.EmptyForm())


@bp.post("/hosts/<name>/delete")
@admin_required(operation=("host.delete", "host", "name"))
def host_delete(name):
    svc = services()
    if not forms.EmptyForm().validate_on_submit():
        flash("The form expired: try again.", "error")
        return redirect(url_for("ui.hosts"))
    try:
        with svc.store.session() as s:
            hostsvc.delete(s, svc.config, name, actor())
    except (NotFound, Conflict) as exc:
        record_failure("host.delete", "host", name, exc)
        flash(exc.message, "error")
    else:
        flash(f"Host {name} was removed.", "success")
    return redirect(url_for("ui.hosts"))
