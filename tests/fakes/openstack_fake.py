#!/usr/bin/python3
"""A strict, in-memory fake of OpenStack identity and compute (and Rackspace's identity v2.0).

Neither Rackspace Cloud Servers nor an OpenStack cloud can run on the test machines, so this fake
stands in for them. It follows these published references:

  Keystone v3       POST|GET|DELETE /v3/auth/tokens (password and application_credential methods,
                    X-Subject-Token, catalog[]{type,name,endpoints[]{interface,region,url}})
                    openstack/keystone api-ref/source/v3/authenticate-v3.inc
                    https://docs.openstack.org/api-ref/identity/v3/
  Rackspace v2.0    POST /v2.0/tokens with RAX-KSKEY:apiKeyCredentials or passwordCredentials
                    (access.token, access.serviceCatalog, compute entry "cloudServersOpenStack")
                    docs.rackspace.com Cloud Identity v2.0; apache/libcloud
                    libcloud/common/openstack_identity.py, compute/drivers/rackspace.py,
                    test/compute/fixtures/openstack/_v2_0__auth.json
  Nova (compute)    /servers, /servers/detail, /servers/{id}, /servers/{id}/metadata,
                    /servers/{id}/action (lock, unlock), /flavors/detail,
                    /flavors/{id}/os-extra_specs, /images, /images/detail
                    openstack/nova api-ref/source/servers.inc, parameters.yaml, metadata.inc,
                    api-guide/source/{microversions,faults,paginated_collections}.rst,
                    nova/api/openstack/wsgi.py, nova/api/openstack/compute/schemas/servers.py
                    https://docs.openstack.org/api-ref/compute/

It is strict where the real services are (bitfusion's notes/PROVIDERS.md lists the behaviours):
every compute call needs a valid, unexpired X-Auth-Token (else 401 unauthorized); a wrong
password, application credential or API key gets 401 at the identity service; POST /servers
refuses (400 badRequest) a missing name or flavorRef, an unknown key in "server", an imageRef
that is not a UUID, an unknown flavour, image or key_name, user_data that is not base64 or is
over 65535 bytes, a metadata key outside Nova's pattern [a-zA-Z0-9-_:. /]{1,255}, a value
over 255 bytes or not a string; more than 128 metadata items is 403 (Nova's default
metadata_items quota), as is
an exhausted instances quota. The create answer is 202 with only id, links, adminPass,
OS-DCF:diskConfig and security_groups; the server then shows BUILD (no addresses) and later
ACTIVE, or ERROR with fault{code,message,created,details}. DELETE answers 204, the server then
shows task_state "deleting" and afterwards 404 itemNotFound; a locked server gets 409
conflictingRequest. Lists page with limit and marker (servers_links rel=next), a marker that is
not a server gets 400, unknown filters are ignored as Nova ignores them, "name" is a regular
expression as in Nova. An unsupported microversion gets 406; the answer echoes the version.
/images/detail answers 404 from microversion 2.36 (the proxy API was removed), as in Nova.
Errors have Nova's shape {"<name>":{"code":N,"message":...}} and Keystone's
{"error":{"code","message","title"}}.

Where it is simpler than the real service: one project per user, no networks, no volumes,
statuses advance by wall-clock time (--build-seconds, --delete-seconds), filters other than name,
status and changes-since are ignored.

Fault injection, POST /_fake/faults with a JSON object (counts apply to the next N matching
requests): over_limit (answer compute calls with overLimit; over_limit_status 413 or 429,
retry_after seconds), unavailable (503 serviceUnavailable on compute calls), no_valid_host
(the next N created servers end in ERROR "No valid host was found."), error_after_create (the
next N creates make the server but answer 500 computeFault, as a lost answer would),
create_fail_after (the Nth create from now and every later one in the same batch answers 403
instances quota, to half-fail a batch). GET /_fake/state lists every server (deleted ones
too, with "gone": true) and counts requests; POST /_fake/expire_tokens expires all tokens.

  openstack_fake.py [--port 0] [--port-file FILE] [--user NAME:PASSWORD]
  (or OPENSTACK_FAKE_USER, OPENSTACK_FAKE_APP_CRED, OPENSTACK_FAKE_RAX_USER in the environment)
                    [--app-cred ID:SECRET] [--rax-user NAME:APIKEY] [--project NAME]
                    [--regions RegionOne,RegionTwo] [--token-seconds 3600]
                    [--build-seconds 0.3] [--delete-seconds 0.2] [--instances-quota 20]
"""

import argparse
import base64
import binascii
import datetime
import json
import os
import re
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_MICROVERSION = (2, 96)
RAX_REGIONS = ["DFW", "ORD", "IAD", "LON", "SYD", "HKG"]
NOVA_ERROR_NAMES = {400: "badRequest", 401: "unauthorized", 403: "forbidden",
                    404: "itemNotFound", 405: "badMethod", 406: "notAcceptable",
                    409: "conflictingRequest", 413: "overLimit", 429: "overLimit",
                    415: "badMediaType", 501: "notImplemented", 503: "serviceUnavailable"}
SERVER_KEYS = {"name", "flavorRef", "imageRef", "key_name", "metadata", "networks", "user_data",
               "security_groups", "availability_zone", "tags", "block_device_mapping_v2",
               "config_drive", "accessIPv4", "accessIPv6", "adminPass", "min_count",
               "max_count", "return_reservation_id", "OS-DCF:diskConfig", "description",
               "hostname", "host", "hypervisor_hostname", "trusted_image_certificates",
               "personality"}
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                     r"[0-9a-fA-F]{12}$")

METADATA_KEY_RE = re.compile(r"^[a-zA-Z0-9-_:. /]{1,255}$")

FLAVORS = [
    {"id": "1", "name": "m1.small", "ram": 2048, "vcpus": 1, "disk": 20, "extra_specs": {}},
    {"id": "2", "name": "m1.large", "ram": 8192, "vcpus": 4, "disk": 80,
     "extra_specs": {"hw:cpu_policy": "dedicated"}},
    {"id": "g1", "name": "g1.a100x2", "ram": 65536, "vcpus": 16, "disk": 200,
     "extra_specs": {"pci_passthrough:alias": "a100:2"}},
    {"id": "v1", "name": "v1.vgpu", "ram": 16384, "vcpus": 8, "disk": 100,
     "extra_specs": {"resources:VGPU": "1"}},
]
IMAGES = [
    {"id": "8a3b2c1d-0000-4000-8000-000000000001", "name": "ubuntu-22.04"},
    {"id": "8a3b2c1d-0000-4000-8000-000000000002", "name": "debian-12"},
]
KEYPAIRS = {"bitfusion"}


def now():
    return time.time()


def iso(t, z="Z"):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.000000" + z if z == "Z" else "%Y-%m-%dT%H:%M:%S.000+00:00")


class FakeError(Exception):
    def __init__(self, status, message, headers=None, style="nova", title=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.style = style
        self.title = title

    def body(self):
        if self.style == "keystone":
            return {"error": {"code": self.status, "message": self.message,
                              "title": self.title or "Unauthorized"}}
        name = NOVA_ERROR_NAMES.get(self.status, "computeFault")
        inner = {"code": self.status, "message": self.message}
        if name == "overLimit" and "Retry-After" in self.headers:
            inner["retryAfter"] = self.headers["Retry-After"]
        return {name: inner}


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.args = args
        self.users = {}
        if args.user:
            name, _, password = args.user.partition(":")
            self.users[name] = password
        self.app_creds = {}
        if args.app_cred:
            cid, _, secret = args.app_cred.partition(":")
            self.app_creds[cid] = secret
        self.rax_users = {}
        if args.rax_user:
            name, _, key = args.rax_user.partition(":")
            self.rax_users[name] = key
        self.project = args.project
        self.project_id = uuid.uuid5(uuid.NAMESPACE_URL, "project:" + args.project).hex
        self.regions = args.regions.split(",")
        self.tokens = {}  # token -> {"expires": t, "kind": "keystone"|"rax"}
        self.servers = {}  # id -> server dict (internal)
        self.order = []  # creation order of ids
        self.faults = {"over_limit": 0, "over_limit_status": 429, "retry_after": 1,
                       "unavailable": 0, "no_valid_host": 0, "error_after_create": 0,
                       "create_fail_after": -1}
        self.stats = {"requests": 0, "creates": 0, "create_attempts": 0, "throttled": 0,
                      "unavailable": 0}

    def new_token(self, kind):
        token = "gAAAA" + uuid.uuid4().hex + uuid.uuid4().hex
        expires = now() + self.args.token_seconds
        self.tokens[token] = {"expires": expires, "kind": kind}
        return token, expires


def advance(server, args):
    """Moves a server along BUILD -> ACTIVE|ERROR and deleting -> gone by wall-clock time."""
    t = now()
    if server["status"] == "BUILD" and t >= server["created"] + args.build_seconds:
        if server["will_fail"]:
            server["status"] = "ERROR"
            server["vm_state"] = "error"
            server["fault"] = {"code": 500, "created": iso(t),
                               "message": "No valid host was found. There are not enough hosts "
                                          "available.",
                               "details": "Traceback (most recent call last): NoValidHost"}
        else:
            server["status"] = "ACTIVE"
            server["vm_state"] = "active"
            server["power_state"] = 1
            server["launched_at"] = iso(t)
        server["task_state"] = None
        server["updated"] = t
    if server["deleting_since"] is not None and t >= server["deleting_since"] + \
            args.delete_seconds:
        server["gone"] = True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "openstack_fake"

    def log_message(self, *_):  # never log request lines: they carry no secrets, but stay quiet
        pass

    # ---- plumbing ----
    def send_json(self, status, body, headers=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        rid = "req-" + str(uuid.uuid4())
        self.send_header("X-Compute-Request-Id", rid)
        self.send_header("X-Openstack-Request-Id", rid)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def read_json(self, style="nova"):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if raw and ctype != "application/json":
            raise FakeError(415, "The media type %s is not supported, use application/json"
                            % (ctype or "(none)"), style=style, title="Unsupported Media Type")
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise FakeError(400, "Malformed request body", style=style, title="Bad Request")

    def handle_any(self, method):
        state = self.server.state
        parts = urlsplit(self.path)
        self.query = parse_qs(parts.query)
        path = parts.path
        try:
            with state.lock:
                state.stats["requests"] += 1
                body = self.route(method, path, state)
            if body is not None:
                self.send_json(*body)
        except FakeError as e:
            self.send_json(e.status, e.body(), e.headers)
        except Exception as e:  # a bug in the fake: answer in Nova's shape and say so
            self.send_json(500, {"computeFault": {"code": 500, "message": "fake: %r" % e}})

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_DELETE(self):
        self.handle_any("DELETE")

    # ---- routing ----
    def route(self, method, path, state):
        if path.startswith("/_fake/"):
            return self.fake_control(method, path, state)
        if path == "/v3/auth/tokens":
            return self.keystone(method, state)
        if path == "/v2.0/tokens":
            if method != "POST":
                raise FakeError(405, "Method not allowed")
            return self.rax_tokens(state)
        m = re.match(r"^/compute/([^/]+)/(v2\.1|v2)/([0-9a-f]+)(/.*)?$", path)
        if m:
            region, _, project, rest = m.groups()
            if region not in state.regions and region not in RAX_REGIONS:
                raise FakeError(404, "Not found")
            return self.compute(method, region, project, rest or "/", state)
        raise FakeError(404, "The resource could not be found.")

    def fake_control(self, method, path, state):
        if path == "/_fake/faults" and method == "POST":
            state.faults.update(self.read_json() or {})
            return 200, state.faults
        if path == "/_fake/state" and method == "GET":
            for s in state.servers.values():
                advance(s, state.args)
            return 200, {"servers": [self.public_server(s, state, internal=True)
                                     for s in (state.servers[i] for i in state.order)],
                         "stats": state.stats}
        if path == "/_fake/expire_tokens" and method == "POST":
            for t in state.tokens.values():
                t["expires"] = now() - 1
            return 200, {}
        raise FakeError(404, "no such fake control")

    # ---- identity ----
    def catalog_v3(self, state):
        base = "http://127.0.0.1:%d" % self.server.server_address[1]
        endpoints = []
        for region in state.regions:
            for interface in ("public", "internal", "admin"):
                endpoints.append({"id": uuid.uuid4().hex, "interface": interface,
                                  "region": region, "region_id": region,
                                  "url": "%s/compute/%s/v2.1/%s" % (base, region,
                                                                    state.project_id)})
        return [{"type": "identity", "name": "keystone", "id": uuid.uuid4().hex,
                 "endpoints": [{"id": uuid.uuid4().hex, "interface": "public",
                                "region": state.regions[0], "region_id": state.regions[0],
                                "url": base + "/v3"}]},
                {"type": "compute", "name": "nova", "id": uuid.uuid4().hex,
                 "endpoints": endpoints}]

    def keystone(self, method, state):
        unauthorized = FakeError(401, "The request you have made requires authentication.",
                                 style="keystone", title="Unauthorized")
        if method in ("GET", "DELETE"):
            caller = state.tokens.get(self.headers.get("X-Auth-Token") or "")
            subject = self.headers.get("X-Subject-Token") or ""
            if not caller or caller["expires"] < now():
                raise unauthorized
            if subject not in state.tokens or state.tokens[subject]["expires"] < now():
                raise FakeError(404, "Could not find token.", style="keystone",
                                title="Not Found")
            if method == "DELETE":
                del state.tokens[subject]
                return 204, None
            return 200, {"token": {"expires_at": iso(state.tokens[subject]["expires"])}}
        if method != "POST":
            raise FakeError(405, "Method not allowed", style="keystone", title="Not Allowed")
        bad = lambda msg: FakeError(400, msg, style="keystone", title="Bad Request")
        body = self.read_json(style="keystone")
        try:
            auth = body["auth"]
            identity = auth["identity"]
            methods = identity["methods"]
        except (TypeError, KeyError):
            raise bad("Invalid input for field 'identity': 'methods' is a required property")
        if not isinstance(methods, list) or not methods:
            raise bad("Invalid input for field 'identity/methods'")
        scope = auth.get("scope")
        if methods == ["password"]:
            user = (identity.get("password") or {}).get("user") or {}
            if "password" not in user or ("id" not in user and "name" not in user):
                raise bad("Invalid input for field 'identity/password/user'")
            if "name" in user and "id" not in user and not user.get("domain"):
                raise bad("Expecting to find domain in user. The server could not comply with "
                          "the request since it is either malformed or otherwise incorrect.")
            if state.users.get(user.get("name")) != user["password"]:
                raise unauthorized
            if scope is not None:
                if "project" in scope and "domain" in scope:
                    raise bad("Specify either a project or a domain scope, not both")
                project = scope.get("project") or {}
                if "name" in project and not project.get("domain"):
                    raise bad("Expecting to find domain in project.")
                if project.get("name", state.project) != state.project and \
                        project.get("id", state.project_id) != state.project_id:
                    raise FakeError(401, "The request you have made requires authentication.",
                                    style="keystone")
        elif methods == ["application_credential"]:
            cred = identity.get("application_credential") or {}
            if "secret" not in cred or "id" not in cred:
                raise bad("Invalid input for field 'identity/application_credential'")
            if state.app_creds.get(cred["id"]) != cred["secret"]:
                raise unauthorized
            if scope is not None:  # an application credential carries its own scope
                raise FakeError(401, "The request you have made requires authentication.",
                                style="keystone")
        else:
            raise unauthorized
        token, expires = state.new_token("keystone")
        body = {"token": {"expires_at": iso(expires), "issued_at": iso(now()),
                          "methods": methods,
                          "user": {"id": uuid.uuid4().hex, "name": "user",
                                   "domain": {"id": "default", "name": "Default"}},
                          "project": {"id": state.project_id, "name": state.project,
                                      "domain": {"id": "default", "name": "Default"}},
                          "roles": [{"id": uuid.uuid4().hex, "name": "member"}]}}
        if (scope is not None or methods == ["application_credential"]) and \
                "nocatalog" not in self.query:
            body["token"]["catalog"] = self.catalog_v3(state)
        return 201, body, {"X-Subject-Token": token}

    def rax_tokens(self, state):
        body = self.read_json()
        auth = (body or {}).get("auth") if isinstance(body, dict) else None
        if not isinstance(auth, dict):
            raise FakeError(400, "Invalid json request body")
        if "RAX-KSKEY:apiKeyCredentials" in auth:
            cred = auth["RAX-KSKEY:apiKeyCredentials"]
            if not isinstance(cred, dict) or "username" not in cred or "apiKey" not in cred:
                raise FakeError(400, "Invalid json request body")
            if state.rax_users.get(cred["username"]) != cred["apiKey"]:
                raise FakeError(401, "Username or api key is invalid.")
        elif "passwordCredentials" in auth:
            raise FakeError(401, "Username or password is invalid.")
        else:
            raise FakeError(400, "Invalid json request body")
        token, expires = state.new_token("rax")
        base = "http://127.0.0.1:%d" % self.server.server_address[1]
        tenant = state.project_id
        compute = {"type": "compute", "name": "cloudServersOpenStack",
                   "endpoints": [{"region": r, "tenantId": tenant, "versionId": "2",
                                  "publicURL": "%s/compute/%s/v2/%s" % (base, r, tenant),
                                  "internalURL": "%s/compute/%s/v2/%s" % (base, r, tenant)}
                                 for r in RAX_REGIONS]}
        legacy = {"type": "compute", "name": "cloudServers",
                  "endpoints": [{"tenantId": tenant, "versionId": "1.0",
                                 "publicURL": base + "/v1.0/" + tenant}]}
        return 200, {"access": {
            "token": {"id": token, "expires": iso(expires, "tz"),
                      "tenant": {"id": tenant, "name": tenant}},
            "user": {"id": "1", "name": cred["username"],
                     "roles": [{"name": "compute:default"}]},
            "serviceCatalog": [legacy, compute]}}

    # ---- compute ----
    def microversion(self):
        value = self.headers.get("OpenStack-API-Version")
        if value:
            kind, _, v = value.strip().partition(" ")
            if kind.lower() != "compute":
                return (2, 1), {}
        else:
            v = self.headers.get("X-OpenStack-Nova-API-Version")
        if not v:
            return (2, 1), {}
        v = v.strip()
        if v == "latest":
            version = MAX_MICROVERSION
        else:
            m = re.match(r"^(\d+)\.(\d+)$", v)
            if not m:
                raise FakeError(400, "Invalid API version request: %s" % v)
            version = (int(m.group(1)), int(m.group(2)))
        if version < (2, 1) or version > MAX_MICROVERSION:
            raise FakeError(406, "Version %s is not supported by the API. Minimum is 2.1 and "
                                 "maximum is %d.%d." % (v, *MAX_MICROVERSION))
        text = "%d.%d" % version
        return version, {"OpenStack-API-Version": "compute " + text,
                         "X-OpenStack-Nova-API-Version": text,
                         "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version"}

    def compute(self, method, region, project, rest, state):
        token = state.tokens.get(self.headers.get("X-Auth-Token") or "")
        if not token or token["expires"] < now():
            raise FakeError(401, "The request you have made requires authentication.")
        if project != state.project_id:
            raise FakeError(403, "Project ID in URL does not match the token's project")
        version, vheaders = self.microversion()
        if state.faults["over_limit"] > 0:
            state.faults["over_limit"] -= 1
            state.stats["throttled"] += 1
            status = int(state.faults["over_limit_status"])
            raise FakeError(status, "This request was rate-limited.",
                            {"Retry-After": str(state.faults["retry_after"])})
        if state.faults["unavailable"] > 0:
            state.faults["unavailable"] -= 1
            state.stats["unavailable"] += 1
            raise FakeError(503, "The service is temporarily unavailable.")
        result = self.compute_route(method, region, rest, version, state)
        headers = dict(vheaders)
        if len(result) == 3:
            headers.update(result[2])
        return result[0], result[1], headers

    def compute_route(self, method, region, rest, version, state):
        base = "http://127.0.0.1:%d/compute/%s/v2.1/%s" % (self.server.server_address[1],
                                                           region, state.project_id)
        if rest == "/servers" and method == "POST":
            return self.create_server(region, base, state)
        if rest in ("/servers", "/servers/detail") and method == "GET":
            return self.list_servers(region, base, rest.endswith("detail"), state)
        m = re.match(r"^/servers/([^/]+)(/metadata|/action)?$", rest)
        if m:
            server = self.find_server(region, m.group(1), state)
            if m.group(2) == "/metadata":
                return self.metadata(method, server)
            if m.group(2) == "/action":
                if method != "POST":
                    raise FakeError(405, "Method not allowed")
                body = self.read_json() or {}
                if "lock" in body:
                    server["locked"] = True
                elif "unlock" in body:
                    server["locked"] = False
                else:
                    raise FakeError(400, "There is no such action: %s" % ",".join(body))
                return 202, None
            if method == "GET":
                return 200, {"server": self.public_server(server, state)}
            if method == "DELETE":
                if server["locked"]:
                    raise FakeError(409, "Instance %s is locked" % server["id"])
                if server["deleting_since"] is None:
                    server["deleting_since"] = now()
                    server["task_state"] = "deleting"
                return 204, None
            raise FakeError(405, "Method not allowed")
        if rest == "/flavors/detail" and method == "GET":
            return 200, {"flavors": [self.public_flavor(f, version) for f in FLAVORS]}
        m = re.match(r"^/flavors/([^/]+)(/os-extra_specs)?$", rest)
        if m and method == "GET":
            flavor = next((f for f in FLAVORS if f["id"] == m.group(1)), None)
            if flavor is None:
                raise FakeError(404, "Flavor %s could not be found." % m.group(1))
            if m.group(2):
                return 200, {"extra_specs": dict(flavor["extra_specs"])}
            return 200, {"flavor": self.public_flavor(flavor, version)}
        if rest in ("/images", "/images/detail") and method == "GET":
            if version >= (2, 36):
                raise FakeError(404, "The resource could not be found.")
            return 200, {"images": [dict(i, status="ACTIVE", minDisk=0, minRam=0,
                                         metadata={}) for i in IMAGES]}
        raise FakeError(404, "The resource could not be found.")

    def public_flavor(self, flavor, version):
        out = {k: v for k, v in flavor.items() if k != "extra_specs"}
        out.update({"OS-FLV-EXT-DATA:ephemeral": 0, "swap": "", "rxtx_factor": 1.0,
                    "os-flavor-access:is_public": True, "links": []})
        if version >= (2, 61):
            out["extra_specs"] = dict(flavor["extra_specs"])
        return out

    def find_server(self, region, server_id, state):
        server = state.servers.get(server_id)
        if server is not None:
            advance(server, state.args)
        if server is None or server["region"] != region or server["gone"]:
            raise FakeError(404, "Instance %s could not be found." % server_id)
        return server

    def check_metadata(self, metadata, existing=0):
        if not isinstance(metadata, dict):
            raise FakeError(400, "Invalid input for field/attribute metadata. Value: %r. "
                                 "is not of type 'object'" % (metadata,))
        for k, v in metadata.items():
            # nova/api/validation/parameter_types.py: metadata keys match this pattern.
            if not METADATA_KEY_RE.match(k):
                raise FakeError(400, "Invalid input for field/attribute metadata. Value: %s. "
                                     "'%s' does not match any of the regexes: '^[a-zA-Z0-9-_:. "
                                     "/]{1,255}$'" % (k, k))
            if not isinstance(v, str):
                raise FakeError(400, "Invalid input for field/attribute %s. Value: %r. %r is "
                                     "not of type 'string'" % (k, v, v))
            if len(v.encode()) > 255:
                raise FakeError(400, "Invalid input for field/attribute %s. Value: %s. '%s' is "
                                     "too long" % (k, v, v))
        if len(metadata) + existing > 128:
            raise FakeError(403, "Quota exceeded for metadata items: Maximum number of metadata "
                                 "items exceeds 128")

    def create_server(self, region, base, state):
        state.stats["create_attempts"] += 1
        body = self.read_json()
        if not isinstance(body, dict) or not isinstance(body.get("server"), dict):
            raise FakeError(400, "Invalid input for field/attribute server. "
                                 "'server' is a required property")
        s = body["server"]
        unknown = sorted(set(s) - SERVER_KEYS)
        if unknown:
            raise FakeError(400, "Invalid input for field/attribute server. Additional "
                                 "properties are not allowed (%s were unexpected)"
                            % ", ".join("'%s'" % u for u in unknown))
        for key in ("name", "flavorRef"):
            if key not in s:
                raise FakeError(400, "Invalid input for field/attribute server. '%s' is a "
                                     "required property" % key)
        name = s["name"]
        if not isinstance(name, str) or not (1 <= len(name) <= 255) or name.strip() != name:
            raise FakeError(400, "Invalid input for field/attribute name. Value: %r." % (name,))
        image = s.get("imageRef")
        if image is None and not s.get("block_device_mapping_v2"):
            raise FakeError(400, "Missing imageRef attribute")
        if image is not None:
            if not isinstance(image, str) or not UUID_RE.match(image):
                raise FakeError(400, "Invalid input for field/attribute imageRef. Value: %s. "
                                     "'%s' is not a 'uuid'" % (image, image))
            if not any(i["id"] == image for i in IMAGES):
                raise FakeError(400, "Image %s could not be found." % image)
        flavor = str(s["flavorRef"]).rstrip("/").rsplit("/", 1)[-1]
        if not any(f["id"] == flavor for f in FLAVORS):
            raise FakeError(400, "Flavor %s could not be found." % s["flavorRef"])
        if "key_name" in s and s["key_name"] not in KEYPAIRS:
            raise FakeError(400, "Invalid key_name provided.")
        if "user_data" in s:
            try:
                data = base64.b64decode(s["user_data"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise FakeError(400, "User data needs to be valid base 64.")
            if len(s["user_data"]) > 65535:
                raise FakeError(400, "Invalid input for field/attribute user_data. "
                                     "Value: ... is too long")
            del data
        metadata = s.get("metadata", {})
        self.check_metadata(metadata)
        if state.faults["create_fail_after"] == 0:
            raise FakeError(403, "Quota exceeded for instances: Requested 1, but already used "
                                 "%d of %d instances" % (self.live(state),
                                                         self.live(state)))
        if state.faults["create_fail_after"] > 0:
            state.faults["create_fail_after"] -= 1
        if self.live(state) >= state.args.instances_quota:
            raise FakeError(403, "Quota exceeded for instances: Requested 1, but already used "
                                 "%d of %d instances" % (self.live(state),
                                                         state.args.instances_quota))
        server_id = str(uuid.uuid4())
        will_fail = state.faults["no_valid_host"] > 0
        if will_fail:
            state.faults["no_valid_host"] -= 1
        t = now()
        state.servers[server_id] = {
            "id": server_id, "name": name, "region": region, "flavor": flavor, "image": image,
            "metadata": dict(metadata), "key_name": s.get("key_name"), "created": t,
            "updated": t, "status": "BUILD", "vm_state": "building", "task_state": "spawning",
            "power_state": 0, "will_fail": will_fail, "fault": None, "locked": False,
            "deleting_since": None, "gone": False, "launched_at": None,
            "availability_zone": s.get("availability_zone", "nova")}
        state.order.append(server_id)
        state.stats["creates"] += 1
        if state.faults["error_after_create"] > 0:
            state.faults["error_after_create"] -= 1
            raise FakeError(500, "Unexpected API Error. The server was created but the answer "
                                 "was lost.")
        link = "%s/servers/%s" % (base, server_id)
        return 202, {"server": {"id": server_id,
                                "links": [{"rel": "self", "href": link},
                                          {"rel": "bookmark", "href": link}],
                                "adminPass": uuid.uuid4().hex[:12],
                                "OS-DCF:diskConfig": "MANUAL",
                                "security_groups": [{"name": "default"}]}}, {"Location": link}

    def live(self, state):
        return sum(1 for s in state.servers.values()
                   if not s["gone"] and s["deleting_since"] is None)

    def public_server(self, s, state, internal=False):
        advance(s, state.args)
        out = {"id": s["id"], "name": s["name"], "status": s["status"],
               "created": iso(s["created"]), "updated": iso(s["updated"]),
               "tenant_id": state.project_id, "metadata": dict(s["metadata"]),
               "key_name": s["key_name"], "flavor": {"id": s["flavor"], "links": []},
               "image": {"id": s["image"], "links": []} if s["image"] else "",
               "progress": 100 if s["status"] == "ACTIVE" else 0,
               "OS-EXT-STS:vm_state": s["vm_state"], "OS-EXT-STS:task_state": s["task_state"],
               "OS-EXT-STS:power_state": s["power_state"],
               "OS-SRV-USG:launched_at": s["launched_at"],
               "OS-EXT-AZ:availability_zone": s["availability_zone"],
               "locked": s["locked"], "addresses": {}}
        if s["status"] != "BUILD":
            n = int(s["id"].replace("-", "")[:4], 16)
            out["addresses"] = {"private": [{"addr": "10.0.%d.%d" % (n // 250 % 250,
                                                                       n % 250 + 2),
                                             "version": 4, "OS-EXT-IPS:type": "fixed"}]}
        if s["fault"]:
            out["fault"] = dict(s["fault"])
        if internal:
            out["region"] = s["region"]
            out["gone"] = s["gone"]
        return out

    def list_servers(self, region, base, detail, state):
        q = {k: v[-1] for k, v in self.query.items()}
        items = []
        for sid in state.order:
            s = state.servers[sid]
            advance(s, state.args)
            if s["region"] != region or s["gone"]:
                continue
            if "name" in q:
                try:
                    if not re.search(q["name"], s["name"]):
                        continue
                except re.error:
                    raise FakeError(400, "Invalid filter name: %s" % q["name"])
            if "status" in q and s["status"] != q["status"].upper():
                continue
            items.append(s)
        if "marker" in q:
            ids = [s["id"] for s in items]
            if q["marker"] not in ids:
                raise FakeError(400, "marker [%s] not found" % q["marker"])
            items = items[ids.index(q["marker"]) + 1:]
        limit = 1000
        if "limit" in q:
            try:
                limit = int(q["limit"])
            except ValueError:
                raise FakeError(400, "Invalid input for query parameters limit.")
            if limit < 0:
                raise FakeError(400, "Invalid input for query parameters limit.")
            limit = min(limit, 1000)
        page = items[:limit]
        if detail:
            out = [self.public_server(s, state) for s in page]
        else:
            out = [{"id": s["id"], "name": s["name"], "links": []} for s in page]
        body = {"servers": out}
        if len(items) > limit and page:
            body["servers_links"] = [{"rel": "next", "href": "%s/servers%s?limit=%d&marker=%s"
                                      % (base, "/detail" if detail else "", limit,
                                         page[-1]["id"])}]
        return 200, body

    def metadata(self, method, server):
        if method == "GET":
            return 200, {"metadata": dict(server["metadata"])}
        if method in ("POST", "PUT"):
            body = self.read_json()
            if not isinstance(body, dict) or "metadata" not in body:
                raise FakeError(400, "Malformed request body. metadata is a required property")
            new = body["metadata"]
            merged = {} if method == "PUT" else dict(server["metadata"])
            self.check_metadata(new)
            merged.update(new)
            self.check_metadata(merged)
            server["metadata"] = merged
            return 200, {"metadata": dict(merged)}
        raise FakeError(405, "Method not allowed")


class Server(ThreadingHTTPServer):
    daemon_threads = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the port here once listening")
    # Credentials may come from the environment, so that no secret is in the process list.
    parser.add_argument("--user", default=os.environ.get("OPENSTACK_FAKE_USER",
                                                         "demo:demo-password"))
    parser.add_argument("--app-cred", default=os.environ.get("OPENSTACK_FAKE_APP_CRED",
                                                             "appcred-id:appcred-secret"))
    parser.add_argument("--rax-user", default=os.environ.get("OPENSTACK_FAKE_RAX_USER",
                                                             "raxuser:rax-api-key"))
    parser.add_argument("--project", default="demo")
    parser.add_argument("--regions", default="RegionOne,RegionTwo")
    parser.add_argument("--token-seconds", type=float, default=3600)
    parser.add_argument("--build-seconds", type=float, default=0.3)
    parser.add_argument("--delete-seconds", type=float, default=0.2)
    parser.add_argument("--instances-quota", type=int, default=20)
    args = parser.parse_args()
    server = Server((args.host, args.port), Handler)
    server.state = State(args)

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.replace(tmp, args.port_file)
    print("openstack_fake listening on %s:%d" % (args.host, port), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
