"""TEST DOUBLE of an OpenStack cloud (see the package docstring): one HTTP server, one in-memory state.

Endpoints (all under one loopback port; the catalog points at them):
  /identity/v3   Keystone v3        /compute/v2.1   Nova (microversions up to 2.96)
  /network/v2.0  Neutron            /volume/v3/<project>   Cinder (microversions up to 3.71)
  /image/v2      Glance (read-only)
Every response carries the header `X-Test-Double: pgaas OpenStack test double`.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("openstack_double")

BANNER = "pgaas OpenStack test double"
NOVA_MAX, NOVA_MIN = "2.96", "2.1"
CINDER_MAX, CINDER_MIN = "3.71", "3.0"
METADATA_MAX = 255  # Nova: metadata keys and values are at most 255 characters


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _uuid() -> str:
    return str(uuid.uuid4())


def _mv(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


# -- hosts behind servers ----------------------------------------------------------------------------------------
@dataclass
class BootedHost:
    address: str
    handle: object = None


class NullHosts:
    """No machine behind a server: it gets an address from a private range and nothing answers there."""

    def __init__(self, cidr: str = "10.77.0.0/24"):
        self._pool = iter(ipaddress.ip_network(cidr).hosts())
        next(self._pool)  # .1 is the gateway
        self._lock = threading.Lock()

    def boot(self, server_name: str, public_key: str | None) -> BootedHost:
        with self._lock:
            return BootedHost(str(next(self._pool)))

    def destroy(self, handle) -> None:
        pass

    def attach(self, handle, volume_id: str, size_gb: int, device: str) -> None:
        pass

    def detach(self, handle, volume_id: str, device: str) -> None:
        pass

    def resize(self, volume_id: str, size_gb: int) -> None:
        pass

    def delete_volume(self, volume_id: str) -> None:
        pass


# -- state -------------------------------------------------------------------------------------------------------
@dataclass
class User:
    name: str
    password: str
    project: str
    user_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    project_id: str = field(default_factory=lambda: uuid.uuid4().hex)


class CloudDouble:
    """The fake cloud: start() serves it on loopback, stop() shuts it down and destroys every backing host."""

    def __init__(self, hosts=None, compute_hosts: int = 3, users: list[User] | None = None,
                 boot_seconds: float = 0.0):
        self.hosts = hosts or NullHosts()
        self.boot_seconds = boot_seconds
        self.compute_hosts = [f"compute-{i}" for i in range(compute_hosts)]
        self.users = users or [User("pgaas", "double-password-" + secrets.token_hex(8), "pgaas")]
        self.lock = threading.RLock()
        self.tokens: dict[str, tuple[User, float]] = {}
        self.requests: list[tuple[str, str, int]] = []   # (method, path, status) of every request
        self.unhandled: list[tuple[str, str]] = []       # requests no route matched: the double falls short there
        self.flavors: dict[str, dict] = {}
        self.images: dict[str, dict] = {}
        self.networks: dict[str, dict] = {}
        self.subnets: dict[str, dict] = {}
        self.ports: dict[str, dict] = {}
        self.security_groups: dict[str, dict] = {}
        self.rules: dict[str, dict] = {}
        self.floating_ips: dict[str, dict] = {}
        self.keypairs: dict[tuple[str, str], dict] = {}  # (user id, name) -> keypair
        self.server_groups: dict[str, dict] = {}
        self.servers: dict[str, dict] = {}
        self.volumes: dict[str, dict] = {}
        self.seq = 0
        self._backing: dict[str, BootedHost] = {}        # server id -> host behind it
        self._threads: list[threading.Thread] = []
        self._ip_pool = iter(ipaddress.ip_network("172.24.4.0/24").hosts())
        next(self._ip_pool)
        self.httpd: ThreadingHTTPServer | None = None
        self.base = ""
        self._routes = _routes(self)
        self._seed()

    # -- seeding the cloud an operator would have ---------------------------------------------------------
    def _seed(self) -> None:
        for name, vcpus, ram, disk in (("m1.tiny", 1, 512, 1), ("m1.small", 1, 2048, 20),
                                       ("m1.medium", 2, 4096, 40), ("m1.large", 4, 8192, 80)):
            fid = str(len(self.flavors) + 1)
            self.flavors[fid] = {"id": fid, "name": name, "vcpus": vcpus, "ram": ram, "disk": disk,
                                 "OS-FLV-EXT-DATA:ephemeral": 0, "swap": "", "rxtx_factor": 1.0,
                                 "os-flavor-access:is_public": True, "OS-FLV-DISABLED:disabled": False,
                                 "description": None, "extra_specs": {}}
        iid = _uuid()
        self.images[iid] = {"id": iid, "name": "debian-12", "status": "active", "visibility": "public",
                            "disk_format": "qcow2", "container_format": "bare", "min_disk": 0, "min_ram": 0,
                            "size": 352321536, "checksum": hashlib.md5(iid.encode()).hexdigest(),  # noqa: S324
                            "os_distro": "debian", "os_version": "12", "protected": False, "tags": [],
                            "owner": None, "created_at": _now(), "updated_at": _now(), "self": f"/v2/images/{iid}",
                            "file": f"/v2/images/{iid}/file", "schema": "/v2/schemas/image"}
        owner = self.users[0].project_id
        self.add_network("pgaas-net", "10.77.0.0/24", owner)
        self.add_network("public", "172.24.4.0/24", owner, external=True)

    def add_network(self, name: str, cidr: str, project_id: str, external: bool = False) -> dict:
        nid, sid = _uuid(), _uuid()
        net = ipaddress.ip_network(cidr)
        hosts = list(net.hosts())
        self.subnets[sid] = {"id": sid, "name": f"{name}-subnet", "network_id": nid, "cidr": cidr, "ip_version": 4,
                             "gateway_ip": str(hosts[0]), "enable_dhcp": True, "dns_nameservers": [],
                             "allocation_pools": [{"start": str(hosts[1]), "end": str(hosts[-1])}],
                             "host_routes": [], "tenant_id": project_id, "project_id": project_id, "tags": [],
                             "description": "", "ipv6_address_mode": None, "ipv6_ra_mode": None,
                             "subnetpool_id": None, "created_at": _now(), "updated_at": _now(),
                             "revision_number": 0, "service_types": []}
        self.networks[nid] = {"id": nid, "name": name, "status": "ACTIVE", "subnets": [sid],
                              "admin_state_up": True, "shared": external, "router:external": external,
                              "tenant_id": project_id, "project_id": project_id, "mtu": 1450,
                              "port_security_enabled": True, "tags": [], "description": "",
                              "availability_zones": ["nova"], "availability_zone_hints": [],
                              "ipv4_address_scope": None, "ipv6_address_scope": None, "is_default": external,
                              "created_at": _now(), "updated_at": _now(), "revision_number": 0,
                              "provider:network_type": "flat" if external else "vxlan"}
        return self.networks[nid]

    # -- serving ------------------------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        double = self

        class Handler(_Handler):
            cloud = double

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://{host}:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True, name="openstack-double").start()
        return self.base

    def stop(self) -> None:
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
        for t in list(self._threads):
            t.join(timeout=120)
        with self.lock:
            backing = list(self._backing.items())
            self._backing.clear()
        for _sid, booted in backing:
            try:
                self.hosts.destroy(booted.handle)
            except Exception:  # noqa: BLE001 (best effort at teardown)
                log.exception("could not destroy a backing host")
        if hasattr(self.hosts, "close"):
            self.hosts.close()

    @property
    def auth_url(self) -> str:
        return f"{self.base}/identity/v3"

    def clouds_yaml(self, cloud: str = "pgaas-double", user: User | None = None, password: str | None = None) -> dict:
        """A clouds.yaml mapping for this double (a real cloud's entry has the same shape)."""
        user = user or self.users[0]
        return {"clouds": {cloud: {
            "auth": {"auth_url": self.auth_url, "username": user.name,
                     "password": user.password if password is None else password,
                     "project_name": user.project, "user_domain_name": "Default",
                     "project_domain_name": "Default"},
            "region_name": "RegionOne", "identity_api_version": 3, "interface": "public"}}}

    # -- helpers for the routes ---------------------------------------------------------------------------
    def catalog(self, project_id: str) -> list[dict]:
        def svc(type_, name, url):
            return {"id": uuid.uuid5(uuid.NAMESPACE_URL, type_).hex, "type": type_, "name": name,
                    "endpoints": [{"id": uuid.uuid5(uuid.NAMESPACE_URL, type_ + iface).hex, "interface": iface,
                                   "region": "RegionOne", "region_id": "RegionOne", "url": url}
                                  for iface in ("public", "internal", "admin")]}

        b = self.base
        return [svc("identity", "keystone", f"{b}/identity"),
                svc("compute", "nova", f"{b}/compute/v2.1"),
                svc("network", "neutron", f"{b}/network"),
                svc("block-storage", "cinder", f"{b}/volume/v3/{project_id}"),
                svc("volumev3", "cinderv3", f"{b}/volume/v3/{project_id}"),
                svc("image", "glance", f"{b}/image")]

    def next_floating_address(self) -> str:
        used = {f["floating_ip_address"] for f in self.floating_ips.values()}
        for ip in self._ip_pool:
            if str(ip) not in used:
                return str(ip)
        raise ApiError(409, "No more IP addresses available on network public.", "IpAddressGenerationFailure")

    def spawn(self, fn, *args) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True)
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()


# -- HTTP plumbing -----------------------------------------------------------------------------------------------
@dataclass
class Req:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict
    body: object
    user: User | None = None
    token: str = ""
    microversion: tuple[int, int] | None = None

    def q(self, name: str) -> str | None:
        vals = self.query.get(name)
        return vals[0] if vals else None


class _Handler(BaseHTTPRequestHandler):
    cloud: CloudDouble
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet; the double records requests itself
        log.debug("%s " + fmt, self.address_string(), *args)

    def _dispatch(self):
        cloud = self.cloud
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, body, headers = 500, None, {}
        try:
            try:
                data = json.loads(raw) if raw else None
            except ValueError:
                raise ApiError(400, "Malformed request body") from None
            req = Req(self.command, path, parse_qs(parts.query, keep_blank_values=True), self.headers, data)
            for method, pattern, service, fn in cloud._routes:
                m = pattern.fullmatch(path)
                if m is None or method != self.command:
                    continue
                if service is not None:
                    _authenticate(cloud, req, service)
                result = fn(req, **m.groupdict())
                status, body, headers = result if len(result) == 3 else (*result, {})
                break
            else:
                if any(p.fullmatch(path) for _m, p, _s, _f in cloud._routes):
                    raise ApiError(405, f"The method {self.command} is not allowed on {path}")
                cloud.unhandled.append((self.command, self.path))
                raise ApiError(404, f"The resource could not be found ({self.command} {path} is not served by "
                                    f"the {BANNER})")
        except ApiError as e:
            status, headers = e.status, {}
            body = _error_body(path, e)
        except Exception as e:  # a bug in the double: say so loudly
            log.exception("double failed on %s %s", self.command, self.path)
            status, body = 500, {"computeFault": {"code": 500, "message": f"{BANNER} bug: {e}"}}
        cloud.requests.append((self.command, self.path, status))
        out = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("X-Test-Double", BANNER)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.send_header("X-Openstack-Request-Id", "req-" + _uuid())
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch


def _error_body(path: str, e: ApiError) -> dict:
    if path.startswith("/identity"):
        title = {401: "Unauthorized", 404: "Not Found", 400: "Bad Request", 409: "Conflict"}.get(e.status, "Error")
        return {"error": {"code": e.status, "title": title, "message": e.message}}
    if path.startswith("/network"):
        kind = e.kind or {404: "NotFound", 409: "Conflict", 400: "BadRequest", 401: "Unauthorized"}.get(
            e.status, "NeutronError")
        return {"NeutronError": {"type": kind, "message": e.message, "detail": ""}}
    key = e.kind or {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
                     405: "badMethod", 409: "conflictingRequest"}.get(e.status, "computeFault")
    return {key: {"code": e.status, "message": e.message}}


def _authenticate(cloud: CloudDouble, req: Req, service: str) -> None:
    token = req.headers.get("X-Auth-Token") or ""
    with cloud.lock:
        entry = cloud.tokens.get(token)
    if entry is None or entry[1] < time.time():
        raise ApiError(401, "The request you have made requires authentication.")
    req.user, req.token = entry[0], token
    header = req.headers.get("OpenStack-API-Version") or ""
    wanted = {"compute": "compute", "volume": "volume"}.get(service)
    if wanted:
        m = re.search(rf"{wanted}\s+([0-9]+\.[0-9]+|latest)", header) or (
            re.search(r"([0-9]+\.[0-9]+)", req.headers.get("X-OpenStack-Nova-API-Version") or "")
            if service == "compute" else None)
        top, bottom = (NOVA_MAX, NOVA_MIN) if service == "compute" else (CINDER_MAX, CINDER_MIN)
        mv = _mv(top) if m is None or m.group(1) == "latest" else _mv(m.group(1))
        if m is None:
            mv = _mv(bottom)
        if not _mv(bottom) <= mv <= _mv(top):
            raise ApiError(406, f"Version {mv[0]}.{mv[1]} is not supported by the API. Minimum is {bottom} and "
                                f"maximum is {top}.", "computeFault" if service == "compute" else None)
        req.microversion = mv


def _filtered(items, req: Req, skip=("limit", "marker", "fields", "sort_key", "sort_dir", "all_tenants",
                                     "all_projects", "detailed")):
    """Neutron/Cinder-style filtering: every query parameter must equal the attribute (any of repeated values)."""
    out = []
    for item in items:
        ok = True
        for k, vals in req.query.items():
            if k in skip:
                continue
            if k == "tags":
                wanted = {t for v in vals for t in v.split(",")}
                ok = wanted <= set(item.get("tags", []))
            elif k == "tags-any":
                ok = bool({t for v in vals for t in v.split(",")} & set(item.get("tags", [])))
            elif k == "metadata":
                try:
                    want = {kk: str(vv) for v in vals for kk, vv in _loose_dict(v).items()}
                except ValueError:
                    raise ApiError(400, f"Invalid metadata filter {vals!r}") from None
                ok = all(item.get("metadata", {}).get(kk) == vv for kk, vv in want.items())
            elif k in item:
                have = item[k]
                have = str(have).lower() if isinstance(have, bool) else ("" if have is None else str(have))
                ok = any(have == (v.lower() if isinstance(item[k], bool) else v) for v in vals)
            if not ok:
                break
        if ok:
            out.append(item)
    return out


def _loose_dict(text: str) -> dict:
    try:
        return json.loads(text)
    except ValueError:
        import ast

        v = ast.literal_eval(text)
        if not isinstance(v, dict):
            raise ValueError(text) from None
        return v


def _body(req: Req, key: str) -> dict:
    if not isinstance(req.body, dict) or not isinstance(req.body.get(key), dict):
        raise ApiError(400, f"Invalid input: the request body needs an object '{key}'")
    return req.body[key]


def _versions_links(href: str) -> list[dict]:
    return [{"rel": "self", "href": href}]


# -- routes ------------------------------------------------------------------------------------------------------
def _routes(c: CloudDouble):
    routes = []

    def route(method, pattern, service=None):
        def deco(fn):
            routes.append((method, re.compile(pattern), service, fn))
            return fn
        return deco

    # ---------------- Keystone ----------------
    def identity_version():
        return {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                "links": _versions_links(f"{c.base}/identity/v3/"),
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.identity-v3+json"}]}

    @route("GET", r"/identity")
    def identity_root(req):
        return 300, {"versions": {"values": [identity_version()]}}

    @route("GET", r"/identity/v3")
    def identity_v3(req):
        return 200, {"version": identity_version()}

    @route("POST", r"/identity/v3/auth/tokens")
    def issue_token(req):
        auth = _body(req, "auth")
        ident = auth.get("identity") or {}
        if "password" not in (ident.get("methods") or []):
            raise ApiError(401, "The request you have made requires authentication.")
        u = ((ident.get("password") or {}).get("user")) or {}
        user = next((x for x in c.users if (u.get("name") == x.name or u.get("id") == x.user_id)
                     and secrets.compare_digest(str(u.get("password", "")), x.password)), None)
        if user is None:
            raise ApiError(401, "The request you have made requires authentication.")
        scope = (auth.get("scope") or {}).get("project") or {}
        if scope and scope.get("name") not in (None, user.project) and scope.get("id") not in (None, user.project_id):
            raise ApiError(401, f"User {user.user_id} has no access to project {scope.get('name') or scope.get('id')}")
        token = "gAAAAA" + secrets.token_urlsafe(48)
        expires = datetime.now(timezone.utc) + timedelta(hours=1)
        with c.lock:
            c.tokens[token] = (user, time.time() + 3600)
        domain = {"id": "default", "name": "Default"}
        body = {"token": {"methods": ["password"], "audit_ids": [secrets.token_urlsafe(16)],
                          "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
                          "issued_at": _now().replace("Z", ".000000Z"),
                          "user": {"id": user.user_id, "name": user.name, "domain": domain,
                                   "password_expires_at": None},
                          "is_domain": False,
                          "roles": [{"id": uuid.uuid5(uuid.NAMESPACE_DNS, "member").hex, "name": "member"},
                                    {"id": uuid.uuid5(uuid.NAMESPACE_DNS, "reader").hex, "name": "reader"}],
                          "catalog": c.catalog(user.project_id)}}
        if scope:
            body["token"]["project"] = {"id": user.project_id, "name": user.project, "domain": domain}
        return 201, body, {"X-Subject-Token": token}

    @route("GET", r"/identity/v3/auth/tokens", "identity")
    def validate_token(req):
        subject = req.headers.get("X-Subject-Token") or ""
        with c.lock:
            entry = c.tokens.get(subject)
        if entry is None:
            raise ApiError(404, "Could not find token.")
        user = entry[0]
        return 200, {"token": {"methods": ["password"], "user": {"id": user.user_id, "name": user.name},
                               "project": {"id": user.project_id, "name": user.project},
                               "catalog": c.catalog(user.project_id)}}, {"X-Subject-Token": subject}

    @route("GET", r"/identity/v3/auth/catalog", "identity")
    def token_catalog(req):
        return 200, {"catalog": c.catalog(req.user.project_id)}

    # ---------------- Nova ----------------
    def nova_version():
        return {"id": "v2.1", "status": "CURRENT", "version": NOVA_MAX, "min_version": NOVA_MIN,
                "updated": "2013-07-23T11:33:21Z", "links": _versions_links(f"{c.base}/compute/v2.1/")}

    @route("GET", r"/compute")
    def compute_root(req):
        return 200, {"versions": [nova_version()]}

    @route("GET", r"/compute/v2\.1")
    def compute_v21(req):
        return 200, {"version": nova_version()}

    def mvh(req):
        return {"OpenStack-API-Version": "compute %d.%d" % req.microversion,
                "X-OpenStack-Nova-API-Version": "%d.%d" % req.microversion, "Vary": "OpenStack-API-Version"}

    def flavor_view(f, detail=True):
        links = [{"rel": "self", "href": f"{c.base}/compute/v2.1/flavors/{f['id']}"}]
        if not detail:
            return {"id": f["id"], "name": f["name"], "description": f["description"], "links": links}
        return {**{k: v for k, v in f.items() if k != "extra_specs"}, "links": links, "extra_specs": f["extra_specs"]}

    def find_flavor(fid):
        f = c.flavors.get(str(fid))
        if f is None:
            raise ApiError(404, f"Flavor {fid} could not be found.")
        return f

    @route("GET", r"/compute/v2\.1/flavors(?P<detail>/detail)?", "compute")
    def list_flavors(req, detail):
        flavors = list(c.flavors.values())
        if req.q("minRam"):
            flavors = [f for f in flavors if f["ram"] >= int(req.q("minRam"))]
        return 200, {"flavors": [flavor_view(f, bool(detail)) for f in flavors]}, mvh(req)

    @route("GET", r"/compute/v2\.1/flavors/(?P<fid>[^/]+)", "compute")
    def show_flavor(req, fid):
        return 200, {"flavor": flavor_view(find_flavor(fid))}, mvh(req)

    @route("GET", r"/compute/v2\.1/flavors/(?P<fid>[^/]+)/os-extra_specs", "compute")
    def flavor_specs(req, fid):
        return 200, {"extra_specs": find_flavor(fid)["extra_specs"]}, mvh(req)

    @route("GET", r"/compute/v2\.1/limits", "compute")
    def limits(req):
        return 200, {"limits": {"rate": [], "absolute": {
            "maxTotalInstances": 20, "totalInstancesUsed": len(c.servers), "maxTotalCores": 40,
            "totalCoresUsed": 0, "maxTotalRAMSize": 102400, "totalRAMUsed": 0, "maxServerMeta": 128,
            "maxServerGroups": 10, "totalServerGroupsUsed": len(c.server_groups), "maxServerGroupMembers": 10,
            "maxTotalKeypairs": 100, "maxPersonality": 5, "maxPersonalitySize": 10240,
            "maxSecurityGroups": 10, "maxSecurityGroupRules": 20, "maxTotalFloatingIps": 10,
            "totalFloatingIpsUsed": 0, "totalSecurityGroupsUsed": 0}}}, mvh(req)

    # keypairs
    def keypair_view(kp, full=True):
        keys = ("name", "public_key", "fingerprint", "type") + (("user_id", "created_at", "deleted", "id",
                                                                  "updated_at", "deleted_at") if full else ())
        return {k: kp[k] for k in keys}

    @route("GET", r"/compute/v2\.1/os-keypairs", "compute")
    def list_keypairs(req):
        with c.lock:
            kps = [kp for (uid, _n), kp in sorted(c.keypairs.items()) if uid == req.user.user_id]
        return 200, {"keypairs": [{"keypair": keypair_view(kp, False)} for kp in kps]}, mvh(req)

    @route("POST", r"/compute/v2\.1/os-keypairs", "compute")
    def create_keypair(req):
        kp = _body(req, "keypair")
        name = kp.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9 _.@-]{1,255}", name):
            raise ApiError(400, "Keypair data is invalid: Keypair name contains unsafe characters")
        public = kp.get("public_key")
        private = None
        if not public:
            if req.microversion >= (2, 92):
                raise ApiError(400, "Invalid input for field/attribute keypair. 'public_key' is a required property")
            private, public = "-----BEGIN OPENSSH PRIVATE KEY-----\n(generated by the test double: unusable)\n" \
                              "-----END OPENSSH PRIVATE KEY-----\n", "ssh-ed25519 AAAAdouble generated-by-double"
        fields = public.split()
        if len(fields) < 2 or not fields[0].startswith(("ssh-", "ecdsa-")):
            raise ApiError(400, "Keypair data is invalid: failed to generate fingerprint")
        with c.lock:
            if (req.user.user_id, name) in c.keypairs:
                raise ApiError(409, f"Key pair '{name}' already exists.")
            digest = hashlib.md5(fields[1].encode()).hexdigest()  # noqa: S324 (a display fingerprint)
            record = {"name": name, "public_key": public, "type": kp.get("type", "ssh"),
                      "fingerprint": ":".join(digest[i:i + 2] for i in range(0, 32, 2)),
                      "user_id": req.user.user_id, "created_at": _now(), "deleted": False,
                      "id": len(c.keypairs) + 1, "updated_at": None, "deleted_at": None}
            c.keypairs[(req.user.user_id, name)] = record
        out = keypair_view(record, False) | {"user_id": req.user.user_id}
        if private:
            out["private_key"] = private
        return 200 if req.microversion < (2, 2) else 201, {"keypair": out}, mvh(req)

    def get_keypair(req, name):
        kp = c.keypairs.get((req.user.user_id, name))
        if kp is None:
            raise ApiError(404, f"Keypair {name} not found for user {req.user.user_id}")
        return kp

    @route("GET", r"/compute/v2\.1/os-keypairs/(?P<name>[^/]+)", "compute")
    def show_keypair(req, name):
        with c.lock:
            return 200, {"keypair": keypair_view(get_keypair(req, _unquote(name)))}, mvh(req)

    @route("DELETE", r"/compute/v2\.1/os-keypairs/(?P<name>[^/]+)", "compute")
    def delete_keypair(req, name):
        with c.lock:
            kp = get_keypair(req, _unquote(name))
            del c.keypairs[(req.user.user_id, kp["name"])]
        return 202 if req.microversion < (2, 2) else 204, None, mvh(req)

    # server groups
    def group_view(g, req):
        out = {"id": g["id"], "name": g["name"], "members": list(g["members"]), "metadata": {},
               "project_id": g["project_id"], "user_id": g["user_id"]}
        if req.microversion >= (2, 64):
            out.update(policy=g["policy"], rules=g["rules"])
        else:
            out["policies"] = [g["policy"]]
        return out

    def find_group(req, gid):
        g = c.server_groups.get(gid)
        if g is None or g["project_id"] != req.user.project_id:
            raise ApiError(404, f"Instance group {gid} could not be found.")
        return g

    @route("GET", r"/compute/v2\.1/os-server-groups", "compute")
    def list_groups(req):
        with c.lock:
            groups = [g for g in c.server_groups.values() if g["project_id"] == req.user.project_id]
            return 200, {"server_groups": [group_view(g, req) for g in groups]}, mvh(req)

    @route("POST", r"/compute/v2\.1/os-server-groups", "compute")
    def create_group(req):
        g = _body(req, "server_group")
        policy = g.get("policy") if req.microversion >= (2, 64) else (g.get("policies") or [None])[0]
        if policy not in ("affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"):
            raise ApiError(400, f"Invalid input for field/attribute policy. Value: {policy!r}. "
                                "It must be one of affinity, anti-affinity, soft-affinity, soft-anti-affinity")
        if not isinstance(g.get("name"), str) or not g["name"].strip():
            raise ApiError(400, "Invalid input for field/attribute name.")
        record = {"id": _uuid(), "name": g["name"], "policy": policy, "rules": g.get("rules") or {},
                  "members": [], "project_id": req.user.project_id, "user_id": req.user.user_id}
        with c.lock:
            c.server_groups[record["id"]] = record
            return 200, {"server_group": group_view(record, req)}, mvh(req)

    @route("GET", r"/compute/v2\.1/os-server-groups/(?P<gid>[^/]+)", "compute")
    def show_group(req, gid):
        with c.lock:
            return 200, {"server_group": group_view(find_group(req, gid), req)}, mvh(req)

    @route("DELETE", r"/compute/v2\.1/os-server-groups/(?P<gid>[^/]+)", "compute")
    def delete_group(req, gid):
        with c.lock:
            find_group(req, gid)
            del c.server_groups[gid]
        return 204, None, mvh(req)

    # servers
    def server_view(s, req, detail=True):
        links = [{"rel": "self", "href": f"{c.base}/compute/v2.1/servers/{s['id']}"},
                 {"rel": "bookmark", "href": f"{c.base}/compute/servers/{s['id']}"}]
        if not detail:
            return {"id": s["id"], "name": s["name"], "links": links}
        f = c.flavors.get(s["flavor_id"]) or {}
        flavor = ({"original_name": f.get("name"), "vcpus": f.get("vcpus"), "ram": f.get("ram"),
                   "disk": f.get("disk"), "ephemeral": 0, "swap": 0, "extra_specs": {}}
                  if req.microversion >= (2, 47) else
                  {"id": s["flavor_id"], "links": [{"rel": "bookmark",
                                                    "href": f"{c.base}/compute/flavors/{s['flavor_id']}"}]})
        addresses: dict[str, list] = {}
        for p in c.ports.values():
            if p["device_id"] != s["id"]:
                continue
            net = c.networks.get(p["network_id"], {}).get("name", p["network_id"])
            for ip in p["fixed_ips"]:
                addresses.setdefault(net, []).append({"version": 4, "addr": ip["ip_address"],
                                                      "OS-EXT-IPS:type": "fixed",
                                                      "OS-EXT-IPS-MAC:mac_addr": p["mac_address"]})
                for fip in c.floating_ips.values():
                    if fip["port_id"] == p["id"]:
                        addresses[net].append({"version": 4, "addr": fip["floating_ip_address"],
                                               "OS-EXT-IPS:type": "floating",
                                               "OS-EXT-IPS-MAC:mac_addr": p["mac_address"]})
        host = s["compute_host"]
        out = {"id": s["id"], "name": s["name"], "status": s["status"], "tenant_id": s["project_id"],
               "user_id": s["user_id"], "metadata": dict(s["metadata"]),
               "hostId": hashlib.sha224((s["project_id"] + (host or "")).encode()).hexdigest() if host else "",
               "image": {"id": s["image_id"], "links": []}, "flavor": flavor, "created": s["created"],
               "updated": s["updated"], "addresses": addresses, "accessIPv4": "", "accessIPv6": "",
               "links": links, "key_name": s["key_name"], "config_drive": "", "progress": 0 if
               s["status"] == "BUILD" else 100, "OS-DCF:diskConfig": "MANUAL",
               "OS-EXT-AZ:availability_zone": "nova", "OS-EXT-STS:power_state": 1 if s["status"] == "ACTIVE" else 0,
               "OS-EXT-STS:task_state": "spawning" if s["status"] == "BUILD" else None,
               "OS-EXT-STS:vm_state": {"BUILD": "building", "ACTIVE": "active", "ERROR": "error"}.get(
                   s["status"], "active"),
               "OS-SRV-USG:launched_at": s["updated"] if s["status"] == "ACTIVE" else None,
               "OS-SRV-USG:terminated_at": None,
               "OS-EXT-SRV-ATTR:host": host, "OS-EXT-SRV-ATTR:hypervisor_hostname": host,
               "OS-EXT-SRV-ATTR:instance_name": "instance-%08x" % s["seq"],
               "os-extended-volumes:volumes_attached": [{"id": v, "delete_on_termination": False}
                                                        for v in s["volumes"]],
               "security_groups": [{"name": c.security_groups[g]["name"]} for g in s["security_groups"]
                                   if g in c.security_groups],
               "locked": False, "description": s["description"], "tags": list(s["tags"]),
               "trusted_image_certificates": None, "host_status": "UP" if host else "",
               "server_groups": [s["group"]] if s["group"] else []}
        if s.get("fault"):
            out["fault"] = s["fault"]
        return out

    def find_server(req, sid):
        s = c.servers.get(sid)
        if s is None or s["project_id"] != req.user.project_id:
            raise ApiError(404, f"Instance {sid} could not be found.")
        return s

    @route("GET", r"/compute/v2\.1/servers(?P<detail>/detail)?", "compute")
    def list_servers(req, detail):
        with c.lock:
            servers = [s for s in c.servers.values() if s["project_id"] == req.user.project_id]
            name = req.q("name")
            if name:
                servers = [s for s in servers if re.search(name, s["name"])]
            for k in ("status", "flavor", "image", "key_name"):
                if req.q(k):
                    attr = {"flavor": "flavor_id", "image": "image_id"}.get(k, k)
                    servers = [s for s in servers if str(s[attr]) == req.q(k)]
            if req.q("tags"):
                servers = [s for s in servers if set(req.q("tags").split(",")) <= set(s["tags"])]
            servers.sort(key=lambda s: s["seq"], reverse=True)
            return 200, {"servers": [server_view(s, req, bool(detail)) for s in servers]}, mvh(req)

    @route("GET", r"/compute/v2\.1/servers/(?P<sid>[^/]+)", "compute")
    def show_server(req, sid):
        with c.lock:
            return 200, {"server": server_view(find_server(req, sid), req)}, mvh(req)

    def check_metadata(meta):
        if not isinstance(meta, dict):
            raise ApiError(400, "Invalid input for field/attribute metadata. Value must be an object")
        for k, v in meta.items():
            if not isinstance(v, str):
                raise ApiError(400, f"Invalid input for field/attribute metadata. Value of {k!r} is not a string")
            if not 1 <= len(k) <= METADATA_MAX or len(v) > METADATA_MAX:
                raise ApiError(400, f"Invalid input for field/attribute metadata. Key or value of {k!r} is longer "
                                    f"than {METADATA_MAX} characters")
        if len(meta) > 128:
            raise ApiError(403, "Quota exceeded for metadata_items: Requested 129, but already used 0 of 128",
                           "forbidden")

    @route("POST", r"/compute/v2\.1/servers", "compute")
    def create_server(req):
        b = _body(req, "server")
        name = b.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise ApiError(400, "Invalid input for field/attribute name.")
        flavor = find_flavor(str(b.get("flavorRef", "")).rstrip("/").split("/")[-1])
        image_id = str(b.get("imageRef") or "").rstrip("/").split("/")[-1]
        if image_id not in c.images:
            raise ApiError(400, f"Invalid image identifier or image {image_id or '(none)'} not found.")
        meta = b.get("metadata") or {}
        check_metadata(meta)
        hints = (req.body.get("os:scheduler_hints") or req.body.get("OS-SCH-HNT:scheduler_hints") or {})
        nets = b.get("networks")
        if req.microversion >= (2, 37) and nets is None:
            raise ApiError(400, "Invalid input for field/attribute networks. 'networks' is a required property")
        with c.lock:
            key_name = b.get("key_name")
            if key_name and (req.user.user_id, key_name) not in c.keypairs:
                raise ApiError(400, "Invalid key_name provided.")
            group = hints.get("group")
            if group:
                find_group(req, group)
            sg_ids = []
            for sg in b.get("security_groups") or [{"name": "default"}]:
                sg_ids.append(_find_sg(c, req, sg.get("name")))
            ports = []
            if isinstance(nets, list):
                for n in nets:
                    if n.get("port"):
                        p = c.ports.get(n["port"])
                        if p is None:
                            raise ApiError(400, f"Port {n['port']} could not be found.")
                        ports.append(p)
                    elif n.get("uuid"):
                        if n["uuid"] not in c.networks:
                            raise ApiError(400, f"Network {n['uuid']} could not be found.")
                        ports.append(None)
                    else:
                        raise ApiError(400, "Bad networks format")
            elif nets == "auto":
                ports.append(None)
            sid = _uuid()
            c.seq += 1
            seq = c.seq
            s = {"id": sid, "seq": seq, "name": name, "status": "BUILD", "project_id": req.user.project_id,
                 "user_id": req.user.user_id, "metadata": dict(meta), "flavor_id": flavor["id"],
                 "image_id": image_id, "key_name": key_name, "created": _now(), "updated": _now(),
                 "volumes": [], "security_groups": sg_ids, "tags": list(b.get("tags") or []),
                 "description": b.get("description"), "group": group, "compute_host": None, "fault": None,
                 "public_key": c.keypairs[(req.user.user_id, key_name)]["public_key"] if key_name else None}
            c.servers[sid] = s
            for i, p in enumerate(ports):
                if p is None:
                    net_id = nets[i]["uuid"] if isinstance(nets, list) else next(
                        n for n in c.networks.values() if not n["router:external"])["id"]
                    p = _new_port(c, req, net_id, name="", security_groups=sg_ids)
                p.update(device_id=sid, device_owner="compute:nova", status="ACTIVE")
            if group:
                c.server_groups[group]["members"].append(sid)
        c.spawn(_boot, c, sid)
        admin_pass = secrets.token_urlsafe(9)
        return 202, {"server": {"id": sid, "links": server_view(s, req, False)["links"], "adminPass": admin_pass,
                                "OS-DCF:diskConfig": "MANUAL",
                                "security_groups": [{"name": c.security_groups[g]["name"]} for g in sg_ids]}}, \
            {**mvh(req), "Location": f"{c.base}/compute/v2.1/servers/{sid}"}

    @route("DELETE", r"/compute/v2\.1/servers/(?P<sid>[^/]+)", "compute")
    def delete_server(req, sid):
        with c.lock:
            s = find_server(req, sid)
            s["status"] = "DELETED"
            for vid in list(s["volumes"]):
                _detach(c, s, vid)
            for p in [p for p in c.ports.values() if p["device_id"] == sid]:
                for fip in c.floating_ips.values():
                    if fip["port_id"] == p["id"]:
                        fip.update(port_id=None, fixed_ip_address=None, status="DOWN", router_id=None)
                if p.get("nova_created", True) and p["name"] == "":
                    del c.ports[p["id"]]
                else:
                    p.update(device_id="", device_owner="", status="DOWN")
            if s["group"] and s["group"] in c.server_groups:
                c.server_groups[s["group"]]["members"].remove(sid)
            del c.servers[sid]
            booted = c._backing.pop(sid, None)
        if booted is not None:
            c.spawn(c.hosts.destroy, booted.handle)
        return 204, None, mvh(req)

    @route("GET", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/metadata", "compute")
    def get_metadata(req, sid):
        with c.lock:
            return 200, {"metadata": dict(find_server(req, sid)["metadata"])}, mvh(req)

    @route("POST", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/metadata", "compute")
    def update_metadata(req, sid):
        meta = (req.body or {}).get("metadata")
        check_metadata(meta)
        with c.lock:
            s = find_server(req, sid)
            s["metadata"].update(meta)
            s["updated"] = _now()
            return 200, {"metadata": dict(s["metadata"])}, mvh(req)

    @route("PUT", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/metadata", "compute")
    def replace_metadata(req, sid):
        meta = (req.body or {}).get("metadata")
        check_metadata(meta)
        with c.lock:
            s = find_server(req, sid)
            s["metadata"] = dict(meta)
            return 200, {"metadata": dict(s["metadata"])}, mvh(req)

    @route("DELETE", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/metadata/(?P<key>[^/]+)", "compute")
    def delete_metadata_item(req, sid, key):
        with c.lock:
            s = find_server(req, sid)
            key = _unquote(key)
            if key not in s["metadata"]:
                raise ApiError(404, "Metadata item was not found")
            del s["metadata"][key]
        return 204, None, mvh(req)

    @route("GET", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/os-security-groups", "compute")
    def server_sgs(req, sid):
        with c.lock:
            s = find_server(req, sid)
            return 200, {"security_groups": [{"id": g, "name": c.security_groups[g]["name"],
                                              "description": c.security_groups[g]["description"],
                                              "tenant_id": s["project_id"], "rules": []}
                                             for g in s["security_groups"] if g in c.security_groups]}, mvh(req)

    @route("GET", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/os-interface", "compute")
    def server_interfaces(req, sid):
        with c.lock:
            find_server(req, sid)
            return 200, {"interfaceAttachments": [
                {"port_id": p["id"], "net_id": p["network_id"], "mac_addr": p["mac_address"],
                 "port_state": p["status"], "fixed_ips": p["fixed_ips"]}
                for p in c.ports.values() if p["device_id"] == sid]}, mvh(req)

    @route("POST", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/action", "compute")
    def server_action(req, sid):
        body = req.body if isinstance(req.body, dict) else {}
        with c.lock:
            s = find_server(req, sid)
            if "addSecurityGroup" in body:
                g = _find_sg(c, req, body["addSecurityGroup"].get("name"))
                if g not in s["security_groups"]:
                    s["security_groups"].append(g)
                    for p in c.ports.values():
                        if p["device_id"] == sid:
                            p["security_groups"] = list(s["security_groups"])
                return 202, None, mvh(req)
            if "removeSecurityGroup" in body:
                g = _find_sg(c, req, body["removeSecurityGroup"].get("name"))
                if g in s["security_groups"]:
                    s["security_groups"].remove(g)
                return 202, None, mvh(req)
        raise ApiError(400, f"The test double does not implement the server action(s) {sorted(body)}")

    # volume attachments
    def attachment_view(s, vid, req):
        v = c.volumes[vid]
        att = next(a for a in v["attachments"] if a["server_id"] == s["id"])
        out = {"serverId": s["id"], "volumeId": vid, "device": att["device"]}
        if req.microversion < (2, 89):
            out["id"] = vid
        else:
            out.update(attachment_id=att["attachment_id"], bdm_uuid=att["attachment_id"])
        if req.microversion >= (2, 70):
            out["tag"] = None
        if req.microversion >= (2, 79):
            out["delete_on_termination"] = False
        return out

    @route("GET", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/os-volume_attachments", "compute")
    def list_attachments(req, sid):
        with c.lock:
            s = find_server(req, sid)
            return 200, {"volumeAttachments": [attachment_view(s, v, req) for v in s["volumes"]]}, mvh(req)

    @route("GET", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/os-volume_attachments/(?P<vid>[^/]+)", "compute")
    def show_attachment(req, sid, vid):
        with c.lock:
            s = find_server(req, sid)
            if vid not in s["volumes"]:
                raise ApiError(404, f"Volume {vid} is not attached to {sid}")
            return 200, {"volumeAttachment": attachment_view(s, vid, req)}, mvh(req)

    @route("POST", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/os-volume_attachments", "compute")
    def attach_volume(req, sid):
        a = _body(req, "volumeAttachment")
        vid = a.get("volumeId")
        with c.lock:
            s = find_server(req, sid)
            v = c.volumes.get(vid)
            if v is None or v["project_id"] != req.user.project_id:
                raise ApiError(404, f"Volume {vid} could not be found.")
            if s["status"] != "ACTIVE":
                raise ApiError(409, f"Cannot 'attach_volume' instance {sid} while it is in vm_state "
                                    f"{s['status'].lower()}")
            if v["status"] != "available":
                raise ApiError(400, f"Invalid volume: volume {vid} status must be available, but current status "
                                    f"is: {v['status']}")
            device = a.get("device") or "/dev/vd" + "bcdefghijklmnop"[len(s["volumes"])]
            v["status"] = "attaching"
            v["attachments"].append({"server_id": sid, "attachment_id": _uuid(), "volume_id": vid,
                                     "id": vid, "device": device, "host_name": s["compute_host"],
                                     "attached_at": _now()})
            s["volumes"].append(vid)
            booted = c._backing.get(sid)
        c.spawn(_attach, c, sid, vid, booted, device)
        return 200, {"volumeAttachment": attachment_view(s, vid, req)}, mvh(req)

    @route("DELETE", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/os-volume_attachments/(?P<vid>[^/]+)", "compute")
    def detach_volume(req, sid, vid):
        with c.lock:
            s = find_server(req, sid)
            if vid not in s["volumes"]:
                raise ApiError(404, f"Volume {vid} is not attached to {sid}")
            _detach(c, s, vid)
        return 202, None, mvh(req)

    # ---------------- Neutron ----------------
    @route("GET", r"/network")
    def network_root(req):
        return 200, {"versions": [{"id": "v2.0", "status": "CURRENT",
                                   "links": _versions_links(f"{c.base}/network/v2.0/")}]}

    @route("GET", r"/network/v2\.0", "network")
    def network_v20(req):
        return 200, {"resources": [{"name": n, "collection": n + "s",
                                    "links": _versions_links(f"{c.base}/network/v2.0/{n}s")}
                                   for n in ("network", "subnet", "port")]}

    @route("GET", r"/network/v2\.0/extensions", "network")
    def extensions(req):
        names = ["security-group", "router", "external-net", "standard-attr-tag", "standard-attr-description",
                 "port-security", "binding", "quotas", "extra_dhcp_opt", "allowed-address-pairs", "network-ip-availability",
                 "standard-attr-timestamp", "standard-attr-revisions", "stateful-security-group"]
        return 200, {"extensions": [{"alias": a, "name": a, "description": "", "links": [],
                                     "updated": "2017-01-01T10:00:00-00:00"} for a in names]}

    def mine(items, req):
        return [i for i in items if i.get("project_id") == req.user.project_id or i.get("shared")
                or i.get("router:external")]

    @route("GET", r"/network/v2\.0/networks", "network")
    def list_networks(req):
        with c.lock:
            return 200, {"networks": _filtered(mine(c.networks.values(), req), req)}

    @route("GET", r"/network/v2\.0/networks/(?P<nid>[^/]+)", "network")
    def show_network(req, nid):
        with c.lock:
            n = c.networks.get(nid)
            if n is None:
                raise ApiError(404, f"Network {nid} could not be found.", "NetworkNotFound")
            return 200, {"network": n}

    @route("GET", r"/network/v2\.0/subnets", "network")
    def list_subnets(req):
        with c.lock:
            return 200, {"subnets": _filtered(list(c.subnets.values()), req)}

    @route("GET", r"/network/v2\.0/subnets/(?P<sid>[^/]+)", "network")
    def show_subnet(req, sid):
        with c.lock:
            if sid not in c.subnets:
                raise ApiError(404, f"Subnet {sid} could not be found.", "SubnetNotFound")
            return 200, {"subnet": c.subnets[sid]}

    @route("GET", r"/network/v2\.0/routers", "network")
    def list_routers(req):
        return 200, {"routers": []}

    # ports
    @route("GET", r"/network/v2\.0/ports", "network")
    def list_ports(req):
        with c.lock:
            return 200, {"ports": [_port_view(p) for p in _filtered(mine(c.ports.values(), req), req)]}

    def find_port(req, pid):
        p = c.ports.get(pid)
        if p is None or p["project_id"] != req.user.project_id:
            raise ApiError(404, f"Port {pid} could not be found.", "PortNotFound")
        return p

    @route("GET", r"/network/v2\.0/ports/(?P<pid>[^/]+)", "network")
    def show_port(req, pid):
        with c.lock:
            return 200, {"port": _port_view(find_port(req, pid))}

    @route("POST", r"/network/v2\.0/ports", "network")
    def create_port(req):
        b = _body(req, "port")
        with c.lock:
            if b.get("network_id") not in c.networks:
                raise ApiError(404, f"Network {b.get('network_id')} could not be found.", "NetworkNotFound")
            sgs = [_find_sg(c, req, g) for g in b.get("security_groups") or ["default"]]
            p = _new_port(c, req, b["network_id"], name=b.get("name", ""), security_groups=sgs)
            p.update(description=b.get("description", ""), nova_created=False)
            if b.get("device_id"):
                p.update(device_id=b["device_id"], device_owner=b.get("device_owner", ""))
            return 201, {"port": _port_view(p)}

    @route("PUT", r"/network/v2\.0/ports/(?P<pid>[^/]+)", "network")
    def update_port(req, pid):
        b = _body(req, "port")
        with c.lock:
            p = find_port(req, pid)
            for k in ("name", "description", "admin_state_up"):
                if k in b:
                    p[k] = b[k]
            if "security_groups" in b:
                p["security_groups"] = [_find_sg(c, req, g) for g in b["security_groups"]]
            return 200, {"port": _port_view(p)}

    @route("DELETE", r"/network/v2\.0/ports/(?P<pid>[^/]+)", "network")
    def delete_port(req, pid):
        with c.lock:
            find_port(req, pid)
            del c.ports[pid]
            for fip in c.floating_ips.values():
                if fip["port_id"] == pid:
                    fip.update(port_id=None, fixed_ip_address=None, status="DOWN")
        return 204, None

    # security groups
    def sg_view(g):
        return {**g, "security_group_rules": [r for r in c.rules.values() if r["security_group_id"] == g["id"]]}

    def find_sg_record(req, gid):
        g = c.security_groups.get(gid)
        if g is None or g["project_id"] != req.user.project_id:
            raise ApiError(404, f"Security group {gid} does not exist", "SecurityGroupNotFound")
        return g

    @route("GET", r"/network/v2\.0/security-groups", "network")
    def list_sgs(req):
        with c.lock:
            _ensure_default_sg(c, req.user)
            groups = [g for g in c.security_groups.values() if g["project_id"] == req.user.project_id]
            return 200, {"security_groups": [sg_view(g) for g in _filtered(groups, req)]}

    @route("GET", r"/network/v2\.0/security-groups/(?P<gid>[^/]+)", "network")
    def show_sg(req, gid):
        with c.lock:
            return 200, {"security_group": sg_view(find_sg_record(req, gid))}

    @route("POST", r"/network/v2\.0/security-groups", "network")
    def create_sg(req):
        b = _body(req, "security_group")
        with c.lock:
            _ensure_default_sg(c, req.user)
            if b.get("name") == "default":
                raise ApiError(409, "Default security group already exists.", "SecurityGroupDefaultAlreadyExists")
            g = _new_sg(c, req.user, b.get("name", ""), b.get("description", ""), b.get("stateful", True))
            return 201, {"security_group": sg_view(g)}

    @route("PUT", r"/network/v2\.0/security-groups/(?P<gid>[^/]+)", "network")
    def update_sg(req, gid):
        b = _body(req, "security_group")
        with c.lock:
            g = find_sg_record(req, gid)
            for k in ("name", "description", "stateful"):
                if k in b:
                    g[k] = b[k]
            g["revision_number"] += 1
            return 200, {"security_group": sg_view(g)}

    @route("DELETE", r"/network/v2\.0/security-groups/(?P<gid>[^/]+)", "network")
    def delete_sg(req, gid):
        with c.lock:
            g = find_sg_record(req, gid)
            in_use = [p["id"] for p in c.ports.values() if gid in p["security_groups"]]
            if in_use:
                raise ApiError(409, f"Security Group {gid} in use.", "SecurityGroupInUse")
            if g["name"] == "default":
                raise ApiError(409, "Removing default security group not allowed.", "SecurityGroupCannotRemoveDefault")
            del c.security_groups[gid]
            for rid in [r for r, rule in c.rules.items() if rule["security_group_id"] == gid]:
                del c.rules[rid]
        return 204, None

    @route("GET", r"/network/v2\.0/security-group-rules", "network")
    def list_rules(req):
        with c.lock:
            return 200, {"security_group_rules": _filtered(
                [r for r in c.rules.values() if r["project_id"] == req.user.project_id], req)}

    @route("GET", r"/network/v2\.0/security-group-rules/(?P<rid>[^/]+)", "network")
    def show_rule(req, rid):
        with c.lock:
            if rid not in c.rules:
                raise ApiError(404, f"Security group rule {rid} does not exist", "SecurityGroupRuleNotFound")
            return 200, {"security_group_rule": c.rules[rid]}

    def new_rule(req, b):
        g = find_sg_record(req, b.get("security_group_id", ""))
        if b.get("direction") not in ("ingress", "egress"):
            raise ApiError(400, f"Invalid input for direction. Reason: {b.get('direction')!r} is not in "
                                "['ingress', 'egress'].", "HTTPBadRequest")
        if b.get("remote_group_id"):
            find_sg_record(req, b["remote_group_id"])
        if b.get("remote_ip_prefix"):
            try:
                ipaddress.ip_network(b["remote_ip_prefix"], strict=False)
            except ValueError:
                raise ApiError(400, f"Invalid input for remote_ip_prefix: {b['remote_ip_prefix']!r}",
                               "HTTPBadRequest") from None
        rule = _rule(g, b.get("direction"), b.get("ethertype", "IPv4"), b.get("protocol"), b.get("port_range_min"),
                     b.get("port_range_max"), b.get("remote_ip_prefix"), b.get("remote_group_id"),
                     b.get("description", ""))
        for other in c.rules.values():
            if all(other[k] == rule[k] for k in ("security_group_id", "direction", "ethertype", "protocol",
                                                  "port_range_min", "port_range_max", "remote_ip_prefix",
                                                  "remote_group_id")):
                raise ApiError(409, f"Security group rule already exists. Rule id is {other['id']}.",
                               "SecurityGroupRuleExists")
        return rule

    @route("POST", r"/network/v2\.0/security-group-rules", "network")
    def create_rule(req):
        bulk = isinstance(req.body, dict) and isinstance(req.body.get("security_group_rules"), list)
        wanted = req.body["security_group_rules"] if bulk else [_body(req, "security_group_rule")]
        with c.lock:
            made = []
            for b in wanted:  # all or nothing, like Neutron's bulk create
                made.append(new_rule(req, b if isinstance(b, dict) else {}))
            c.rules.update((r["id"], r) for r in made)
            if bulk:
                return 201, {"security_group_rules": made}
            return 201, {"security_group_rule": made[0]}

    @route("DELETE", r"/network/v2\.0/security-group-rules/(?P<rid>[^/]+)", "network")
    def delete_rule(req, rid):
        with c.lock:
            if rid not in c.rules:
                raise ApiError(404, f"Security group rule {rid} does not exist", "SecurityGroupRuleNotFound")
            del c.rules[rid]
        return 204, None

    # tags on any Neutron resource (standard-attr-tag)
    def tagged(kind, rid):
        table = {"security-groups": c.security_groups, "ports": c.ports, "networks": c.networks,
                 "floatingips": c.floating_ips, "subnets": c.subnets}[kind]
        if rid not in table:
            raise ApiError(404, f"{kind} {rid} could not be found.")
        return table[rid]

    tag_kinds = r"(?P<kind>security-groups|ports|networks|floatingips|subnets)"

    @route("GET", rf"/network/v2\.0/{tag_kinds}/(?P<rid>[^/]+)/tags", "network")
    def get_tags(req, kind, rid):
        with c.lock:
            return 200, {"tags": list(tagged(kind, rid)["tags"])}

    @route("PUT", rf"/network/v2\.0/{tag_kinds}/(?P<rid>[^/]+)/tags", "network")
    def set_tags(req, kind, rid):
        tags = (req.body or {}).get("tags")
        if not isinstance(tags, list) or not all(isinstance(t, str) and 0 < len(t) <= 255 for t in tags):
            raise ApiError(400, "Invalid tags body")
        with c.lock:
            tagged(kind, rid)["tags"] = sorted(set(tags))
            return 200, {"tags": tagged(kind, rid)["tags"]}

    @route("PUT", rf"/network/v2\.0/{tag_kinds}/(?P<rid>[^/]+)/tags/(?P<tag>[^/]+)", "network")
    def add_tag(req, kind, rid, tag):
        with c.lock:
            item = tagged(kind, rid)
            tag = _unquote(tag)
            if tag not in item["tags"]:
                item["tags"] = sorted(item["tags"] + [tag])
        return 201, None

    @route("DELETE", rf"/network/v2\.0/{tag_kinds}/(?P<rid>[^/]+)/tags/(?P<tag>[^/]+)", "network")
    def delete_tag(req, kind, rid, tag):
        with c.lock:
            item = tagged(kind, rid)
            tag = _unquote(tag)
            if tag not in item["tags"]:
                raise ApiError(404, f"Tag {tag} could not be found.", "TagNotFound")
            item["tags"].remove(tag)
        return 204, None

    # floating IPs
    def find_fip(req, fid):
        f = c.floating_ips.get(fid)
        if f is None or f["project_id"] != req.user.project_id:
            raise ApiError(404, f"Floating IP {fid} could not be found", "FloatingIPNotFound")
        return f

    def bind_fip(f, port_id, fixed=None):
        if port_id is None:
            f.update(port_id=None, fixed_ip_address=None, status="DOWN", router_id=None)
            return
        p = c.ports.get(port_id)
        if p is None:
            raise ApiError(404, f"Port {port_id} could not be found.", "PortNotFound")
        f.update(port_id=port_id, fixed_ip_address=fixed or p["fixed_ips"][0]["ip_address"], status="ACTIVE",
                 router_id=_uuid())

    @route("GET", r"/network/v2\.0/floatingips", "network")
    def list_fips(req):
        with c.lock:
            return 200, {"floatingips": _filtered(
                [f for f in c.floating_ips.values() if f["project_id"] == req.user.project_id], req)}

    @route("GET", r"/network/v2\.0/floatingips/(?P<fid>[^/]+)", "network")
    def show_fip(req, fid):
        with c.lock:
            return 200, {"floatingip": find_fip(req, fid)}

    @route("POST", r"/network/v2\.0/floatingips", "network")
    def create_fip(req):
        b = _body(req, "floatingip")
        with c.lock:
            net = c.networks.get(b.get("floating_network_id"))
            if net is None or not net["router:external"]:
                raise ApiError(404, f"External network {b.get('floating_network_id')} could not be found.",
                               "ExternalNetworkNotFound")
            f = {"id": _uuid(), "floating_ip_address": b.get("floating_ip_address") or c.next_floating_address(),
                 "floating_network_id": net["id"], "port_id": None, "fixed_ip_address": None, "router_id": None,
                 "status": "DOWN", "tenant_id": req.user.project_id, "project_id": req.user.project_id,
                 "description": b.get("description", ""), "tags": [], "port_details": None,
                 "dns_domain": "", "dns_name": "", "qos_policy_id": None, "port_forwardings": [],
                 "created_at": _now(), "updated_at": _now(), "revision_number": 0}
            if b.get("port_id"):
                bind_fip(f, b["port_id"], b.get("fixed_ip_address"))
            c.floating_ips[f["id"]] = f
            return 201, {"floatingip": f}

    @route("PUT", r"/network/v2\.0/floatingips/(?P<fid>[^/]+)", "network")
    def update_fip(req, fid):
        b = _body(req, "floatingip")
        with c.lock:
            f = find_fip(req, fid)
            if "port_id" in b:
                bind_fip(f, b["port_id"], b.get("fixed_ip_address"))
            if "description" in b:
                f["description"] = b["description"]
            return 200, {"floatingip": f}

    @route("DELETE", r"/network/v2\.0/floatingips/(?P<fid>[^/]+)", "network")
    def delete_fip(req, fid):
        with c.lock:
            find_fip(req, fid)
            del c.floating_ips[fid]
        return 204, None

    # ---------------- Cinder ----------------
    def cinder_version():
        return {"id": "v3.0", "status": "CURRENT", "version": CINDER_MAX, "min_version": CINDER_MIN,
                "updated": "2023-08-31T00:00:00Z", "links": _versions_links(f"{c.base}/volume/v3/"),
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.volume+json;version=3"}]}

    @route("GET", r"/volume")
    def volume_root(req):
        return 300, {"versions": [cinder_version()]}

    @route("GET", r"/volume/v3")
    def volume_v3(req):
        return 200, {"versions": [cinder_version()]}

    @route("GET", r"/volume/v3/(?P<pid>[0-9a-f]+)")
    def volume_v3_project(req, pid):
        return 200, {"versions": [cinder_version()]}

    def cvh(req):
        return {"OpenStack-API-Version": "volume %d.%d" % req.microversion, "Vary": "OpenStack-API-Version"}

    def check_project(req, pid):
        if pid != req.user.project_id:
            raise ApiError(403, "Policy doesn't allow this operation for another project.", "forbidden")

    def volume_view(v, req, detail=True):
        links = [{"rel": "self", "href": f"{c.base}/volume/v3/{v['project_id']}/volumes/{v['id']}"}]
        if not detail:
            return {"id": v["id"], "name": v["name"], "links": links}
        out = {k: v[k] for k in ("id", "name", "status", "size", "description", "metadata", "created_at",
                                 "updated_at", "availability_zone", "volume_type", "bootable", "encrypted",
                                 "multiattach", "snapshot_id", "source_volid", "consistencygroup_id",
                                 "replication_status", "user_id")}
        out.update(links=links, attachments=[{k: a[k] for k in ("server_id", "attachment_id", "volume_id", "id",
                                                                  "device", "host_name", "attached_at")}
                                             for a in v["attachments"]],
                   **{"os-vol-tenant-attr:tenant_id": v["project_id"], "os-vol-host-attr:host": "double@lvm#lvm",
                      "os-vol-mig-status-attr:migstat": None, "os-vol-mig-status-attr:name_id": None})
        if req.microversion >= (3, 48):
            out["shared_targets"] = False
            out["service_uuid"] = uuid.uuid5(uuid.NAMESPACE_DNS, "cinder-volume").hex
        if req.microversion >= (3, 63):
            out["volume_type_id"] = uuid.uuid5(uuid.NAMESPACE_DNS, "lvmdriver-1").hex
        if req.microversion >= (3, 69):
            out["cluster_name"] = None
        return out

    def find_volume(req, vid):
        v = c.volumes.get(vid)
        if v is None or v["project_id"] != req.user.project_id:
            raise ApiError(404, f"Volume {vid} could not be found.", "itemNotFound")
        return v

    @route("GET", r"/volume/v3/(?P<pid>[^/]+)/volumes(?P<detail>/detail)?", "volume")
    def list_volumes(req, pid, detail):
        check_project(req, pid)
        with c.lock:
            vols = [v for v in c.volumes.values() if v["project_id"] == pid]
            vols = _filtered(vols, req)
            return 200, {"volumes": [volume_view(v, req, bool(detail)) for v in vols]}, cvh(req)

    @route("GET", r"/volume/v3/(?P<pid>[^/]+)/volumes/(?P<vid>[^/]+)", "volume")
    def show_volume(req, pid, vid):
        check_project(req, pid)
        with c.lock:
            return 200, {"volume": volume_view(find_volume(req, vid), req)}, cvh(req)

    @route("POST", r"/volume/v3/(?P<pid>[^/]+)/volumes", "volume")
    def create_volume(req, pid):
        check_project(req, pid)
        b = _body(req, "volume")
        size = b.get("size")
        if isinstance(size, str) and size.isdigit():
            size = int(size)
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ApiError(400, f"Invalid input received: Volume size '{size}' must be an integer and greater than 0")
        meta = b.get("metadata") or {}
        if not isinstance(meta, dict) or any(not isinstance(v, str) or len(k) > 255 or len(v) > 255
                                             for k, v in meta.items()):
            raise ApiError(400, "Invalid input received: metadata keys and values must be strings of at most "
                                "255 characters")
        v = {"id": _uuid(), "name": b.get("name"), "status": "creating", "size": size,
             "description": b.get("description"), "metadata": dict(meta), "created_at": _now(),
             "updated_at": _now(), "availability_zone": b.get("availability_zone") or "nova",
             "volume_type": b.get("volume_type") or "lvmdriver-1", "bootable": "false", "encrypted": False,
             "multiattach": bool(b.get("multiattach")), "snapshot_id": None, "source_volid": None,
             "consistencygroup_id": None, "replication_status": None, "user_id": req.user.user_id,
             "project_id": pid, "attachments": []}
        with c.lock:
            c.volumes[v["id"]] = v
        c.spawn(_settle_volume, c, v["id"])
        return 202, {"volume": volume_view(v, req)}, cvh(req)

    @route("PUT", r"/volume/v3/(?P<pid>[^/]+)/volumes/(?P<vid>[^/]+)", "volume")
    def update_volume(req, pid, vid):
        check_project(req, pid)
        b = _body(req, "volume")
        with c.lock:
            v = find_volume(req, vid)
            for k in ("name", "description"):
                if k in b:
                    v[k] = b[k]
            if "metadata" in b:
                v["metadata"] = dict(b["metadata"])
            return 200, {"volume": volume_view(v, req)}, cvh(req)

    @route("DELETE", r"/volume/v3/(?P<pid>[^/]+)/volumes/(?P<vid>[^/]+)", "volume")
    def delete_volume(req, pid, vid):
        check_project(req, pid)
        with c.lock:
            v = find_volume(req, vid)
            if v["status"] not in ("available", "error", "error_restoring", "error_extending"):
                raise ApiError(400, f"Invalid volume: Volume status must be available or error or error_restoring "
                                    f"or error_extending or error_managing and must not be migrating, attached, "
                                    f"belong to a group, have snapshots or be disassociated from snapshots after "
                                    f"volume transfer. (current status: {v['status']})", "badRequest")
            v["status"] = "deleting"
        c.spawn(_remove_volume, c, vid)
        return 202, None, cvh(req)

    @route("GET", r"/volume/v3/(?P<pid>[^/]+)/volumes/(?P<vid>[^/]+)/metadata", "volume")
    def volume_metadata(req, pid, vid):
        check_project(req, pid)
        with c.lock:
            return 200, {"metadata": dict(find_volume(req, vid)["metadata"])}, cvh(req)

    @route("POST", r"/volume/v3/(?P<pid>[^/]+)/volumes/(?P<vid>[^/]+)/metadata", "volume")
    def set_volume_metadata(req, pid, vid):
        check_project(req, pid)
        meta = (req.body or {}).get("metadata")
        if not isinstance(meta, dict):
            raise ApiError(400, "Malformed request body: metadata must be an object")
        with c.lock:
            v = find_volume(req, vid)
            v["metadata"].update(meta)
            return 200, {"metadata": dict(v["metadata"])}, cvh(req)

    @route("POST", r"/volume/v3/(?P<pid>[^/]+)/volumes/(?P<vid>[^/]+)/action", "volume")
    def volume_action(req, pid, vid):
        check_project(req, pid)
        body = req.body if isinstance(req.body, dict) else {}
        if "os-extend" in body:
            new = (body["os-extend"] or {}).get("new_size")
            with c.lock:
                v = find_volume(req, vid)
                if not isinstance(new, int) or new <= v["size"]:
                    raise ApiError(400, f"Invalid input received: New size for extend must be greater than "
                                        f"current size. (current: {v['size']}, extended: {new}).")
                if v["status"] == "in-use" and req.microversion < (3, 42):
                    raise ApiError(400, "Invalid volume: Volume status must be available to extend (in-use needs "
                                        "microversion 3.42).")
                if v["status"] not in ("available", "in-use"):
                    raise ApiError(400, f"Invalid volume: Volume status must be available or in-use to extend, but "
                                        f"current status is: {v['status']}.")
                previous, v["status"] = v["status"], "extending"
            c.spawn(_extend, c, vid, new, previous)
            return 202, None, cvh(req)
        raise ApiError(400, f"The test double does not implement the volume action(s) {sorted(body)}")

    @route("GET", r"/volume/v3/(?P<pid>[^/]+)/types", "volume")
    def volume_types(req, pid):
        return 200, {"volume_types": [{"id": uuid.uuid5(uuid.NAMESPACE_DNS, "lvmdriver-1").hex,
                                       "name": "lvmdriver-1", "is_public": True, "extra_specs": {},
                                       "description": None}]}, cvh(req)

    @route("GET", r"/volume/v3/(?P<pid>[^/]+)/attachments", "volume")
    def list_volume_attachments(req, pid):
        check_project(req, pid)
        with c.lock:
            return 200, {"attachments": [{"id": a["attachment_id"], "volume_id": v["id"], "instance": a["server_id"],
                                          "status": "attached"}
                                         for v in c.volumes.values() if v["project_id"] == pid
                                         for a in v["attachments"]]}, cvh(req)

    # ---------------- Glance ----------------
    @route("GET", r"/image")
    def image_root(req):
        return 300, {"versions": [{"id": "v2.16", "status": "CURRENT",
                                   "links": _versions_links(f"{c.base}/image/v2/")}]}

    @route("GET", r"/image/v2/images", "image")
    def list_images(req):
        with c.lock:
            images = _filtered(list(c.images.values()), req)
        return 200, {"images": images, "first": "/v2/images", "schema": "/v2/schemas/images"}

    @route("GET", r"/image/v2/images/(?P<iid>[^/]+)", "image")
    def show_image(req, iid):
        with c.lock:
            if iid not in c.images:
                raise ApiError(404, f"No image found with ID {iid}")
            return 200, c.images[iid]

    return routes


# -- shared state changes ----------------------------------------------------------------------------------------
def _unquote(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)


def _port_view(p: dict) -> dict:
    return {k: v for k, v in p.items() if k != "nova_created"}


def _new_port(c: CloudDouble, req: Req, network_id: str, name: str, security_groups: list[str]) -> dict:
    net = c.networks[network_id]
    subnet = c.subnets[net["subnets"][0]]
    used = {ip["ip_address"] for p in c.ports.values() for ip in p["fixed_ips"]}
    pool = ipaddress.ip_network(subnet["cidr"]).hosts()
    address = next(str(ip) for ip in pool if str(ip) not in used and str(ip) != subnet["gateway_ip"])
    pid = _uuid()
    mac = "fa:16:3e:" + ":".join(secrets.token_hex(1) for _ in range(3))
    c.ports[pid] = {"id": pid, "name": name, "network_id": network_id, "mac_address": mac,
                    "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": address}], "device_id": "",
                    "device_owner": "", "status": "DOWN", "admin_state_up": True,
                    "security_groups": list(security_groups), "tenant_id": req.user.project_id,
                    "project_id": req.user.project_id, "tags": [], "description": "",
                    "port_security_enabled": True, "allowed_address_pairs": [], "extra_dhcp_opts": [],
                    "binding:vnic_type": "normal", "binding:host_id": "", "binding:profile": {},
                    "binding:vif_type": "ovs", "binding:vif_details": {}, "dns_name": "", "dns_assignment": [],
                    "created_at": _now(), "updated_at": _now(), "revision_number": 0, "nova_created": True}
    return c.ports[pid]


def _rule(g, direction, ethertype, protocol, pmin, pmax, prefix, remote_group, description=""):
    return {"id": _uuid(), "security_group_id": g["id"], "direction": direction, "ethertype": ethertype,
            "protocol": protocol, "port_range_min": pmin, "port_range_max": pmax, "remote_ip_prefix": prefix,
            "remote_group_id": remote_group, "remote_address_group_id": None, "normalized_cidr": prefix,
            "tenant_id": g["project_id"], "project_id": g["project_id"], "description": description,
            "tags": [], "created_at": _now(), "updated_at": _now(), "revision_number": 0, "belongs_to_default_sg": False}


def _new_sg(c: CloudDouble, user: User, name: str, description: str, stateful: bool = True) -> dict:
    g = {"id": _uuid(), "name": name, "description": description, "tenant_id": user.project_id,
         "project_id": user.project_id, "tags": [], "stateful": stateful, "shared": False,
         "created_at": _now(), "updated_at": _now(), "revision_number": 1}
    c.security_groups[g["id"]] = g
    for eth in ("IPv4", "IPv6"):  # Neutron gives every new group egress-anywhere rules
        r = _rule(g, "egress", eth, None, None, None, None, None)
        c.rules[r["id"]] = r
    return g


def _ensure_default_sg(c: CloudDouble, user: User) -> dict:
    for g in c.security_groups.values():
        if g["project_id"] == user.project_id and g["name"] == "default":
            return g
    g = _new_sg(c, user, "default", "Default security group")
    for eth in ("IPv4", "IPv6"):
        r = _rule(g, "ingress", eth, None, None, None, None, g["id"])
        c.rules[r["id"]] = r
    return g


def _find_sg(c: CloudDouble, req: Req, name_or_id) -> str:
    _ensure_default_sg(c, req.user)
    for g in c.security_groups.values():
        if g["project_id"] == req.user.project_id and name_or_id in (g["id"], g["name"]):
            return g["id"]
    raise ApiError(400, f"Security group {name_or_id} not found for project {req.user.project_id}.")


def _boot(c: CloudDouble, sid: str) -> None:
    """Schedule (anti-affinity = a compute host no other member of the group is on) and boot the backing host."""
    with c.lock:
        s = c.servers.get(sid)
        if s is None:
            return
        taken = set()
        policy = None
        if s["group"] and s["group"] in c.server_groups:
            g = c.server_groups[s["group"]]
            policy = g["policy"]
            taken = {c.servers[m]["compute_host"] for m in g["members"] if m != sid and m in c.servers}
        load = {h: 0 for h in c.compute_hosts}
        for other in c.servers.values():
            if other["compute_host"]:
                load[other["compute_host"]] += 1
        candidates = [h for h in c.compute_hosts if policy != "anti-affinity" or h not in taken]
        if policy == "affinity" and taken:
            candidates = sorted(taken - {None})
        if not candidates:
            s.update(status="ERROR", updated=_now(), fault={
                "code": 500, "created": _now(),
                "message": "No valid host was found. There are not enough hosts available."})
            return
        s["compute_host"] = min(candidates, key=lambda h: (load[h], h))
        public_key = s["public_key"]
    time.sleep(c.boot_seconds)
    try:
        booted = c.hosts.boot(s["name"], public_key)
    except Exception as e:  # noqa: BLE001 (the server goes to ERROR with the reason, like Nova)
        log.exception("backing host for %s failed", sid)
        with c.lock:
            s.update(status="ERROR", updated=_now(), fault={"code": 500, "created": _now(),
                                                            "message": f"Build of instance {sid} aborted: {e}"})
        return
    with c.lock:
        if sid not in c.servers:  # deleted while it booted
            c.spawn(c.hosts.destroy, booted.handle)
            return
        c._backing[sid] = booted
        for p in c.ports.values():
            if p["device_id"] == sid:
                p["fixed_ips"][0]["ip_address"] = booted.address  # the host's real address is the server's
                break
        s.update(status="ACTIVE", updated=_now())


def _attach(c: CloudDouble, sid: str, vid: str, booted: BootedHost | None, device: str) -> None:
    with c.lock:
        v = c.volumes.get(vid)
        size = v["size"] if v else 0
    try:
        if booted is not None:
            c.hosts.attach(booted.handle, vid, size, device)
        ok = True
    except Exception:  # noqa: BLE001
        log.exception("attach of %s to %s failed", vid, sid)
        ok = False
    with c.lock:
        v = c.volumes.get(vid)
        if v is None:
            return
        if ok:
            v["status"] = "in-use"
        else:
            v["status"] = "error_attaching"


def _detach(c: CloudDouble, s: dict, vid: str) -> None:
    """Called with the lock held."""
    v = c.volumes.get(vid)
    s["volumes"].remove(vid)
    if v is None:
        return
    att = next((a for a in v["attachments"] if a["server_id"] == s["id"]), None)
    v["attachments"] = [a for a in v["attachments"] if a["server_id"] != s["id"]]
    v["status"] = "available" if not v["attachments"] else "in-use"
    booted = c._backing.get(s["id"])
    if booted is not None and att is not None:
        c.hosts.detach(booted.handle, vid, att["device"])


def _settle_volume(c: CloudDouble, vid: str) -> None:
    time.sleep(0.05)
    with c.lock:
        v = c.volumes.get(vid)
        if v is not None and v["status"] == "creating":
            v["status"] = "available"


def _remove_volume(c: CloudDouble, vid: str) -> None:
    time.sleep(0.05)
    c.hosts.delete_volume(vid)
    with c.lock:
        c.volumes.pop(vid, None)


def _extend(c: CloudDouble, vid: str, new: int, previous: str) -> None:
    try:
        c.hosts.resize(vid, new)
        ok = True
    except Exception:  # noqa: BLE001
        log.exception("extend of %s failed", vid)
        ok = False
    with c.lock:
        v = c.volumes.get(vid)
        if v is None:
            return
        if ok:
            v.update(size=new, status=previous, updated_at=_now())
        else:
            v["status"] = "error_extending"
