"""The OpenStack/Rackspace fake (openstack_fake.py) checked against what the real services do
(Keystone v3, Rackspace identity v2.0, Nova; notes in openstack_fake.py's docstring): it must
answer what clients expect and refuse what the real APIs refuse.

  /usr/bin/python3 -m pytest -q tests/fakes/test_openstack_fake.py
"""

import base64
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlsplit

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGE = "8a3b2c1d-0000-4000-8000-000000000001"


class Fake:
    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="openstack-fake-test-")
        port_file = os.path.join(self.dir, "port")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "openstack_fake.py"), "--port-file", port_file,
             *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("openstack_fake did not start: " +
                                   self.proc.stderr.read().decode())
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read())

    def raw(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, dict(r.getheaders()), (json.loads(data) if data else None)

    def keystone_password(self, password="demo-password"):
        return self.raw("POST", "/v3/auth/tokens", {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "demo", "domain": {"name": "Default"}, "password": password}}},
            "scope": {"project": {"name": "demo", "domain": {"id": "default"}}}}})

    def login(self):
        status, headers, body = self.keystone_password()
        assert status == 201
        compute = next(s for s in body["token"]["catalog"] if s["type"] == "compute")
        url = next(e["url"] for e in compute["endpoints"]
                   if e["region"] == "RegionOne" and e["interface"] == "public")
        return headers["X-Subject-Token"], urlsplit(url).path

    def nova(self, method, path, body=None, headers=None):
        h = {"X-Auth-Token": self.token}
        h.update(headers or {})
        return self.raw(method, self.base + path, body, h)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def fake():
    f = Fake("--build-seconds", "0.2", "--delete-seconds", "0.1", "--instances-quota", "5")
    f.token, f.base = f.login()
    yield f
    f.stop()


def create(fake, **extra):
    server = {"name": "bf-test", "flavorRef": "1", "imageRef": IMAGE}
    server.update(extra)
    return fake.nova("POST", "/servers", {"server": server})


def wait_status(fake, server_id, wanted, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, _, body = fake.nova("GET", "/servers/" + server_id)
        if status == 200 and body["server"]["status"] in wanted:
            return body["server"]
        if status == 404 and "GONE" in wanted:
            return None
        time.sleep(0.05)
    raise AssertionError("server %s never reached %s" % (server_id, wanted))


# ---- identity ----

def test_keystone_password_token_in_header_and_catalog(fake):
    status, headers, body = fake.keystone_password()
    assert status == 201
    assert headers["X-Subject-Token"] and headers["X-Subject-Token"] not in json.dumps(body)
    assert body["token"]["expires_at"].endswith("Z")
    compute = [s for s in body["token"]["catalog"] if s["type"] == "compute"][0]
    assert {e["interface"] for e in compute["endpoints"]} == {"public", "internal", "admin"}
    assert {e["region"] for e in compute["endpoints"]} == {"RegionOne", "RegionTwo"}


def test_keystone_wrong_password_is_401_in_keystone_shape(fake):
    status, headers, body = fake.keystone_password("wrong")
    assert status == 401
    assert body["error"]["code"] == 401 and body["error"]["title"] == "Unauthorized"
    assert "X-Subject-Token" not in headers
    assert "wrong" not in json.dumps(body)


def test_keystone_refuses_project_and_domain_scope_and_missing_domain(fake):
    status, _, _ = fake.raw("POST", "/v3/auth/tokens", {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "demo", "password": "demo-password"}}}}})
    assert status == 400
    status, _, _ = fake.raw("POST", "/v3/auth/tokens", {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "demo", "domain": {"name": "Default"}, "password": "demo-password"}}},
        "scope": {"project": {"id": "x"}, "domain": {"id": "default"}}}})
    assert status == 400


def test_keystone_unscoped_token_has_no_catalog(fake):
    status, _, body = fake.raw("POST", "/v3/auth/tokens", {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "demo", "domain": {"name": "Default"}, "password": "demo-password"}}}}})
    assert status == 201 and "catalog" not in body["token"]


def test_keystone_application_credential(fake):
    good = {"auth": {"identity": {"methods": ["application_credential"],
                                  "application_credential": {"id": "appcred-id",
                                                             "secret": "appcred-secret"}}}}
    status, headers, body = fake.raw("POST", "/v3/auth/tokens", good)
    assert status == 201 and "catalog" in body["token"] and headers["X-Subject-Token"]
    good["auth"]["identity"]["application_credential"]["secret"] = "nope"
    assert fake.raw("POST", "/v3/auth/tokens", good)[0] == 401


def test_keystone_refuses_non_json(fake):
    status, _, body = fake.raw("POST", "/v3/auth/tokens", "auth=x",
                               {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415 and body["error"]["code"] == 415


def test_rackspace_api_key(fake):
    status, _, body = fake.raw("POST", "/v2.0/tokens", {"auth": {"RAX-KSKEY:apiKeyCredentials": {
        "username": "raxuser", "apiKey": "rax-api-key"}}})
    assert status == 200
    access = body["access"]
    assert access["token"]["id"] and access["token"]["tenant"]["id"]
    computes = [s for s in access["serviceCatalog"] if s["type"] == "compute"]
    assert {s["name"] for s in computes} == {"cloudServers", "cloudServersOpenStack"}
    cso = [s for s in computes if s["name"] == "cloudServersOpenStack"][0]
    assert {e["region"] for e in cso["endpoints"]} == {"DFW", "ORD", "IAD", "LON", "SYD", "HKG"}
    dfw = [e for e in cso["endpoints"] if e["region"] == "DFW"][0]
    # The token works against that compute endpoint.
    s, _, _ = fake.raw("GET", urlsplit(dfw["publicURL"]).path + "/flavors/detail",
                       headers={"X-Auth-Token": access["token"]["id"]})
    assert s == 200


def test_rackspace_bad_api_key_is_401(fake):
    status, _, body = fake.raw("POST", "/v2.0/tokens", {"auth": {"RAX-KSKEY:apiKeyCredentials": {
        "username": "raxuser", "apiKey": "bad-key"}}})
    assert status == 401 and body["unauthorized"]["code"] == 401
    assert "bad-key" not in json.dumps(body)
    assert fake.raw("POST", "/v2.0/tokens", {"auth": {}})[0] == 400


# ---- compute auth ----

def test_compute_needs_valid_unexpired_token(fake):
    status, _, body = fake.raw("GET", fake.base + "/servers/detail")
    assert status == 401 and body["unauthorized"]["code"] == 401
    assert fake.nova("GET", "/servers/detail", headers={"X-Auth-Token": "bogus"})[0] == 401
    assert fake.nova("GET", "/servers/detail")[0] == 200
    fake.raw("POST", "/_fake/expire_tokens")
    assert fake.nova("GET", "/servers/detail")[0] == 401


def test_microversion_out_of_range_is_406_and_echoed(fake):
    status, _, body = fake.nova("GET", "/flavors/detail",
                                headers={"OpenStack-API-Version": "compute 2.999"})
    assert status == 406 and "notAcceptable" in body
    status, headers, body = fake.nova("GET", "/flavors/detail",
                                      headers={"OpenStack-API-Version": "compute 2.61"})
    assert status == 200 and headers["OpenStack-API-Version"] == "compute 2.61"
    g1 = [f for f in body["flavors"] if f["id"] == "g1"][0]
    assert g1["extra_specs"] == {"pci_passthrough:alias": "a100:2"}
    # Before 2.61 extra specs are not inline; os-extra_specs has them.
    status, _, body = fake.nova("GET", "/flavors/detail")
    assert "extra_specs" not in body["flavors"][0]
    status, _, body = fake.nova("GET", "/flavors/v1/os-extra_specs")
    assert status == 200 and body["extra_specs"] == {"resources:VGPU": "1"}
    assert fake.nova("GET", "/flavors/nope/os-extra_specs")[0] == 404


def test_images_proxy_removed_at_2_36(fake):
    status, _, body = fake.nova("GET", "/images/detail")
    assert status == 200 and any(i["id"] == IMAGE for i in body["images"])
    status, _, body = fake.nova("GET", "/images/detail",
                                headers={"OpenStack-API-Version": "compute 2.36"})
    assert status == 404 and "itemNotFound" in body


# ---- servers ----

def test_create_answers_202_then_build_then_active(fake):
    status, headers, body = create(fake, metadata={"bitfusion:creator": "bitfusion"})
    assert status == 202 and "Location" in headers
    assert set(body["server"]) == {"id", "links", "adminPass", "OS-DCF:diskConfig",
                                   "security_groups"}
    sid = body["server"]["id"]
    _, _, got = fake.nova("GET", "/servers/" + sid)
    assert got["server"]["status"] == "BUILD" and got["server"]["addresses"] == {}
    active = wait_status(fake, sid, {"ACTIVE"})
    assert active["addresses"]["private"][0]["addr"]
    assert active["metadata"] == {"bitfusion:creator": "bitfusion"}
    assert "fault" not in active


@pytest.mark.parametrize("server,fragment", [
    ({"flavorRef": "1", "imageRef": IMAGE}, "'name' is a required property"),
    ({"name": "x", "imageRef": IMAGE}, "'flavorRef' is a required property"),
    ({"name": "x", "flavorRef": "1", "imageRef": IMAGE, "bogus": 1}, "Additional properties"),
    ({"name": "x", "flavorRef": "1", "imageRef": "ubuntu"}, "is not a 'uuid'"),
    ({"name": "x", "flavorRef": "1", "imageRef": "8a3b2c1d-0000-4000-8000-0000000000ff"},
     "Image"),
    ({"name": "x", "flavorRef": "999", "imageRef": IMAGE}, "Flavor 999 could not be found"),
    ({"name": "x", "flavorRef": "1", "imageRef": IMAGE, "key_name": "nope"}, "key_name"),
    ({"name": "x", "flavorRef": "1", "imageRef": IMAGE, "user_data": "not base64!"},
     "base 64"),
    ({"name": "x", "flavorRef": "1", "imageRef": IMAGE, "metadata": {"k" * 256: "v"}},
     "metadata"),
    ({"name": "x", "flavorRef": "1", "imageRef": IMAGE, "metadata": {"": "v"}}, "metadata"),
    ({"name": "x", "flavorRef": "1", "imageRef": IMAGE, "metadata": {"a@b": "v"}}, "metadata"),
    ({"name": "x", "flavorRef": "1", "imageRef": IMAGE, "metadata": {"k": "v" * 256}},
     "too long"),
    ({"name": "x", "flavorRef": "1", "imageRef": IMAGE, "metadata": {"k": 5}}, "string"),
])
def test_create_refuses_what_nova_refuses(fake, server, fragment):
    status, _, body = fake.nova("POST", "/servers", {"server": server})
    assert status == 400, body
    assert body["badRequest"]["code"] == 400 and fragment in body["badRequest"]["message"]
    assert fake.raw("GET", "/_fake/state")[2]["stats"]["creates"] == 0


def test_metadata_limits_are_bytes_and_count(fake):
    # 255 bytes is the limit, not 255 characters.
    status, _, _ = create(fake, metadata={"k": "é" * 128})
    assert status == 400
    status, _, _ = create(fake, metadata={"k": "v" * 255, "k" * 255: "v"})
    assert status == 202
    status, _, body = create(fake, metadata={"k%d" % i: "v" for i in range(129)})
    assert status == 403 and "metadata" in body["forbidden"]["message"]


def test_user_data_base64_accepted(fake):
    status, _, _ = create(fake, user_data=base64.b64encode(b"#!/bin/sh\n").decode(),
                          key_name="bitfusion")
    assert status == 202


def test_no_valid_host_ends_in_error_with_fault(fake):
    fake.raw("POST", "/_fake/faults", {"no_valid_host": 1})
    status, _, body = create(fake)
    assert status == 202
    server = wait_status(fake, body["server"]["id"], {"ERROR", "ACTIVE"})
    assert server["status"] == "ERROR"
    assert "No valid host was found" in server["fault"]["message"]
    assert server["fault"]["code"] == 500 and server["fault"]["created"]


def test_delete_is_204_then_deleting_then_404(fake):
    sid = create(fake)[2]["server"]["id"]
    status, _, body = fake.nova("DELETE", "/servers/" + sid)
    assert status == 204 and body is None
    assert wait_status(fake, sid, {"GONE"}) is None
    status, _, body = fake.nova("GET", "/servers/" + sid)
    assert status == 404 and body["itemNotFound"]["code"] == 404
    assert fake.nova("DELETE", "/servers/" + sid)[0] == 404


def test_locked_server_delete_is_409(fake):
    sid = create(fake)[2]["server"]["id"]
    assert fake.nova("POST", "/servers/%s/action" % sid, {"lock": None})[0] == 202
    status, _, body = fake.nova("DELETE", "/servers/" + sid)
    assert status == 409 and "conflictingRequest" in body
    fake.nova("POST", "/servers/%s/action" % sid, {"unlock": None})
    assert fake.nova("DELETE", "/servers/" + sid)[0] == 204


def test_list_filters_and_paging(fake):
    ids = [create(fake, name="bf-%d" % i)[2]["server"]["id"] for i in range(3)]
    create(fake, name="other")
    status, _, body = fake.nova("GET", "/servers/detail?name=^bf-&limit=2")
    assert status == 200 and [s["id"] for s in body["servers"]] == ids[:2]
    nxt = [link for link in body["servers_links"] if link["rel"] == "next"][0]["href"]
    status, _, body = fake.nova("GET", "/servers/detail?name=^bf-&limit=2&marker=" + ids[1])
    assert [s["id"] for s in body["servers"]] == ids[2:] and "servers_links" not in body
    assert "marker=" + ids[1] in nxt
    status, _, body = fake.nova("GET", "/servers/detail?marker=not-a-server")
    assert status == 400 and "badRequest" in body
    # Filters Nova does not know are ignored, as Nova ignores them.
    status, _, body = fake.nova("GET", "/servers/detail?bogus_filter=1")
    assert status == 200 and len(body["servers"]) == 4


def test_metadata_merge_and_replace(fake):
    sid = create(fake, metadata={"a": "1"})[2]["server"]["id"]
    status, _, body = fake.nova("POST", "/servers/%s/metadata" % sid, {"metadata": {"b": "2"}})
    assert status == 200 and body["metadata"] == {"a": "1", "b": "2"}
    status, _, body = fake.nova("PUT", "/servers/%s/metadata" % sid, {"metadata": {"c": "3"}})
    assert body["metadata"] == {"c": "3"}
    status, _, _ = fake.nova("POST", "/servers/%s/metadata" % sid, {"metadata": {"d": "x" * 300}})
    assert status == 400


def test_instances_quota_is_403(fake):
    for _ in range(5):
        assert create(fake)[0] == 202
    status, _, body = create(fake)
    assert status == 403 and "Quota exceeded for instances" in body["forbidden"]["message"]


@pytest.mark.parametrize("code", [413, 429])
def test_injected_throttling_has_retry_after(fake, code):
    fake.raw("POST", "/_fake/faults", {"over_limit": 1, "over_limit_status": code,
                                       "retry_after": 2})
    status, headers, body = create(fake)
    assert status == code and headers["Retry-After"] == "2"
    assert body["overLimit"]["code"] == code and body["overLimit"]["retryAfter"] == "2"
    assert create(fake)[0] == 202
    assert fake.raw("GET", "/_fake/state")[2]["stats"]["creates"] == 1


def test_injected_unavailable_and_lost_answer(fake):
    fake.raw("POST", "/_fake/faults", {"unavailable": 1, "error_after_create": 1})
    status, _, body = create(fake)
    assert status == 503 and "serviceUnavailable" in body
    status, _, body = create(fake, name="lost")
    assert status == 500 and "computeFault" in body
    # The server exists even though the answer was an error.
    _, _, body = fake.nova("GET", "/servers/detail?name=^lost$")
    assert len(body["servers"]) == 1


def test_create_fail_after_half_fails_a_batch(fake):
    fake.raw("POST", "/_fake/faults", {"create_fail_after": 2})
    assert [create(fake)[0] for _ in range(4)] == [202, 202, 403, 403]
