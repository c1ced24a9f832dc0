"""Flask-WTF forms of the website. Domain rules stay in the services: a form checks shape, the service checks
meaning, and the view turns the service's Invalid/Conflict into errors beside the right field."""
from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (BooleanField, DecimalField, IntegerField, PasswordField, RadioField, SelectField, StringField,
                     TextAreaField)
from wtforms.validators import DataRequired, EqualTo, InputRequired, Length, NumberRange, Optional
from wtforms.fields.choices import SelectChoice

from webapp.schemas import limits as L


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired()], render_kw={"autocomplete": "username"})
    password = PasswordField("Password", validators=[DataRequired()],
                             render_kw={"autocomplete": "current-password"})


class EmptyForm(FlaskForm):
    """A button that posts: only the CSRF token (log out, new password)."""


def parse_settings(field, lower: bool = True) -> dict[str, str] | None:
    """{name: value} from `name = value` lines (blank lines and # comments skipped); None, with an error on the
    field, when a line is not of that shape."""
    out = {}
    for n, line in enumerate((field.data or "").splitlines(), 1):
        if not line.strip() or line.strip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip() or not value.strip():
            field.errors = [*field.errors, f"line {n}: write setting = value"]
            return None
        out[key.strip().lower() if lower else key.strip()] = value.strip().strip("'\"")
    return out


PARAMETERS_HINT = "One setting = value per line, e.g. work_mem = 16MB (settings a session may change)."


class DatabaseCreateForm(FlaskForm):
    instance = SelectField("Instance", validators=[InputRequired()], choices=[])
    name = StringField("Database name", validators=[DataRequired(), Length(max=L.DB_NAME_MAX)],
                       description="Lowercase letters, digits and underscores; it is also the login role's name.")
    quota_mb = IntegerField("Quota (MB)", validators=[Optional(), NumberRange(min=L.QUOTA_MB_MIN)],
                            description="Within what your storage allowance has left. Empty: a share of it (or no "
                                        "quota, without an allowance). Over it, the database becomes read-only.")
    connection_limit = IntegerField("Connection limit",
                                    validators=[Optional(), NumberRange(min=L.CONNECTION_LIMIT_MIN)],
                                    description="Empty: no limit.")
    parameters = TextAreaField("Parameters", render_kw={"rows": 3, "spellcheck": "false"},
                               description=PARAMETERS_HINT + " Optional.")

    def parsed_parameters(self) -> dict[str, str] | None:
        return parse_settings(self.parameters)


class DatabaseEditForm(FlaskForm):
    quota_mb = IntegerField("Quota (MB)", validators=[Optional(), NumberRange(min=L.QUOTA_MB_MIN)],
                            description="Within the owner's storage allowance. Empty: no quota (refused under an "
                                        "allowance).")
    connection_limit = IntegerField("Connection limit",
                                    validators=[Optional(), NumberRange(min=L.CONNECTION_LIMIT_MIN)],
                                    description="Empty: no limit.")
    parameters = TextAreaField("Parameters", render_kw={"rows": 4, "spellcheck": "false"},
                               description="One setting = value per line, e.g. work_mem = 16MB. "
                                           "Remove a line to reset that setting.")

    def parsed_parameters(self) -> dict[str, str] | None:
        return parse_settings(self.parameters)


class ConfirmDeleteForm(FlaskForm):
    confirm = StringField("Type the name to confirm", validators=[DataRequired()],
                          render_kw={"autocomplete": "off", "spellcheck": "false"})
    force = BooleanField("Also delete the tenant databases it holds")


class RestoreUploadForm(FlaskForm):
    file = FileField("Archive (pg_dump custom format)", validators=[FileRequired("Choose a .dump file.")],
                     description="A dump downloaded from pgaas, or made with pg_dump --format=custom.")
    clean = BooleanField("Replace the objects the archive holds (drop them first)")


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired()],
                                     render_kw={"autocomplete": "current-password"})
    new_password = PasswordField("New password", validators=[DataRequired(), Length(min=L.USER_PASSWORD_MIN, max=256)],
                                 render_kw={"autocomplete": "new-password"}, description="At least 8 characters.")
    confirm = PasswordField("New password again",
                            validators=[DataRequired(), EqualTo("new_password", message="the passwords differ")],
                            render_kw={"autocomplete": "new-password"})


class TokenCreateForm(FlaskForm):
    name = StringField("Token name", validators=[DataRequired(), Length(max=64)],
                       render_kw={"autocomplete": "off", "spellcheck": "false"},
                       description="What uses it, e.g. ci-deploy or laptop. The token itself is shown once.")
    scope = SelectField("Scope", default="write",
                        choices=[SelectChoice("write", "write: everything you may do"),
                                 SelectChoice("read", "read: look only (e.g. for Prometheus)")],
                        description="A read token is refused on anything that changes something.")
    expires_in_days = IntegerField("Expires in (days)",
                                   validators=[Optional(), NumberRange(L.TOKEN_DAYS_MIN, L.TOKEN_DAYS_MAX)],
                                   render_kw={"placeholder": "default"},
                                   description="1 to 365. Empty: the control plane's default (TOKEN_DAYS).")


class InstanceCreateForm(FlaskForm):
    name = StringField("Instance name", validators=[DataRequired(), Length(max=L.INSTANCE_NAME_MAX)],
                       description="3 to 40 characters: a lowercase letter, then lowercase letters, digits or "
                                   "hyphens.")
    synchronous = BooleanField("Synchronous replication",
                               description="A commit waits until the standby has it: no committed write is lost "
                                           "on failover, at the cost of latency.")
    replicas = IntegerField("Standbys", default=L.REPLICAS_DEFAULT,
                            validators=[Optional(), NumberRange(L.REPLICAS_MIN, L.REPLICAS_MAX)],
                            description="1 to 3 standbys beside the primary.")
    cpus = DecimalField("CPUs", places=None, validators=[Optional(), NumberRange(L.CPUS_MIN, L.CPUS_MAX)],
                        render_kw={"step": "0.1", "inputmode": "decimal"},
                        description="Per member, e.g. 0.5 or 2. Empty: no limit.")
    memory_mb = IntegerField("Memory (MB)",
                             validators=[Optional(), NumberRange(L.MEMORY_MB_MIN, L.MEMORY_MB_MAX)],
                             description="Per member. Empty: no limit.")
    storage_gb = IntegerField("Storage (GB)",
                              validators=[Optional(), NumberRange(L.STORAGE_GB_MIN, L.STORAGE_GB_MAX)],
                              description="Per member's data volume. Empty: no limit.")
    admin_database = StringField("Administrator's database", default=L.ADMIN_DATABASE_DEFAULT,
                                 validators=[Optional(), Length(max=L.DB_NAME_MAX)],
                                 description="Created with the instance and owned by its administrator role; the "
                                             "URIs point at it. A lowercase letter, then lowercase letters, digits "
                                             "or underscores.")
    admin_password = PasswordField("Administrator password",
                                   validators=[Optional(), Length(L.ADMIN_PASSWORD_MIN, L.ADMIN_PASSWORD_MAX)],
                                   render_kw={"autocomplete": "new-password"},
                                   description="For the instance's administrator role. Empty: a password is "
                                               "generated and shown once.")


class InstanceAccessForm(FlaskForm):
    open_to_all = BooleanField("Every user may see it",
                               description="Users who are not administrators see its name, status and version, and "
                                           "may create databases on it.")
    users = StringField("Else only these users", render_kw={"autocomplete": "off", "spellcheck": "false"},
                        description="Usernames separated by commas or spaces; empty: administrators only. Databases "
                                    "already on it stay with their owners.")

    def usernames(self) -> list[str]:
        return [u for u in (self.users.data or "").replace(",", " ").split() if u]


class InstanceSettingsForm(FlaskForm):
    settings = TextAreaField("PostgreSQL settings", render_kw={"rows": 6, "spellcheck": "false"},
                             description="One setting = value per line, e.g. work_mem = 16MB. Remove a line to "
                                         "reset that setting. Each value is checked against the instance first.")

    def parsed(self) -> dict[str, str] | None:
        return parse_settings(self.settings)


class InstanceSizesForm(FlaskForm):
    cpus = DecimalField("CPUs", places=None, validators=[Optional(), NumberRange(L.CPUS_MIN, L.CPUS_MAX)],
                        render_kw={"step": "0.1", "inputmode": "decimal", "placeholder": "no limit"},
                        description="Per member.")
    memory_mb = IntegerField("Memory (MB)",
                             validators=[Optional(), NumberRange(L.MEMORY_MB_MIN, L.MEMORY_MB_MAX)],
                             render_kw={"placeholder": "no limit"}, description="Per member.")
    storage_gb = IntegerField("Storage (GB)",
                              validators=[Optional(), NumberRange(L.STORAGE_GB_MIN, L.STORAGE_GB_MAX)],
                              render_kw={"placeholder": "no limit"}, description="Can only grow.")


class UserCreateForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=63)],
                           render_kw={"autocomplete": "off"})
    password = PasswordField("Password", validators=[Optional(), Length(min=L.USER_PASSWORD_MIN, max=256)],
                             render_kw={"autocomplete": "new-password"},
                             description="Empty: a password is generated and shown once.")
    is_admin = BooleanField("Administrator")


class AllowanceForm(FlaskForm):
    storage_allowance_mb = IntegerField("Storage allowance (MB)",
                                        validators=[Optional(), NumberRange(min=0, max=L.STORAGE_ALLOWANCE_MB_MAX)],
                                        render_kw={"placeholder": "default", "inputmode": "numeric"},
                                        description="Total quota over their databases, 0 to 1073741824. Empty: the "
                                                    "configured default (administrators: no limit).")
    max_databases = IntegerField("Maximum databases",
                                 validators=[Optional(), NumberRange(min=0, max=L.MAX_DATABASES_MAX)],
                                 render_kw={"placeholder": "default", "inputmode": "numeric"},
                                 description="0 to 100000. Empty: the configured default (administrators: no "
                                             "limit).")


class UserDeleteForm(FlaskForm):
    databases = RadioField("Their databases", choices=[SelectChoice("transfer", "Transfer them to another user"),
                                                       SelectChoice("delete", "Delete them (no final dump is kept)")],
                           validators=[Optional()])
    transfer_to = SelectField("New owner", choices=[], validators=[Optional()])
    confirm = StringField("Type the username to confirm", validators=[DataRequired()],
                          render_kw={"autocomplete": "off", "spellcheck": "false"})


class SwitchoverForm(FlaskForm):
    candidate = SelectField("New primary", choices=[], validate_choice=False,
                            description="In synchronous mode Patroni accepts only the synchronous standby.")


class FailoverForm(FlaskForm):
    candidate = SelectField("Standby to promote", choices=[], validate_choice=False)


class RebuildForm(FlaskForm):
    """A button per standby: only the CSRF token; the member is in the URL."""

    @staticmethod
    def prefix_for(member: str) -> str:
        return f"rb-{member}"


class HostForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired()], description="a-z, 0-9, '.', '-'")
    address = StringField("Address", validators=[DataRequired()], description="IP address or DNS name")
    ssh_user = StringField("SSH user", validators=[DataRequired()], default="root",
                           description="root, or a user with passwordless sudo")
    ssh_port = IntegerField("SSH port", default=22, validators=[Optional(), NumberRange(L.SSH_PORT_MIN, L.SSH_PORT_MAX)])
    key_path = StringField("Key file on the control plane", validators=[Optional()],
                           description="An absolute path the control plane reads; or paste a key below")
    private_key = TextAreaField("Private key (stored encrypted, never shown again)", validators=[Optional()],
                                render_kw={"rows": 4, "spellcheck": "false", "autocomplete": "off"})
    host_key = TextAreaField("Host public key (optional)", validators=[Optional()],
                             description="e.g. the output of ssh-keyscan or /etc/ssh/ssh_host_ed25519_key.pub; "
                                         "empty: the key the host presents on first contact is pinned",
                             render_kw={"rows": 2, "spellcheck": "false", "autocomplete": "off"})
    labels = StringField("Labels", validators=[Optional()], description="key=value, separated by commas")
    capacity = IntegerField("Capacity (members)", default=L.HOST_CAPACITY_DEFAULT,
                            validators=[Optional(), NumberRange(L.HOST_CAPACITY_MIN, L.HOST_CAPACITY_MAX)])

    def parsed_labels(self) -> dict | None:
        """{key: value} from `key=value, ...`; None when a part is not of that shape."""
        out = {}
        for part in (self.labels.data or "").split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                return None
            out[key.strip()] = value.strip()
        return out


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search form changes nothing

    actor = StringField("Actor", validators=[Optional()])
    object = StringField("Object", validators=[Optional()])


class BackupStartForm(FlaskForm):
    """Back up now (the instance page's Backups section)."""
    type = SelectField("Type", choices=[SelectChoice("full", "full"), SelectChoice("diff", "differential"),
                                        SelectChoice("incr", "incremental")], default="full")


class RestoreForm(FlaskForm):
    """Restore in place (the instance page's Backups section); the service checks the time and the window."""
    target_time = StringField("Restore to (ISO 8601 with an offset)", validators=[Optional(), Length(max=64)],
                              description="e.g. 2026-12-02T06:30:00Z; empty: the end of the archive (now)")
    confirm = StringField("Type the instance's name to confirm", validators=[DataRequired(), Length(max=64)],
                          description="everything committed after that time is lost")


class BackupPolicyForm(FlaskForm):
    """The schedule and retention of an instance's backups; the service checks the ranges."""
    full_every_days = IntegerField("A full backup every (days)", validators=[InputRequired()])
    diff_every_days = IntegerField("A differential backup every (days)", validators=[InputRequired()],
                                   description="0: none; less than the full's")
    retention_type = SelectField("Keep", choices=[SelectChoice("count", "a number of full backups"),
                                                  SelectChoice("time", "a number of days")])
    retention_full = IntegerField("How many (fulls or days)", validators=[InputRequired()])
