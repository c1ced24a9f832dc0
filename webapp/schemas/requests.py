"""The JSON bodies the API accepts, one model each. MESSAGES: a field's own sentence when its value is refused
(else validation.message's general one); MISSING: the sentence for a missing required field."""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, WithJsonSchema

from webapp.schemas import limits as L


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    MESSAGES: ClassVar[dict[str, str]] = {}
    MISSING: ClassVar[str] = ""


def _rule(problem, nullable: bool = False):
    def check(value, info: ValidationInfo):
        if value is None and nullable:
            return value
        if msg := problem(value, info.field_name):
            raise ValueError(msg)
        return value
    return check


Text = Annotated[Any, WithJsonSchema({"type": "string"})]  # a string the service checks itself
InstanceName = Annotated[Any, AfterValidator(_rule(L.instance_name_problem)), WithJsonSchema(
    {"type": "string", "pattern": L.INSTANCE_NAME_PATTERN, "minLength": L.INSTANCE_NAME_MIN,
     "maxLength": L.INSTANCE_NAME_MAX})]
DbName = Annotated[Any, AfterValidator(_rule(L.db_name_problem)), WithJsonSchema(
    {"type": "string", "pattern": L.DB_NAME_PATTERN, "minLength": 1, "maxLength": L.DB_NAME_MAX})]
OptionalDbName = Annotated[Any, AfterValidator(_rule(L.db_name_problem, nullable=True)), WithJsonSchema(
    {"type": "string", "pattern": L.DB_NAME_PATTERN, "minLength": 1, "maxLength": L.DB_NAME_MAX})]
Cpus = Annotated[float | None, Field(ge=L.CPUS_MIN, le=L.CPUS_MAX, description="per member; null: no limit")]
MemoryMb = Annotated[int | None, Field(ge=L.MEMORY_MB_MIN, le=L.MEMORY_MB_MAX, description="per member; null: "
                                                                                            "no limit")]
StorageGb = Annotated[int | None, Field(ge=L.STORAGE_GB_MIN, le=L.STORAGE_GB_MAX,
                                        description="per member's data volume; null: no limit")]
ADMIN_PASSWORD = (f"admin_password must be a string of {L.ADMIN_PASSWORD_MIN} to {L.ADMIN_PASSWORD_MAX} "
                  "characters")


class InstanceCreate(Body):
    MESSAGES = {"admin_password": ADMIN_PASSWORD}
    name: InstanceName
    admin_database: OptionalDbName = Field(L.ADMIN_DATABASE_DEFAULT, description=(
        "database created for and owned by the admin role; the URIs point at it"))
    synchronous: bool = L.SYNCHRONOUS_DEFAULT
    replicas: int | None = Field(None, ge=L.REPLICAS_MIN, le=L.REPLICAS_MAX,
                                 json_schema_extra={"default": L.REPLICAS_DEFAULT}, description="standbys")
    storage_gb: StorageGb = None
    memory_mb: MemoryMb = None
    cpus: Cpus = None
    admin_password: str | None = Field(None, min_length=L.ADMIN_PASSWORD_MIN, max_length=L.ADMIN_PASSWORD_MAX,
                                       description="no quotes, backslashes, backticks, '$', spaces or control "
                                                   "characters; null: generated, in the answer once")


class InstanceChange(Body):
    MESSAGES = {"settings": "settings must be a non-empty object of setting names and values"}
    settings: dict[str, Any] | None = Field(None, description="setting name -> value; null resets it",
                                            json_schema_extra={"additionalProperties": {
                                                "type": ["string", "number", "boolean", "null"]}})
    cpus: Cpus = None
    memory_mb: MemoryMb = None
    storage_gb: StorageGb = Field(None, description="can only grow")


class InstanceAccessChange(Body):
    MESSAGES = {"users": "users must be a list of usernames, or null to open the instance to every user"}
    MISSING = "missing field: users (a list of usernames, or null for every user)"
    users: list[str] | None = Field(description="null: every user sees the instance; a list: only these users "
                                                "(and admins); empty: admins only")


class CertificateRenewal(Body):
    # a non-boolean is a 400 (the view's check, as before)
    rotate_ca: Annotated[Any, WithJsonSchema({"type": "boolean", "default": False})] = False


class Empty(Body):
    """No body, or {}."""


# which names are members is the service's check (its answer names them)
MemberName = Annotated[Any, WithJsonSchema({"type": "string", "description": "a member's name"})]


class Switchover(Body):
    candidate: Annotated[Any, WithJsonSchema({"type": ["string", "null"],
                                              "description": "a member's name; null: the best standby"})] = None


class Failover(Body):
    candidate: MemberName


class Rebuild(Body):
    member: MemberName


class TokenCreate(Body):
    MESSAGES = {"scope": f"scope must be one of {', '.join(L.TOKEN_SCOPES)}",
                "expires_in_days": f"expires_in_days must be a whole number of days from {L.TOKEN_DAYS_MIN} to "
                                   f"{L.TOKEN_DAYS_MAX}"}
    username: Text  # checked with the password (401 or 422: services.accounts.authenticate)
    password: Text
    name: str | None = None
    scope: Literal[L.TOKEN_SCOPES] = "write"  # type: ignore[valid-type]
    # the maximum is TOKEN_DAYS when that is more (the service checks it)
    expires_in_days: int | None = Field(None, ge=L.TOKEN_DAYS_MIN, json_schema_extra={"maximum": L.TOKEN_DAYS_MAX},
                                        description="default: TOKEN_DAYS (30)")


class UserCreate(Body):
    MESSAGES = {"username": "username must be 2 to 63 characters: a lowercase letter, then lowercase letters, "
                            "digits, '_', '.' or '-'",
                "password": f"password must be at least {L.USER_PASSWORD_MIN} characters"}
    username: str = Field(pattern=L.USERNAME_PATTERN)
    password: str = Field(min_length=L.USER_PASSWORD_MIN)
    is_admin: bool = False


class AllowanceChange(Body):
    MESSAGES = {f: f"{f} must be a whole number from 0 to {hi}, or null for the configured default"
                for f, hi in (("storage_allowance_mb", L.STORAGE_ALLOWANCE_MB_MAX),
                              ("max_databases", L.MAX_DATABASES_MAX))}
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})
    storage_allowance_mb: int | None = Field(None, ge=0, le=L.STORAGE_ALLOWANCE_MB_MAX)
    max_databases: int | None = Field(None, ge=0, le=L.MAX_DATABASES_MAX)


class PasswordChange(Body):
    """Checked after the current password (services.accounts)."""
    current_password: Text
    new_password: Annotated[Any, WithJsonSchema({"type": "string", "minLength": L.USER_PASSWORD_MIN})]


def _between(field: str, lo: int, hi: int) -> str:
    return f"{field} must be an integer from {lo} to {hi}"


QuotaMb = Annotated[int | None, Field(ge=L.QUOTA_MB_MIN, le=L.QUOTA_MB_MAX)]
ConnectionLimit = Annotated[int | None, Field(ge=L.CONNECTION_LIMIT_MIN, le=L.CONNECTION_LIMIT_MAX)]
DATABASE_MESSAGES = {"quota_mb": _between("quota_mb", L.QUOTA_MB_MIN, L.QUOTA_MB_MAX),
                     "connection_limit": _between("connection_limit", L.CONNECTION_LIMIT_MIN,
                                                  L.CONNECTION_LIMIT_MAX)}


class DatabaseCreate(Body):
    MESSAGES = {**DATABASE_MESSAGES, "parameters": "parameters must be an object of setting: value"}
    name: DbName
    quota_mb: QuotaMb = Field(None, description="within what your storage allowance has left (422 says how "
                                 "much); without it, under an allowance: allowance / max_databases, or what is left "
                                 "if less")
    connection_limit: ConnectionLimit = None
    parameters: dict[str, Any] | None = Field(None, description="per-database settings (planner, memory, timeout "
                                              "and client settings such as work_mem, statement_timeout, "
                                              "search_path; never ones that would undo the quota, e.g. "
                                              "default_transaction_read_only), set before the answer; one refused "
                                              "value undoes the create (422)")


class DatabaseChange(Body):
    MESSAGES = {**DATABASE_MESSAGES, "parameters": "parameters must be an object of setting: value (null resets a "
                                                   "setting)"}
    quota_mb: QuotaMb = None
    connection_limit: ConnectionLimit = None
    parameters: dict[str, Any] | None = Field(None, description="null resets a setting")


class DatabasePassword(Body):
    MESSAGES = {"password": f"password must be a string of {L.DB_PASSWORD_MIN} to {L.DB_PASSWORD_MAX} characters"}
    password: str | None = Field(None, min_length=L.DB_PASSWORD_MIN, max_length=L.DB_PASSWORD_MAX,
                                 description="generated when none is given")


class HostCreate(Body):
    """services.hosts checks the rules that need the file system or parse keys."""
    MESSAGES = {"name": "name must be 1 to 63 characters of a-z, 0-9, '.', '-' (starting and ending with a letter "
                        "or digit), and not localhost",
                "address": "address must be an IP address or a DNS name",
                "ssh_user": "ssh_user must be a user name (a-z, 0-9, '_', '-', starting with a letter or '_')",
                "ssh_port": f"ssh_port must be an integer between {L.SSH_PORT_MIN} and {L.SSH_PORT_MAX}",
                "key_path": "key_path must be an absolute path",
                "private_key": "private_key must be a PEM/OpenSSH private key (-----BEGIN ... PRIVATE KEY-----)",
                "labels": "labels must be an object of up to 32 string values (keys: letters, digits, ._/-)",
                "capacity": f"capacity (members the host may run) must be an integer between {L.HOST_CAPACITY_MIN} "
                            f"and {L.HOST_CAPACITY_MAX}"}
    name: str = Field(pattern=L.HOST_NAME_PATTERN)
    address: str = Field(description="IP address or DNS name")
    ssh_user: str
    ssh_port: int = Field(L.SSH_PORT_DEFAULT, ge=L.SSH_PORT_MIN, le=L.SSH_PORT_MAX)
    key_path: str | None = None
    private_key: str | None = Field(None, json_schema_extra={"writeOnly": True})
    labels: dict[str, str] = Field(default_factory=dict)
    capacity: int = Field(L.HOST_CAPACITY_DEFAULT, ge=L.HOST_CAPACITY_MIN, le=L.HOST_CAPACITY_MAX)
    host_key: Any = Field(None, description="e.g. 'ssh-ed25519 AAAA...', one key a line")


class HostKey(Body):
    MISSING = "missing field: host_key (OpenSSH public key line(s), or null to pin on next contact)"
    host_key: Any | None = Field(json_schema_extra={"type": ["string", "null"]})


class InstanceAdopt(Body):
    MESSAGES = {"inventory": "inventory must be an Ansible inventory in its YAML shape, as an object",
                "vars": "vars must be an object of the playbooks' variables (pgaas_instance_name, pgaas_members, ...)",
                "secrets": "secrets must be an object: the content of the pgaas-NAME.secrets.yml file"}
    name: InstanceName
    inventory: dict[str, Any] = Field(description="the operator's inventory (Ansible's YAML shape: {all: {hosts: "
                                                  "{NAME: {...}}, vars: {...}}}) as an object")
    vars: dict[str, Any] = Field(description="the vars file: pgaas_instance_name, pgaas_members, pgaas_etcd_members, "
                                             "pgaas_synchronous, pgaas_cpus, pgaas_memory_mb, pgaas_storage_gb, "
                                             "pgaas_image, pgaas_admin_user, pgaas_admin_database")
    secrets: dict[str, Any] | None = Field(None, description="the secrets file (pgaas-NAME.secrets.yml): the four "
                                                              "passwords, pgaas_tls_ca_cert, pgaas_tls_ca_key, "
                                                              "pgaas_tls_certs; required")
