"""TLS for every hop of an instance: its own certificate authority, and the certificates it issues.

Each instance gets a CA of its own, made by the control plane when the instance is created (or first converged to
TLS). The CA's key never leaves the control plane: it is sealed with the control plane's key (Fernet, like every
other instance secret) in `instances.secrets_enc["tls"]`, beside the certificates it issued:

- one per member (serverAuth + clientAuth): PostgreSQL's server certificate, Patroni's REST API certificate (which
  Patroni also presents as its client certificate to the other members' REST APIs) and the member's client
  certificate towards etcd; its names are the member's container name, its address, localhost and 127.0.0.1;
- one per etcd member (serverAuth + clientAuth: peers authenticate each other with it too);
- one for the control plane itself (clientAuth), which it presents to Patroni's REST API and to etcd.

A CA per instance (rather than one for the whole control plane) is what makes client certificates mean something:
etcd and Patroni accept any certificate their CA signed, so a member of one instance holds nothing that another
instance's etcd or REST API would accept. The CA certificate is public: `meta["tls"]` keeps it (clients download it
to verify the server with sslmode=verify-full), with the expiry of the certificates.

No HTTP and no Flask here; the job handlers (services/handlers) hand the member keys to the playbooks as secrets
(playbook_secrets), never as extra vars.
"""
from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets as pysecrets
import ssl
import tempfile
import threading
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.fernet import InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from webapp.services.crypto import SecretBox
from webapp.store.models import utcnow

CA_DAYS = 3650
CERT_DAYS = 365           # default lifetime of a member, etcd or control-plane certificate (TLS_CERT_DAYS)
RENEW_DAYS = 30           # renewed by the maintenance when fewer days than this are left (TLS_RENEW_DAYS)
CLIENT_CN = "pgaas-control-plane"
_BACKDATE = timedelta(minutes=5)  # clock skew between the control plane and the hosts


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def new_ca(instance: str, days: int = CA_DAYS) -> tuple[str, str]:
    """A self-signed CA for one instance: (certificate PEM, key PEM)."""
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pgaas"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"pgaas {instance} CA")])
    now = utcnow().replace(microsecond=0)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    return _cert_pem(cert), _key_pem(key)


def _san(names, ip_as_dns: bool = False) -> x509.SubjectAlternativeName:
    out, seen = [], set()
    for n in names:
        if not n or n in seen:
            continue
        seen.add(n)
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
        else:
            if ip_as_dns:
                out.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(out)


def issue(ca_cert_pem: str, ca_key_pem: str, cn: str, names: list[str], days: int = CERT_DAYS,
          server: bool = True, ip_as_dns: bool = False) -> tuple[str, str]:
    """A certificate signed by the CA: (certificate PEM, key PEM). server: serverAuth + clientAuth with the
    names as subject alternative names; else clientAuth only. ip_as_dns: an IP address is named as a DNS name too
    (pgBackRest 2.45 matches a host against the CN and the DNS names only)."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    key = _key()
    now = utcnow().replace(microsecond=0)
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if server \
        else [ExtendedKeyUsageOID.CLIENT_AUTH]
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pgaas"),
                                  x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
         .issuer_name(ca_cert.subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - _BACKDATE)
         .not_valid_after(min(now + timedelta(days=days), ca_cert.not_valid_after_utc))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                      crl_sign=False, content_commitment=False, data_encipherment=False,
                                      key_agreement=True, encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
    if server:
        b = b.add_extension(_san(names, ip_as_dns), critical=False)
    return _cert_pem(b.sign(ca_key, hashes.SHA256())), _key_pem(key)


def not_after(cert_pem: str) -> datetime:
    return x509.load_pem_x509_certificate(cert_pem.encode()).not_valid_after_utc


# -- an instance's certificates -------------------------------------------------------------------------------
def member_names(inst) -> dict[str, list[str]]:
    """Each certificate the instance needs (members, then etcd members) -> its names."""
    local = ["localhost", "127.0.0.1"]
    out = {m.name: [m.name, m.address, *local] for m in inst.members}
    etcd = (inst.meta or {}).get("etcd_members") or []
    if etcd:
        for e in etcd:
            out[e["name"]] = [e["name"], e.get("address"), *local]
    else:
        out[f"pgaas-{inst.name}-etcd"] = [f"pgaas-{inst.name}-etcd", *local]
    return out


def issue_all(inst, tls: dict | None, days: int = CERT_DAYS, new_ca_too: bool = False) -> dict:
    """The instance's TLS material: its CA (kept unless there is none or new_ca_too) and a fresh certificate for
    every member, etcd member and the control plane."""
    tls = dict(tls or {})
    if new_ca_too or not tls.get("ca_cert"):
        tls["ca_cert"], tls["ca_key"] = new_ca(inst.name)
    certs = {}
    for name, names in member_names(inst).items():
        cert, key = issue(tls["ca_cert"], tls["ca_key"], name, names, days)
        certs[name] = {"cert": cert, "key": key}
    tls["certs"] = certs
    tls["names"] = member_names(inst)
    tls["client"] = dict(zip(("cert", "key"), issue(tls["ca_cert"], tls["ca_key"], CLIENT_CN, [], days,
                                                     server=False)))
    return tls


def summary(tls: dict, active: bool) -> dict:
    """What meta["tls"] shows (no key): the CA certificate, when it and the certificates expire, and whether the
    members serve them yet (active: a deploy or renewal with them succeeded)."""
    ends = [not_after(c["cert"]) for c in tls["certs"].values()] + [not_after(tls["client"]["cert"])]
    return {"ca_cert": tls["ca_cert"],
            "ca_fingerprint_sha256": x509.load_pem_x509_certificate(tls["ca_cert"].encode())
            .fingerprint(hashes.SHA256()).hex(":"),
            "ca_not_after": not_after(tls["ca_cert"]).isoformat(),
            "not_after": min(ends).isoformat(), "issued_at": utcnow().replace(microsecond=0).isoformat(),
            "active": active}


def ensure(inst, box: SecretBox, days: int = CERT_DAYS, renew: bool = False, new_ca_too: bool = False) -> dict:
    """Issue the instance's certificates if it has none (an instance from before TLS), or again when renew;
    seal them into inst.secrets_enc and record the summary in inst.meta["tls"]. Returns the material."""
    secrets = box.open(inst.secrets_enc)
    tls = secrets.get("tls")
    if tls and not renew and not new_ca_too and tls.get("names") == member_names(inst):
        return tls  # every container has a certificate for the names it has now
    tls = issue_all(inst, tls, days, new_ca_too)
    secrets["tls"] = tls
    inst.secrets_enc = box.seal(secrets)
    export_ca(box, inst.name, tls["ca_cert"])
    current = (inst.meta or {}).get("tls")
    if current and current.get("active"):
        # what the members serve stays shown until the renewal succeeded (activate)
        inst.meta = {**inst.meta, "tls": {**current, "next": summary(tls, active=True)}}
    else:
        inst.meta = {**(inst.meta or {}), "tls": summary(tls, active=False)}
    return tls


def activate(inst) -> None:
    """The members serve the sealed certificates now (their deploy or renewal succeeded)."""
    t = (inst.meta or {}).get("tls")
    if t:
        inst.meta = {**inst.meta, "tls": {**(t.get("next") or t), "active": True}}


def abandon(inst) -> None:
    """A renewal that failed: the members serve what they served (the next check tries again)."""
    t = (inst.meta or {}).get("tls")
    if t and "next" in t:
        inst.meta = {**inst.meta, "tls": {k: v for k, v in t.items() if k != "next"}}


def playbook_secrets(box: SecretBox, inst, days: int = CERT_DAYS) -> dict:
    """The instance's secrets for a play that deploys members: its passwords, the CA certificate and each
    member's and etcd member's own certificate and key. Never the CA's key nor the control plane's client key."""
    secrets = box.open(inst.secrets_enc)
    tls = secrets.pop("tls", None) or ensure(inst, box, days)
    secrets["pgaas_tls_ca_cert"] = tls["ca_cert"]
    secrets["pgaas_tls_certs"] = tls["certs"]
    return secrets


def is_active(inst) -> bool:
    return bool(((inst.meta or {}).get("tls") or {}).get("active"))


def ca_cert(inst) -> str | None:
    return ((inst.meta or {}).get("tls") or {}).get("ca_cert")


def ca_filename(inst) -> str:
    """The name the CA certificate downloads as, and the sslrootcert the printed URIs name (relative: libpq reads
    it from the directory the client runs in; save it there, or give its full path instead)."""
    return f"pgaas-{inst.name}-ca.crt"


def uri_params(inst) -> str:
    return f"sslmode=verify-full&sslrootcert={ca_filename(inst)}"


def instance_for_ca(s, actor, name: str):
    """The instance whose CA certificate `actor` may download: one they may see, or one that holds a database of
    theirs (an instance restricted after their database was made: its URI is still theirs). NotFound otherwise."""
    from sqlalchemy import select

    from webapp.services import NotFound, access
    from webapp.store.models import Database, Instance

    try:
        return access.get_visible(s, actor, name)
    except NotFound:
        inst = s.scalar(select(Instance).join(Database, Database.instance_id == Instance.id).where(
            Instance.name == name, Database.owner_id == actor.user_id).limit(1)) if isinstance(name, str) else None
        if inst is None:
            raise
        return inst


def expiry(inst) -> datetime | None:
    t = (inst.meta or {}).get("tls") or {}
    return datetime.fromisoformat(t["not_after"]) if t.get("not_after") else None


def renewal_due(inst, renew_days: float, now: datetime | None = None) -> bool:
    """No certificates served yet (an instance from before TLS), or fewer than renew_days left."""
    if not is_active(inst):
        return True
    end = expiry(inst)
    return end is None or end - (now or utcnow().replace(microsecond=0)) < timedelta(days=renew_days)


# -- the control plane as a TLS client ------------------------------------------------------------------------
_ca_dir_lock = threading.Lock()


def _ca_dir() -> Path:
    """A private directory (0700, ours) for CA certificates libpq reads from a file (sslrootcert)."""
    d = Path(tempfile.gettempdir()) / f"pgaas-ca-{os.getuid()}"
    with _ca_dir_lock:
        d.mkdir(mode=0o700, exist_ok=True)
    st = d.lstat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077 or not d.is_dir() or d.is_symlink():
        raise RuntimeError(f"{d} is not a private directory of this user")
    return d


def ca_file(inst) -> str | None:
    """Path of a file holding the instance's CA certificate (named by its digest, written once), or None
    for an instance that serves no TLS yet."""
    pem = ca_cert(inst) if is_active(inst) else None
    if not pem:
        return None
    path = _ca_dir() / f"{hashlib.sha256(pem.encode()).hexdigest()}.crt"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent)
        with os.fdopen(fd, "w") as f:
            f.write(pem)
        os.replace(tmp, path)
    return str(path)


def libpq_params(inst) -> dict:
    """sslmode/sslrootcert for the control plane's own connections to the instance's PostgreSQL."""
    path = ca_file(inst)
    return {"sslmode": "verify-full", "sslrootcert": path} if path else {}


class ClientTLS:
    """The control plane's TLS client side towards an instance's Patroni REST API and etcd: an SSLContext that
    trusts only the instance's CA and presents the control plane's client certificate. Contexts are cached per
    instance and certificate (one per app: this object lives in Services). export_dir (TLS_CA_EXPORT_DIR): where
    each instance's CA certificate is also written as pgaas-NAME-ca.crt, the sslrootcert its URIs name."""

    def __init__(self, box: SecretBox, export_dir: str = ""):
        self.box, self.export_dir = box, export_dir
        self._cache: dict[tuple[str, str], ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def context(self, inst, check_hostname: bool = True) -> ssl.SSLContext | None:
        """None for an instance that serves no TLS yet (plain http then)."""
        if not is_active(inst):
            return None
        tls = self.box.open(inst.secrets_enc).get("tls") or {}
        client = tls.get("client")
        if not client:
            return None
        key = (inst.name, hashlib.sha256((client["cert"] + tls["ca_cert"]).encode()).hexdigest(), check_hostname)
        with self._lock:
            ctx = self._cache.get(key)
        if ctx is not None:
            return ctx
        ctx = client_context(tls["ca_cert"], client["cert"], client["key"], check_hostname)
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items() if k[0] != inst.name}
            self._cache[key] = ctx
        return ctx

    def scheme(self, inst) -> str:
        return "https" if self.context(inst) is not None else "http"


# The ClientTLS of each control plane app in this process (create_app registers its box). Reads of Patroni and
# etcd happen deep in services that get only an Instance (the status of a list, the sampler, the leader guard); the
# instance's sealed client key opens with exactly one of these (in production there is one). A departure from
# "no state in module globals", kept to a cache of what create_app hands over.
_registered: dict[int, ClientTLS] = {}
_registered_lock = threading.Lock()


def register(box: SecretBox, export_dir: str = "") -> ClientTLS:
    with _registered_lock:
        client = _registered.setdefault(id(box), ClientTLS(box, export_dir))
        client.export_dir = export_dir
        return client


def export_ca(box: SecretBox, instance: str, pem: str) -> None:
    """Write the CA certificate into the app's TLS_CA_EXPORT_DIR, if it has one (whole, then renamed)."""
    client = _registered.get(id(box))
    if client is None or not client.export_dir:
        return
    d = Path(client.export_dir)
    d.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".pgaas-ca-")
    with os.fdopen(fd, "w") as f:
        f.write(pem)
    os.chmod(tmp, 0o644)
    os.replace(tmp, d / f"pgaas-{instance}-ca.crt")


def context_for(inst, check_hostname: bool = True) -> ssl.SSLContext | None:
    """The client context for inst from whichever registered box opens its secrets; None without TLS."""
    if not is_active(inst):
        return None
    for client in list(_registered.values()):
        try:
            return client.context(inst, check_hostname)
        except InvalidToken:
            continue
    return None


def client_context(ca_pem: str, cert_pem: str, key_pem: str, check_hostname: bool = True) -> ssl.SSLContext:
    """An SSLContext trusting ca_pem only, presenting cert_pem. The key reaches the ssl module through a
    private temporary file, encrypted with a one-time password, removed at once."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem)
    ctx.check_hostname = check_hostname
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    password = pysecrets.token_bytes(32)
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    enc = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(password))
    with tempfile.TemporaryDirectory(prefix="pgaas-tls-") as d:
        cert_path, key_path = Path(d) / "c.pem", Path(d) / "k.pem"
        cert_path.write_text(cert_pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(enc)
        ctx.load_cert_chain(str(cert_path), str(key_path), password=password)
    return ctx


# -- the renewal job ------------------------------------------------------------------------------------------
def renew(s, inst, actor, rotate_ca: bool = False, why: str = ""):
    """Queue the certificates job of an instance (409 when it is busy or not available): renew them on its
    members, or, for an instance from before TLS, converge it onto TLS (every member restarts). Audited as the
    actor's (an audit.Actor); why: the detail's reason (the maintenance's renewal says why it acts)."""
    from webapp.services import Conflict, audit
    from webapp.services import jobs as jobsvc

    if inst.status != "available":
        raise Conflict(f"instance {inst.name!r} is {inst.status}, not available")
    job = jobsvc.enqueue(s, "instance_certificates", inst.name, actor.username, params={"rotate_ca": bool(rotate_ca)})
    audit.record(s, actor, "instance.certificates", "instance", inst.name,
                 detail=f"job {job.id}: {why}" if why else f"job {job.id}" + (", new CA" if rotate_ca else ""))
    return job


def renew_due(s, renew_days: float) -> list:
    """The maintenance: queue the certificates job of every available instance whose certificates end within
    renew_days (or that serves no TLS yet), skipping busy ones (tried again at the next check); audited."""
    from sqlalchemy import select

    from webapp.services import ServiceError, audit
    from webapp.store.models import Instance

    queued = []
    for inst in s.scalars(select(Instance).where(Instance.status == "available").order_by(Instance.name)):
        if not renewal_due(inst, renew_days):
            continue
        end = expiry(inst) if is_active(inst) else None
        try:
            queued.append(renew(s, inst, audit.MAINTENANCE_ACTOR, why=(
                f"certificates end {end:%Y-%m-%d}, renewed {renew_days:g} days before" if end else "moved onto TLS")))
        except ServiceError:
            continue
    return queued
