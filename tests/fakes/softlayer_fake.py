#!/usr/bin/python3
"""A strict, in-memory fake of the SoftLayer / IBM Cloud classic REST API (v3.1).

SoftLayer cannot run on the test machines, so this fake stands in for it. It follows the
published SoftLayer API reference (SLDN, https://sldn.softlayer.com/reference/services/):

  REST form         https://api.softlayer.com/rest/v3.1/{Service}[/{id}][/{method}].json;
                    arguments as POST {"parameters":[...]}; objectMask, objectFilter and
                    resultLimit=offset,limit query parameters; the total of a list in the
                    SoftLayer-Total-Items header; HTTP basic auth, API username + API key;
                    errors {"error": "...", "code": "SoftLayer_Exception_..."}
                    (softlayer/softlayer-python SoftLayer/transports/rest.py,
                    softlayer/softlayer-go session/rest.go, sl/errors.go)
  SoftLayer_Virtual_Guest   createObject, getObject, deleteObject, setTags, getPowerState,
                    getCreateObjectOptions (SLDN pages of those names;
                    softlayer-python SoftLayer/fixtures/SoftLayer_Virtual_Guest.py)
  SoftLayer_Account getVirtualGuests, getHardware (objectMask, objectFilter, resultLimit)
  SoftLayer_Hardware        createObject (fixedConfigurationPreset), getObject, setTags,
                    deleteObject, getCreateObjectOptions (SLDN SoftLayer_Hardware pages:
                    createObject answers id null and a globalIdentifier, "use the
                    globalIdentifier as your initialization parameter"; provisionDate set = ready)
  SoftLayer_Billing_Item    cancelItem(cancelImmediately, cancelAssociatedBillingItems, reason,
                    customerNote) (SLDN; softlayer-python HardwareManager.cancel_hardware)

It is strict where SoftLayer is (bitfusion's notes/PROVIDERS.md lists the behaviours): a
missing or wrong API key is 401 SoftLayer_Exception_InvalidLegacyToken "Invalid API token."
(the code and text softlayer/jumpgate maps to 401, and softlayer-go's session tests answer;
the HTTP status is not in SLDN).
createObject refuses (500 SoftLayer_Exception_Public, as SoftLayer answers validation errors)
a template without hostname, domain, datacenter.name, hourlyBillingFlag or localDiskFlag; one
with neither startCpus+maxMemory nor supplementalCreateObjectOptions.flavorKeyName; cpus or
memory that contradict the flavour; both or neither of operatingSystemReferenceCode and
blockDeviceTemplateGroup; an unknown datacenter, flavour or OS code; a hostname that is not a
DNS label; an unknown template property. An unknown id on getObject, deleteObject, setTags or
getPowerState is 404 SoftLayer_Exception_ObjectNotFound "Unable to find object with id of
'N'.". A new guest has provisionDate null and an activeTransaction until it is ready, then
powerState RUNNING and its primaryIpAddress/primaryBackendIpAddress. Relational properties
(powerState, datacenter, activeTransaction, tagReferences, billingItem...) appear only when
the objectMask names them, and a mask naming a property the type lacks, or a mask that does
not parse, is refused. objectFilter must be JSON keyed by the relational name
("virtualGuests", "hardware"), naming existing properties and known operations (_=, *=, ^=,
$=, ~, !~, >, <, >=, <=, in, orderBy, plain values and integers). setTags takes one
comma-separated string and replaces the set (SLDN does not say; UNCONFIRMED), tags being
[A-Za-z0-9 _.:-]{1,255}. deleteObject cancels at once and answers true; the guest is gone.

Flavours: B1_1X2X25, B1_2X4X100, BL1_1X2X100, C1_4X4X25, AC1_8X60X25 (1 x P100 GPU, as in
softlayer-python's fixtures) and AC2_8X60X25 (1 x V100 GPU: the GPU model is UNCONFIRMED).
Each carries totalMinimumHourlyFee and, for GPUs, a price item in category guest_pcie_device0.
Bare-metal presets: S1270_8GB_2X1TBSATA_NORAID (a real preset key name, from SLDN's examples)
and D2620V4_128GB_2X800GB_SSD_RAID_1_K80_GPU2 (named in the style of SoftLayer's GPU presets;
its description "2 x K80 GPU" is UNCONFIRMED). Hardware objects are addressed by their numeric
id or their globalIdentifier; a server is provisioned after --provision-seconds; deleteObject
works for hourly servers only (monthly ones are cancelled through their billing item);
cancelItem removes the billing item and the server stays listed, without one, until it is
reclaimed (--reclaim-seconds).

Fault injection, POST /_fake/faults with a JSON object (counts apply to the next N matching
requests): rate_limit (any API call answers SoftLayer_Exception_WebService_RateLimitExceeded,
HTTP rate_limit_status, 429 by default: the real status is UNCONFIRMED), capacity (the next
N createObject calls answer 500 SoftLayer_Exception_Virtual_Host_Pool_InsufficientResources;
code UNCONFIRMED), lost_create (the next N createObject calls make the guest but answer 502
with an HTML body, as a proxy that lost SoftLayer's answer would). GET /_fake/state lists every
guest (deleted ones too, with "gone": true) and counts requests, creates and API keys seen in
URLs (there must be none). POST /_fake/backdate {"id": N, "seconds": S} makes object N look
created S seconds ago.

  softlayer_fake.py [--port 0] [--port-file FILE] [--user NAME:APIKEY]
                    [--provision-seconds 0.3] [--reclaim-seconds 1.0]
  (--user defaults to $SOFTLAYER_FAKE_USER, so that the key need not be in the process list)
"""

import base64
import datetime
import json
import os
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import fake_http

DATACENTERS = {"dal13": 1854895, "wdc07": 2017603, "fra02": 449506, "lon06": 814994}
OS_CODES = {"UBUNTU_LATEST", "UBUNTU_22_64", "DEBIAN_LATEST", "CENTOS_LATEST"}


def flavor(key, fee, gpu=None):
    cpus, ram, disk = (int(x) for x in key.split("_")[1].split("X"))
    prices = [{"hourlyRecurringFee": "0", "item": {
        "keyName": "GUEST_CORE_%d" % cpus, "description": "%d x 2.0 GHz or higher Cores" % cpus,
        "itemCategory": {"categoryCode": "guest_core"}}}]
    if gpu:
        prices.append({"hourlyRecurringFee": "0", "item": {
            "keyName": "1_X_%s_GPU" % gpu, "description": "1 x %s GPU" % gpu,
            "itemCategory": {"categoryCode": "guest_pcie_device0"}}})
    return {"keyName": key, "name": key.replace("_", "."), "description": key,
            "totalMinimumHourlyFee": fee, "cpus": cpus, "memoryGb": ram, "diskGb": disk,
            "prices": prices}


FLAVORS = {f["keyName"]: f for f in [
    flavor("B1_1X2X25", "0.038"), flavor("B1_2X4X100", "0.076"), flavor("BL1_1X2X100", "0.048"),
    flavor("C1_4X4X25", "0.120"), flavor("AC1_8X60X25", "1.950", "P100"),
    flavor("AC2_8X60X25", "2.610", "V100")]}
TEMPLATE_KEYS = {"hostname", "domain", "startCpus", "maxMemory", "datacenter",
                 "hourlyBillingFlag", "localDiskFlag", "operatingSystemReferenceCode",
                 "blockDeviceTemplateGroup", "dedicatedAccountHostOnlyFlag",
                 "privateNetworkOnlyFlag", "networkComponents", "primaryNetworkComponent",
                 "primaryBackendNetworkComponent", "blockDevices", "userData", "sshKeys",
                 "postInstallScriptUri", "transientGuestFlag", "dedicatedHost",
                 "supplementalCreateObjectOptions", "tagReferences"}
HARDWARE_KEYS = {"hostname", "domain", "datacenter", "hourlyBillingFlag",
                 "operatingSystemReferenceCode", "fixedConfigurationPreset", "sshKeys",
                 "networkComponents", "postInstallScriptUri", "userData", "processorCoreAmount",
                 "memoryCapacity", "hardDrives", "privateNetworkOnlyFlag",
                 "primaryNetworkComponent", "primaryBackendNetworkComponent"}
HW_PRESETS = {p["keyName"]: p for p in [
    {"keyName": "S1270_8GB_2X1TBSATA_NORAID", "cores": 4, "memory": 8,
     "description": "Single Xeon 1270, 8GB Ram, 2x1TB SATA disks, Non-RAID",
     "totalMinimumHourlyFee": "0.338"},
    {"keyName": "D2620V4_128GB_2X800GB_SSD_RAID_1_K80_GPU2", "cores": 16, "memory": 128,
     "description": "Dual Xeon E5-2620 v4, 128GB Ram, 2x800GB SSD disks, RAID 1, 2 x K80 GPU",
     "totalMinimumHourlyFee": "2.914"}]}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
TAG_RE = re.compile(r"^[A-Za-z0-9 _.:-]{1,255}$")
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
OPERATORS = ("!~", "_=", "*=", "^=", "$=", ">=", "<=", "~", ">", "<")
# Properties that are relational (objects or lists): shown only when a mask names them.
RELATIONAL = {"datacenter", "powerState", "status", "activeTransaction",
              "lastOperatingSystemReload", "tagReferences", "billingItem", "operatingSystem"}


def iso(t):
    if t is None:
        return None
    return datetime.datetime.fromtimestamp(t, datetime.timezone(datetime.timedelta(
        hours=-6))).strftime("%Y-%m-%dT%H:%M:%S-06:00")


class LostAnswer(Exception):
    """The guest was made but the answer is lost on the way (502 from a proxy)."""


class FakeError(Exception):
    def __init__(self, status, message, code="SoftLayer_Exception_Public", headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


def not_found(oid):
    return FakeError(404, "Unable to find object with id of '%s'." % oid,
                     "SoftLayer_Exception_ObjectNotFound")


# ---- object masks: mask[a,b[c,d],e.f], mask.a, or a bare a,b ----

def parse_mask(text):
    """Returns {name: subtree or None}; raises FakeError when the mask does not parse."""
    s = text.strip()
    pos = [0]

    def fail():
        raise FakeError(500, "Object mask is invalid: %r" % text)

    def name():
        m = NAME_RE.match(s, pos[0])
        if not m:
            fail()
        pos[0] = m.end()
        return m.group(0)

    def item(tree):
        n = name()
        if pos[0] < len(s) and s[pos[0]] == ".":
            pos[0] += 1
            sub = tree.get(n) or {}
            item(sub)
            tree[n] = sub
        elif pos[0] < len(s) and s[pos[0]] == "[":
            pos[0] += 1
            sub = tree.get(n) or {}
            items(sub, "]")
            tree[n] = sub
        else:
            tree.setdefault(n, None)

    def items(tree, close):
        while True:
            item(tree)
            if pos[0] < len(s) and s[pos[0]] == ",":
                pos[0] += 1
                continue
            if close:
                if pos[0] >= len(s) or s[pos[0]] != close:
                    fail()
                pos[0] += 1
            return

    tree = {}
    if s.startswith("mask[") or s.startswith("mask."):
        pos[0] = 5
        if s[4] == "[":
            items(tree, "]")
        else:
            item(tree)
    else:
        items(tree, None)
    if pos[0] != len(s) or not tree:
        fail()
    return tree


def apply_mask(obj, tree, kind):
    if isinstance(obj, list):
        return [apply_mask(o, tree, kind) for o in obj]
    if not isinstance(obj, dict):
        return obj
    local = {k: v for k, v in obj.items() if k not in RELATIONAL and not k.startswith("_")
             and not isinstance(v, (dict, list)) and v is not None}
    # A mask that names local properties gets only those; one naming only relational ones
    # gets every local property besides.
    named = [k for k in (tree or {}) if k in local or (k in obj and k not in RELATIONAL
                                                        and not isinstance(obj[k], (dict, list)))]
    out = {k: local[k] for k in named if k in local} if named else local
    for key, sub in (tree or {}).items():
        if key not in obj or key.startswith("_"):
            raise FakeError(500, "Property '%s' not valid for '%s'." % (key, kind))
        value = obj[key]
        if value is None:
            continue
        out[key] = apply_mask(value, sub, kind) if isinstance(value, (dict, list)) else value
    return out


# ---- object filters ----

def check_filter(spec, obj, kind):
    """Whether obj matches spec (a dict of property -> spec or {"operation": ...})."""
    for key, sub in spec.items():
        if key not in obj or key.startswith("_"):
            raise FakeError(500, "Property '%s' not valid for '%s' in objectFilter." % (key, kind))
        if not isinstance(sub, dict):
            raise FakeError(500, "objectFilter for '%s' must be an object" % key)
        value = obj[key]
        if "operation" in sub:
            if not leaf_matches(sub, value):
                return False
            continue
        if isinstance(value, list):
            if not any(check_filter(sub, v, kind) for v in value if isinstance(v, dict)):
                return False
        elif isinstance(value, dict):
            if not check_filter(sub, value, kind):
                return False
        elif value is None:
            return False
        else:
            raise FakeError(500, "Property '%s' is not relational in objectFilter" % key)
    return True


def leaf_matches(spec, value):
    op = spec["operation"]
    if op == "orderBy":
        return True
    if op == "in":
        data = [o.get("value") for o in spec.get("options", []) if o.get("name") == "data"]
        if len(data) != 1 or not isinstance(data[0], list):
            raise FakeError(500, "objectFilter 'in' needs options [{name: data, value: [...]}]")
        return value is not None and str(value) in [str(v) for v in data[0]]
    if isinstance(op, bool) or not isinstance(op, (int, str)):
        raise FakeError(500, "objectFilter operation must be a string or an integer")
    if isinstance(op, int):
        return value == op
    if value is None:
        return False
    for o in OPERATORS:
        if op.startswith(o + " "):
            arg = op[len(o) + 1:]
            v = str(value)
            if o in (">", "<", ">=", "<="):
                try:
                    a, b = float(v), float(arg)
                except ValueError:
                    raise FakeError(500, "objectFilter %s needs a number" % o)
                return {">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[o]
            v, arg = v.lower(), arg.lower()
            return {"_=": v == arg, "*=": arg in v, "^=": v.startswith(arg),
                    "$=": v.endswith(arg), "~": arg in v, "!~": arg not in v}[o]
    return str(value) == op


def order_key(spec, prefix=()):
    for key, sub in spec.items():
        if isinstance(sub, dict) and sub.get("operation") == "orderBy":
            sort = [o.get("value") for o in sub.get("options", []) if o.get("name") == "sort"]
            return prefix + (key,), (sort and sort[0] and sort[0][0] == "DESC")
        if isinstance(sub, dict) and "operation" not in sub:
            found = order_key(sub, prefix + (key,))
            if found:
                return found
    return None


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.user, self.key = args.user.split(":", 1)
        self.guests = {}
        self.hardware = {}
        self.next_id = 81234567
        self.faults = {"rate_limit": 0, "rate_limit_status": 429, "capacity": 0,
                       "lost_create": 0}
        self.billing = {}  # billing item id -> ("guest" | "hardware", object id)
        self.stats = {"requests": 0, "creates": 0, "keys_in_urls": 0}

    def new_id(self):
        self.next_id += 1
        return self.next_id


def advance(g, args):
    if g.get("_reclaim_at") is not None and time.time() >= g["_reclaim_at"]:
        g["_gone"] = True
    if g["activeTransaction"] is not None and time.time() >= g["_ready_at"]:
        g["activeTransaction"] = None
        g["provisionDate"] = iso(time.time())
        if "powerState" in g:
            g["powerState"] = {"keyName": "RUNNING", "name": "Running"}
        g["primaryIpAddress"] = "169.45.%d.%d" % (g["id"] % 250, g["id"] % 200 + 2)
        g["primaryBackendIpAddress"] = "10.0.%d.%d" % (g["id"] % 250, g["id"] % 200 + 2)


class Handler(fake_http.DispatchMixin, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "softlayer_fake"
    disable_nagle_algorithm = True  # headers and body leave in two writes

    def log_message(self, *_):  # stay quiet; request lines would carry no secret anyway
        pass

    def send_json(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_raw(self, status, ctype, data):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_params(self):
        raw = self.raw_body
        if not raw:
            return []
        try:
            body = json.loads(raw)
        except ValueError:
            raise FakeError(500, "Unable to parse the request body as JSON")
        if not isinstance(body, dict) or not isinstance(body.get("parameters", []), list):
            raise FakeError(500, "The request body must be {\"parameters\": [...]}")
        return body.get("parameters", [])

    def handle_any(self, method):
        state = self.server.state
        parts = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        # Read the body whatever the answer, so that a kept-alive connection stays in step.
        length = int(self.headers.get("Content-Length") or 0)
        self.raw_body = self.rfile.read(length) if length else b""
        try:
            with state.lock:
                state.stats["requests"] += 1
                if state.key in self.path:
                    state.stats["keys_in_urls"] += 1
                answer = self.route(method, parts.path, state)
            if answer is not None:
                self.send_json(*answer)
        except FakeError as e:
            self.send_json(e.status, {"error": e.message, "code": e.code}, e.headers)
        except LostAnswer:
            self.send_raw(502, "text/html", b"<html><body>502 Bad Gateway</body></html>")
        except Exception as e:  # a bug in the fake: say so in SoftLayer's shape
            self.send_json(500, {"error": "fake: %r" % e, "code": "SoftLayer_Exception_Public"})

    def authenticate(self, state):
        header = self.headers.get("Authorization") or ""
        ok = False
        if header.startswith("Basic "):
            try:
                user, _, key = base64.b64decode(header[6:]).decode().partition(":")
                ok = user == state.user and key == state.key
            except (ValueError, UnicodeDecodeError):
                ok = False
        if not ok:
            raise FakeError(401, "Invalid API token.", "SoftLayer_Exception_InvalidLegacyToken")

    def route(self, method, path, state):
        if path.startswith("/_fake/"):
            return self.fake_control(method, path, state)
        m = re.match(r"^/rest/v3(?:\.1)?/(SoftLayer_[A-Za-z_]+)(?:/(\d+|[0-9a-f-]{36}))?"
                     r"(?:/([A-Za-z]+))?"
                     r"(\.json)?$", path)
        if not m:
            raise FakeError(404, "Service does not exist", "SoftLayer_Exception_Public")
        service, oid, call, _ = m.groups()
        self.authenticate(state)
        if state.faults["rate_limit"] > 0:
            state.faults["rate_limit"] -= 1
            raise FakeError(int(state.faults["rate_limit_status"]),
                            "Rate limit exceeded, please slow down.",
                            "SoftLayer_Exception_WebService_RateLimitExceeded")
        if call is None:  # softlayer-go leaves the method out for get/create/delete/edit
            call = {"GET": "getObject", "POST": "createObject", "DELETE": "deleteObject",
                    "PUT": "editObject"}.get(method, method)
        if call == "createObject" and method != "POST":
            raise FakeError(500, "createObject must be sent as POST")
        self.mask = parse_mask(self.query["objectMask"]) if "objectMask" in self.query else None
        self.filter = None
        if "objectFilter" in self.query:
            try:
                self.filter = json.loads(self.query["objectFilter"])
            except ValueError:
                raise FakeError(500, "Unable to parse object filter: invalid JSON")
            if not isinstance(self.filter, dict):
                raise FakeError(500, "objectFilter must be a JSON object")
        if service == "SoftLayer_Virtual_Guest":
            return self.guest_service(method, oid, call, state)
        if service == "SoftLayer_Hardware" or service == "SoftLayer_Hardware_Server":
            return self.hardware_service(method, oid, call, state)
        if service == "SoftLayer_Billing_Item" and call == "cancelItem":
            return self.cancel_item(method, oid, state)
        if service == "SoftLayer_Account" and oid is None:
            if call == "getVirtualGuests":
                return self.listing(state.guests, "virtualGuests", "SoftLayer_Virtual_Guest",
                                    state)
            if call == "getHardware":
                return self.listing(state.hardware, "hardware", "SoftLayer_Hardware", state)
        raise FakeError(500, "Function (\"%s\") is not a valid method for this service." % call)

    def fake_control(self, method, path, state):
        if path == "/_fake/faults" and method == "POST":
            state.faults.update(json.loads(self.raw_body or b"{}"))
            return 200, state.faults
        if path == "/_fake/backdate" and method == "POST":
            # Makes an object look created `seconds` ago (for tests of expiry windows).
            body = json.loads(self.raw_body or b"{}")
            obj = state.guests.get(body["id"]) or state.hardware.get(body["id"])
            if obj is None:
                raise not_found(body["id"])
            obj["createDate"] = iso(time.time() - float(body["seconds"]))
            return 200, {"createDate": obj["createDate"]}
        if path == "/_fake/state" and method == "GET":
            for g in state.guests.values():
                advance(g, state.args)
            for h in state.hardware.values():
                advance(h, state.args)
            return 200, {"guests": [dict({k: v for k, v in g.items() if not k.startswith("_")},
                                         gone=g["_gone"]) for g in state.guests.values()],
                         "hardware": [dict({k: v for k, v in h.items()
                                            if not k.startswith("_")}, gone=h["_gone"])
                                      for h in state.hardware.values()],
                         "stats": state.stats}
        raise FakeError(404, "no such fake control")

    # ---- SoftLayer_Virtual_Guest ----
    def live_guest(self, oid, state):
        g = state.guests.get(int(oid)) if oid is not None else None
        if g is None or g["_gone"]:
            raise not_found(oid)
        advance(g, state.args)
        return g

    def guest_service(self, method, oid, call, state):
        if call == "createObject" and oid is None:
            return self.create_guest(state)
        if call == "getCreateObjectOptions" and oid is None:
            return 200, self.create_options()
        if oid is None:
            raise FakeError(500, "%s needs an object id" % call)
        g = self.live_guest(oid, state)
        if call == "getObject" and method == "GET":
            return 200, apply_mask(g, self.mask, "SoftLayer_Virtual_Guest")
        if call == "getPowerState":
            return 200, g["powerState"]
        if call == "deleteObject" and method in ("GET", "DELETE", "POST"):
            g["_gone"] = True
            return 200, True
        if call == "setTags" and method == "POST":
            return self.set_tags(g, state)
        raise FakeError(500, "Function (\"%s\") is not a valid method for this service." % call)

    def set_tags(self, obj, state):
        params = self.read_params()
        if len(params) != 1 or not isinstance(params[0], str):
            raise FakeError(500, "setTags takes one string of comma-separated tags")
        tags = [t.strip() for t in params[0].split(",") if t.strip()]
        for t in tags:
            if not TAG_RE.match(t):
                raise FakeError(500, "Invalid tag name '%s'." % t)
        obj["tagReferences"] = [{"id": state.new_id(), "tag": {"id": i + 1, "name": t}}
                                for i, t in enumerate(dict.fromkeys(tags))]
        return 200, True

    def cancel_item(self, method, oid, state):
        if method != "POST" and method != "GET":
            raise FakeError(500, "cancelItem must be sent as POST")
        params = self.read_params()
        if len(params) != 4 or not all(isinstance(p, bool) for p in params[:2]) or \
                not all(isinstance(p, str) for p in params[2:]):
            raise FakeError(500, "cancelItem takes (boolean cancelImmediately, boolean "
                            "cancelAssociatedBillingItems, string reason, string customerNote)")
        if oid is None or int(oid) not in state.billing:
            raise not_found(oid)
        kind, object_id = state.billing.pop(int(oid))
        table = state.guests if kind == "guest" else state.hardware
        obj = table[object_id]
        obj["billingItem"] = None
        if kind == "guest":
            obj["_gone"] = True
        else:
            # Cancelled hardware stays on the account until the data center reclaims it.
            # Cancelled at once, or on the billing anniversary (not within a test's life).
            obj["_reclaim_at"] = time.time() + (state.args.reclaim_seconds if params[0]
                                                else 30 * 86400)
        return 200, True

    def create_options(self):
        return {
            "datacenters": [{"template": {"datacenter": {"name": n}}} for n in DATACENTERS],
            "operatingSystems": [{"template": {"operatingSystemReferenceCode": c},
                                  "itemPrice": {"item": {"description": c}}}
                                 for c in sorted(OS_CODES)],
            "flavors": [{"flavor": {k: v for k, v in f.items()
                                    if k not in ("cpus", "memoryGb", "diskGb")},
                         "template": {"supplementalCreateObjectOptions":
                                      {"flavorKeyName": f["keyName"]}}}
                        for f in FLAVORS.values()],
        }

    def check_common(self, t, kind, keys):
        if not isinstance(t, dict):
            raise FakeError(500, "createObject takes one %s template object" % kind)
        for k in t:
            if k not in keys:
                raise FakeError(500, "Property '%s' not valid for '%s'." % (k, kind))
        for k in ("hostname", "domain"):
            if not isinstance(t.get(k), str) or not t[k]:
                raise FakeError(500, "Property '%s' must be set to create an instance of '%s'."
                                % (k, kind))
        if not HOSTNAME_RE.match(t["hostname"]) or not all(
                HOSTNAME_RE.match(label) for label in t["domain"].split(".")):
            raise FakeError(500, "The hostname and domain must be alphanumeric strings that may "
                            "be separated by periods '.'; the only other allowed character is "
                            "'-', which may not start or end them (got hostname '%s')."
                            % t["hostname"])
        dc = (t.get("datacenter") or {}).get("name") if isinstance(t.get("datacenter"),
                                                                    dict) else None
        if not dc:
            raise FakeError(500, "Property 'datacenter.name' must be set to create an instance "
                            "of '%s'." % kind)
        if dc not in DATACENTERS:
            raise FakeError(500, "Location '%s' is not a valid location." % dc)
        if not isinstance(t.get("hourlyBillingFlag"), bool):
            raise FakeError(500, "Property 'hourlyBillingFlag' must be set to create an "
                            "instance of '%s'." % kind)
        os_code = t.get("operatingSystemReferenceCode")
        image = t.get("blockDeviceTemplateGroup")
        if os_code is not None and image is not None:
            raise FakeError(500, "operatingSystemReferenceCode and blockDeviceTemplateGroup "
                            "conflict; send one.")
        if os_code is None and image is None:
            raise FakeError(500, "Either operatingSystemReferenceCode or "
                            "blockDeviceTemplateGroup must be set.")
        if os_code is not None and os_code not in OS_CODES:
            raise FakeError(500, "Operating system reference code '%s' is not valid." % os_code)
        return dc

    def create_guest(self, state):
        params = self.read_params()
        if len(params) != 1:
            raise FakeError(500, "createObject takes exactly one parameter")
        t = params[0]
        dc = self.check_common(t, "SoftLayer_Virtual_Guest", TEMPLATE_KEYS)
        if not isinstance(t.get("localDiskFlag"), bool):
            raise FakeError(500, "Property 'localDiskFlag' must be set to create an instance of "
                            "'SoftLayer_Virtual_Guest'.")
        options = t.get("supplementalCreateObjectOptions") or {}
        key = options.get("flavorKeyName")
        cpus, memory = t.get("startCpus"), t.get("maxMemory")
        if key is not None:
            f = FLAVORS.get(key)
            if f is None:
                raise FakeError(500, "Invalid flavor key name '%s'." % key)
            if cpus is not None and cpus != f["cpus"] or (
                    memory is not None and memory != f["memoryGb"] * 1024):
                raise FakeError(500, "startCpus/maxMemory contradict flavor %s (%d cores, %d MB)"
                                % (key, f["cpus"], f["memoryGb"] * 1024))
            cpus, memory = f["cpus"], f["memoryGb"] * 1024
        elif not isinstance(cpus, int) or not isinstance(memory, int) or cpus < 1 or memory < 1:
            raise FakeError(500, "Property 'startCpus' and 'maxMemory' (or "
                            "supplementalCreateObjectOptions.flavorKeyName) must be set.")
        if state.faults["capacity"] > 0:
            state.faults["capacity"] -= 1
            raise FakeError(500, "Unable to fulfill the request: there is insufficient capacity "
                            "in %s for the requested configuration." % dc,
                            "SoftLayer_Exception_Virtual_Host_Pool_InsufficientResources")
        oid = state.new_id()
        now = time.time()
        state.stats["creates"] += 1
        g = {"id": oid, "globalIdentifier": str(uuid.uuid4()), "hostname": t["hostname"],
             "domain": t["domain"], "fullyQualifiedDomainName": t["hostname"] + "." + t["domain"],
             "startCpus": cpus, "maxCpu": cpus, "maxMemory": memory,
             "hourlyBillingFlag": t["hourlyBillingFlag"], "localDiskFlag": t["localDiskFlag"],
             "createDate": iso(now), "modifyDate": iso(now), "provisionDate": None,
             "statusId": 1001, "accountId": 1234, "primaryIpAddress": None,
             "primaryBackendIpAddress": None,
             "datacenter": {"id": DATACENTERS[dc], "name": dc, "longName": dc.upper()},
             "status": {"keyName": "ACTIVE", "name": "Active"},
             "powerState": {"keyName": "HALTED", "name": "Halted"},
             "activeTransaction": {"id": oid * 10, "transactionStatus": {
                 "name": "PROVISION_DATA_CLEANUP", "friendlyName": "Cleaning up"}},
             "lastOperatingSystemReload": {"id": oid * 10 - 1},
             "tagReferences": [],
             "billingItem": {"id": oid * 3, "hourlyRecurringFee": "0.1",
                             "orderItem": {"preset": {"keyName": key or ""}}},
             "operatingSystem": {"softwareLicense": {"softwareDescription": {
                 "referenceCode": t.get("operatingSystemReferenceCode") or "IMAGE"}}},
             "_gone": False, "_ready_at": now + state.args.provision_seconds}
        state.guests[oid] = g
        state.billing[oid * 3] = ("guest", oid)
        if state.faults["lost_create"] > 0:
            state.faults["lost_create"] -= 1
            raise LostAnswer()
        out = {k: g[k] for k in ("id", "globalIdentifier", "hostname", "domain", "startCpus",
                                 "maxMemory", "statusId", "createDate", "fullyQualifiedDomainName",
                                 "hourlyBillingFlag", "localDiskFlag")}
        return 201, out, {"Location": "/rest/v3.1/SoftLayer_Virtual_Guest/%d/getObject" % oid}

    # ---- listings ----
    def listing(self, table, root, kind, state):
        for o in table.values():
            advance(o, state.args)
        items = [o for o in table.values() if not o["_gone"]]
        if self.filter is not None:
            if set(self.filter) != {root}:
                raise FakeError(500, "objectFilter must be keyed by '%s'" % root)
            items = [o for o in items if check_filter(self.filter[root], o, kind)]
            order = order_key(self.filter[root])
            if order:
                path, desc = order

                def key(o):
                    for p in path:
                        o = (o or {}).get(p)
                    return (o is None, o)
                items.sort(key=key, reverse=desc)
        total = len(items)
        if "resultLimit" in self.query:
            m = re.match(r"^(\d+),(\d+)$", self.query["resultLimit"])
            if not m:
                raise FakeError(500, "resultLimit must be offset,limit")
            offset, limit = int(m.group(1)), int(m.group(2))
            items = items[offset:offset + limit]
        return (200, [apply_mask(o, self.mask, kind) for o in items],
                {"SoftLayer-Total-Items": str(total)})

    # ---- SoftLayer_Hardware (bare metal) ----
    def hardware_options(self):
        return {
            "datacenters": [{"template": {"datacenter": {"name": n}}} for n in DATACENTERS],
            "operatingSystems": [{"template": {"operatingSystemReferenceCode": c},
                                  "itemPrice": {"item": {"description": c}}}
                                 for c in sorted(OS_CODES)],
            "fixedConfigurationPresets": [
                {"preset": {k: p[k] for k in ("keyName", "description",
                                              "totalMinimumHourlyFee")},
                 "template": {"fixedConfigurationPreset": {"keyName": p["keyName"]}}}
                for p in HW_PRESETS.values()],
        }

    def live_hardware(self, oid, state):
        h = None
        if oid is not None and oid.isdigit():
            h = state.hardware.get(int(oid))
        elif oid is not None:
            h = next((x for x in state.hardware.values() if x["globalIdentifier"] == oid), None)
        if h is not None:
            advance(h, state.args)
        if h is None or h["_gone"]:
            raise not_found(oid)
        return h

    def create_hardware(self, state):
        params = self.read_params()
        if len(params) != 1:
            raise FakeError(500, "createObject takes exactly one parameter")
        t = params[0]
        dc = self.check_common(t, "SoftLayer_Hardware", HARDWARE_KEYS)
        preset = (t.get("fixedConfigurationPreset") or {}).get("keyName")
        if preset is None:
            if t.get("processorCoreAmount") is None or t.get("memoryCapacity") is None:
                raise FakeError(500, "Property 'fixedConfigurationPreset.keyName' (or "
                                "'processorCoreAmount' and 'memoryCapacity') must be set.")
            raise FakeError(500, "No hourly bare metal package matches %s cores and %s GB; use "
                            "a fixedConfigurationPreset." % (t["processorCoreAmount"],
                                                             t["memoryCapacity"]))
        if preset not in HW_PRESETS:
            raise FakeError(500, "Invalid preset key name '%s'." % preset)
        for k in ("processorCoreAmount", "memoryCapacity", "hardDrives"):
            if k in t:
                raise FakeError(500, "If a fixed configuration preset is used, '%s' must not be "
                                "set." % k)
        if state.faults["capacity"] > 0:
            state.faults["capacity"] -= 1
            raise FakeError(500, "No available servers for preset %s in %s." % (preset, dc),
                            "SoftLayer_Exception_Hardware_Order_InsufficientCapacity")
        p = HW_PRESETS[preset]
        oid = state.new_id()
        now = time.time()
        state.stats["creates"] += 1
        h = {"id": oid, "globalIdentifier": str(uuid.uuid4()), "hostname": t["hostname"],
             "domain": t["domain"], "fullyQualifiedDomainName": t["hostname"] + "." + t["domain"],
             "processorPhysicalCoreAmount": p["cores"], "memoryCapacity": p["memory"],
             "hourlyBillingFlag": t["hourlyBillingFlag"], "provisionDate": None,
             "createDate": iso(now), "primaryIpAddress": None, "primaryBackendIpAddress": None,
             "datacenter": {"id": DATACENTERS[dc], "name": dc, "longName": dc.upper()},
             "activeTransaction": {"id": oid * 10, "transactionStatus": {
                 "name": "OS_RELOAD_PROVISION", "friendlyName": "Installing OS"}},
             "tagReferences": [],
             "billingItem": {"id": oid * 3, "hourlyFlag": t["hourlyBillingFlag"],
                             "orderItem": {"preset": {"keyName": preset}}},
             "_gone": False, "_ready_at": now + state.args.provision_seconds,
             "_reclaim_at": None}
        state.hardware[oid] = h
        state.billing[oid * 3] = ("hardware", oid)
        if state.faults["lost_create"] > 0:
            state.faults["lost_create"] -= 1
            raise LostAnswer()
        # SLDN's example answer: no id yet, the globalIdentifier to address the server by.
        out = {k: h[k] for k in ("globalIdentifier", "hostname", "domain", "hourlyBillingFlag")}
        out.update(id=None, accountId=1234, operatingSystemReferenceCode=t.get(
            "operatingSystemReferenceCode"))
        return 201, out, {"Location": "/rest/v3.1/SoftLayer_Hardware/%s/getObject"
                          % h["globalIdentifier"]}

    def hardware_service(self, method, oid, call, state):
        if call == "createObject" and oid is None:
            return self.create_hardware(state)
        if call == "getCreateObjectOptions" and oid is None:
            return 200, self.hardware_options()
        if oid is None:
            raise FakeError(500, "%s needs an object id" % call)
        h = self.live_hardware(oid, state)
        if call == "getObject" and method == "GET":
            return 200, apply_mask(h, self.mask, "SoftLayer_Hardware")
        if call == "setTags" and method == "POST":
            return self.set_tags(h, state)
        if call == "deleteObject":
            if not h["hourlyBillingFlag"]:
                raise FakeError(500, "deleteObject cancels hourly servers only; cancel a monthly "
                                "server through its billing item.")
            state.billing.pop(h["billingItem"]["id"] if h["billingItem"] else None, None)
            h["billingItem"] = None
            h["_reclaim_at"] = time.time() + state.args.reclaim_seconds
            return 200, True
        raise FakeError(500, "Function (\"%s\") is not a valid method for this service." % call)


def main():
    parser = fake_http.arg_parser(__doc__)
    # The key may come from the environment, to keep it out of the process list.
    parser.add_argument("--user", default=os.environ.get(
        "SOFTLAYER_FAKE_USER", "SL123456:0123456789abcdef0123456789abcdef"))
    parser.add_argument("--provision-seconds", type=float, default=0.3)
    parser.add_argument("--reclaim-seconds", type=float, default=1.0)
    args = parser.parse_args()
    server = fake_http.Server((args.host, args.port), Handler)
    server.state = State(args)
    fake_http.serve(server, args.port_file, "softlayer_fake")

if __name__ == "__main__":
    sys.exit(main())
