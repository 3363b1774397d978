"""The SoftLayer fake (softlayer_fake.py) checked against what the real API does (SLDN reference
and notes in softlayer_fake.py's docstring): it must answer what clients expect and refuse what
SoftLayer refuses.

  /usr/bin/python3 -m pytest -q tests/fakes/test_softlayer_fake.py
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
import uuid
from urllib.parse import quote

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
USER, KEY = "SL999", "abcdef0123456789"
BASE = "/rest/v3.1/"


class Fake:
    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="softlayer-fake-test-")
        port_file = os.path.join(self.dir, "port")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "softlayer_fake.py"), "--port-file", port_file,
             "--user", USER + ":" + KEY, *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("softlayer_fake did not start: " +
                                   self.proc.stderr.read().decode())
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read())

    def call(self, method, path, params=None, query=None, key=KEY, raw=False):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {}
        if key is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(
                (USER + ":" + key).encode()).decode()
        body = None
        if params is not None:
            body = json.dumps({"parameters": params})
            headers["Content-Type"] = "application/json"
        target = path if path.startswith("/") else BASE + path
        if query:
            target += "?" + "&".join(k + "=" + quote(v) for k, v in query.items())
        conn.request(method, target, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        if raw:
            return r.status, dict(r.getheaders()), data
        return r.status, dict(r.getheaders()), (json.loads(data) if data else None)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def fake():
    f = Fake("--provision-seconds", "0.2")
    yield f
    f.stop()


def template(**extra):
    t = {"hostname": "bf-test", "domain": "example.com", "datacenter": {"name": "dal13"},
         "hourlyBillingFlag": True, "localDiskFlag": False,
         "operatingSystemReferenceCode": "UBUNTU_LATEST",
         "supplementalCreateObjectOptions": {"flavorKeyName": "B1_1X2X25"}}
    t.update(extra)
    return {k: v for k, v in t.items() if v is not None}


def create(fake, **extra):
    return fake.call("POST", "SoftLayer_Virtual_Guest/createObject.json", [template(**extra)])


MASK = ("mask[id,hostname,powerState,primaryIpAddress,provisionDate,"
        "activeTransaction[id,transactionStatus[name]],tagReferences[tag[name]]]")


def wait_ready(fake, oid, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, _, g = fake.call("GET", "SoftLayer_Virtual_Guest/%d/getObject.json" % oid,
                                 query={"objectMask": MASK})
        assert status == 200
        if "activeTransaction" not in g and g.get("powerState", {}).get("keyName") == "RUNNING":
            return g
        time.sleep(0.05)
    raise AssertionError("guest %d never became ready" % oid)


def test_wrong_or_missing_key_is_401_invalid_legacy_token(fake):
    for key in ("wrong", None):
        status, _, body = fake.call("GET", "SoftLayer_Account/getVirtualGuests.json", key=key)
        assert status == 401
        assert body["code"] == "SoftLayer_Exception_InvalidLegacyToken"
        assert "wrong" not in json.dumps(body)


def test_create_answers_201_then_provisions_to_running(fake):
    status, headers, g = create(fake)
    assert status == 201
    assert headers["Location"].endswith("/SoftLayer_Virtual_Guest/%d/getObject" % g["id"])
    assert g["hostname"] == "bf-test" and g["startCpus"] == 1 and g["maxMemory"] == 2048
    status, _, fresh = fake.call("GET", "SoftLayer_Virtual_Guest/%d/getObject.json" % g["id"],
                                 query={"objectMask": MASK})
    assert status == 200 and fresh["activeTransaction"]["id"] > 0
    assert "provisionDate" not in fresh and "primaryIpAddress" not in fresh
    ready = wait_ready(fake, g["id"])
    assert ready["primaryIpAddress"] and ready["provisionDate"]
    status, _, power = fake.call("GET", "SoftLayer_Virtual_Guest/%d/getPowerState.json" % g["id"])
    assert status == 200 and power["keyName"] == "RUNNING"


def test_relational_properties_only_with_a_mask(fake):
    _, _, g = create(fake)
    _, _, plain = fake.call("GET", "SoftLayer_Virtual_Guest/%d.json" % g["id"])
    assert "powerState" not in plain and "datacenter" not in plain and plain["id"] == g["id"]
    _, _, masked = fake.call("GET", "SoftLayer_Virtual_Guest/%d/getObject.json" % g["id"],
                             query={"objectMask": "mask[datacenter[name]]"})
    assert masked["datacenter"] == {"name": "dal13"}


@pytest.mark.parametrize("mask", ["mask[id,", "mask[id]]", "mask[]", "mask[id,,hostname]",
                                  "mask[no_such_property]", "mask[id[", "1abc"])
def test_malformed_or_unknown_masks_are_refused(fake, mask):
    _, _, g = create(fake)
    status, _, body = fake.call("GET", "SoftLayer_Virtual_Guest/%d/getObject.json" % g["id"],
                                query={"objectMask": mask})
    assert status == 500 and body["code"] == "SoftLayer_Exception_Public", body


@pytest.mark.parametrize("change, words", [
    ({"hostname": None}, "hostname"), ({"domain": None}, "domain"),
    ({"datacenter": None}, "datacenter.name"), ({"hourlyBillingFlag": None}, "hourlyBilling"),
    ({"localDiskFlag": None}, "localDiskFlag"),
    ({"supplementalCreateObjectOptions": None}, "startCpus"),
    ({"operatingSystemReferenceCode": None}, "blockDeviceTemplateGroup"),
    ({"blockDeviceTemplateGroup": {"globalIdentifier": "x"}}, "conflict"),
    ({"datacenter": {"name": "moon01"}}, "moon01"),
    ({"supplementalCreateObjectOptions": {"flavorKeyName": "ZZ9_1X1X1"}}, "ZZ9_1X1X1"),
    ({"startCpus": 4}, "contradict"), ({"hostname": "-bad-"}, "hostname"),
    ({"hostname": "a" * 64}, "hostname"), ({"domain": "bad_domain.com"}, "domain"),
    ({"colour": "blue"}, "colour"),
    ({"operatingSystemReferenceCode": "BEOS_5"}, "BEOS_5")])
def test_create_refuses_what_softlayer_refuses(fake, change, words):
    status, _, body = create(fake, **change)
    assert status == 500 and body["code"] == "SoftLayer_Exception_Public", body
    assert words in body["error"], body
    _, _, state = fake.call("GET", "/_fake/state")
    assert state["stats"]["creates"] == 0


def test_cpus_and_memory_without_flavour_and_gpu_flavour(fake):
    status, _, g = create(fake, supplementalCreateObjectOptions=None, startCpus=2,
                          maxMemory=4096)
    assert status == 201 and g["startCpus"] == 2
    status, _, g = create(fake, supplementalCreateObjectOptions={"flavorKeyName": "AC1_8X60X25"},
                          startCpus=8, maxMemory=61440)
    assert status == 201 and g["maxMemory"] == 61440


def test_create_options_list_flavours_with_gpus_and_prices(fake):
    status, _, options = fake.call("GET", "SoftLayer_Virtual_Guest/getCreateObjectOptions.json")
    assert status == 200
    flavors = {f["flavor"]["keyName"]: f["flavor"] for f in options["flavors"]}
    ac1 = flavors["AC1_8X60X25"]
    assert float(ac1["totalMinimumHourlyFee"]) > 0
    gpus = [p["item"] for p in ac1["prices"]
            if p["item"]["itemCategory"]["categoryCode"].startswith("guest_pcie_device")]
    assert gpus and gpus[0]["description"] == "1 x P100 GPU"
    assert {"dal13", "wdc07"} <= {d["template"]["datacenter"]["name"]
                                  for d in options["datacenters"]}


def test_unknown_ids_are_404_object_not_found(fake):
    for method, path, params in [("GET", "99/getObject.json", None),
                                 ("GET", "99/deleteObject.json", None),
                                 ("DELETE", "99.json", None),
                                 ("POST", "99/setTags.json", ["a"]),
                                 ("GET", "99/getPowerState.json", None)]:
        status, _, body = fake.call(method, "SoftLayer_Virtual_Guest/" + path, params)
        assert status == 404, path
        assert body == {"error": "Unable to find object with id of '99'.",
                        "code": "SoftLayer_Exception_ObjectNotFound"}


def test_delete_answers_true_and_the_guest_is_gone(fake):
    _, _, g = create(fake)
    status, _, body = fake.call("GET", "SoftLayer_Virtual_Guest/%d/deleteObject.json" % g["id"])
    assert status == 200 and body is True
    status, _, body = fake.call("GET", "SoftLayer_Virtual_Guest/%d/getObject.json" % g["id"])
    assert status == 404 and body["code"] == "SoftLayer_Exception_ObjectNotFound"
    _, _, listed = fake.call("GET", "SoftLayer_Account/getVirtualGuests.json")
    assert listed == []


def test_set_tags_replaces_the_set_and_filters_by_tag(fake):
    _, _, a = create(fake, hostname="a1")
    _, _, b = create(fake, hostname="b1")
    url = "SoftLayer_Virtual_Guest/%d/setTags.json"
    assert fake.call("POST", url % a["id"], ["x:1, bitfusion.creator:bitfusion"])[0] == 200
    assert fake.call("POST", url % a["id"], ["bitfusion.creator:bitfusion,y:2"])[0] == 200
    assert fake.call("POST", url % b["id"], ["other"])[0] == 200
    status, _, body = fake.call("POST", url % a["id"], ["bad/tag"])
    assert status == 500 and "bad/tag" in body["error"]
    status, _, body = fake.call("POST", url % a["id"], [["not", "a", "string"]])
    assert status == 500
    flt = {"virtualGuests": {"tagReferences": {"tag": {"name": {
        "operation": "in", "options": [{"name": "data", "value": ["bitfusion.creator:bitfusion"]}]
    }}}}}
    status, headers, listed = fake.call(
        "GET", "SoftLayer_Account/getVirtualGuests.json",
        query={"objectFilter": json.dumps(flt), "objectMask": "mask[id,tagReferences[tag[name]]]"})
    assert status == 200 and [g["id"] for g in listed] == [a["id"]]
    assert headers["SoftLayer-Total-Items"] == "1"
    assert sorted(r["tag"]["name"] for r in listed[0]["tagReferences"]) == [
        "bitfusion.creator:bitfusion", "y:2"]


def test_filters_on_hostname_and_ids_and_refuses_bad_ones(fake):
    for name in ("web1", "web2", "db1"):
        create(fake, hostname=name)
    def listed(flt):
        return fake.call("GET", "SoftLayer_Account/getVirtualGuests.json",
                         query={"objectFilter": json.dumps(flt)})
    status, _, got = listed({"virtualGuests": {"hostname": {"operation": "_= WEB1"}}})
    assert status == 200 and [g["hostname"] for g in got] == ["web1"]
    _, _, got = listed({"virtualGuests": {"hostname": {"operation": "^= web"},
                                          "id": {"operation": "orderBy", "options": [
                                              {"name": "sort", "value": ["DESC"]}]}}})
    assert [g["hostname"] for g in got] == ["web2", "web1"]
    _, _, got = listed({"virtualGuests": {"id": {"operation": got[0]["id"]}}})
    assert [g["hostname"] for g in got] == ["web2"]
    for bad in ({"hardware": {}}, {"virtualGuests": {"colour": {"operation": "red"}}},
                {"virtualGuests": {"id": {"operation": [1]}}}):
        status, _, body = listed(bad)
        assert status == 500 and body["code"] == "SoftLayer_Exception_Public", bad
    status, _, _ = fake.call("GET", "SoftLayer_Account/getVirtualGuests.json",
                             query={"objectFilter": "{not json"})
    assert status == 500


def test_result_limit_pages_with_total_items(fake):
    ids = [create(fake, hostname="p%d" % i)[2]["id"] for i in range(5)]
    seen = []
    for offset in range(0, 6, 2):
        status, headers, page = fake.call("GET", "SoftLayer_Account/getVirtualGuests.json",
                                          query={"resultLimit": "%d,2" % offset})
        assert status == 200 and headers["SoftLayer-Total-Items"] == "5"
        seen += [g["id"] for g in page]
    assert seen == ids
    status, _, _ = fake.call("GET", "SoftLayer_Account/getVirtualGuests.json",
                             query={"resultLimit": "two"})
    assert status == 500


def test_injected_rate_limit_capacity_and_lost_answers(fake):
    fake.call("POST", "/_fake/faults", None)
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=30)
    conn.request("POST", "/_fake/faults",
                 body=json.dumps({"rate_limit": 1, "capacity": 1, "lost_create": 1}))
    conn.getresponse().read()
    status, _, body = fake.call("GET", "SoftLayer_Account/getVirtualGuests.json")
    assert status == 429 and body["code"] == "SoftLayer_Exception_WebService_RateLimitExceeded"
    status, _, body = create(fake)
    assert status == 500
    assert body["code"] == "SoftLayer_Exception_Virtual_Host_Pool_InsufficientResources"
    status, _, data = fake.call("POST", "SoftLayer_Virtual_Guest/createObject.json",
                                [template(hostname="lost")], raw=True)
    assert status == 502 and data.startswith(b"<html>")
    _, _, listed = fake.call("GET", "SoftLayer_Account/getVirtualGuests.json")
    assert [g["hostname"] for g in listed] == ["lost"]


def test_unknown_method_and_service(fake):
    status, _, body = fake.call("GET", "SoftLayer_Virtual_Guest/getNothing.json")
    assert status == 500 and "getNothing" in body["error"]
    status, _, _ = fake.call("GET", "/rest/v3.1/Nope/getObject.json")
    assert status == 404


def hardware(**overrides):
    hw = {"hostname": "metal1", "domain": "example.com", "datacenter": {"name": "dal13"},
          "hourlyBillingFlag": True, "operatingSystemReferenceCode": "UBUNTU_LATEST",
          "fixedConfigurationPreset": {"keyName": "S1270_8GB_2X1TBSATA_NORAID"}}
    hw.update(overrides)
    return hw


def test_bare_metal_is_addressed_by_global_identifier_and_provisions(fake):
    status, _, h = fake.call("POST", "SoftLayer_Hardware/createObject.json", [hardware()])
    assert status == 201 and h["hostname"] == "metal1"
    assert h["id"] is None and len(h["globalIdentifier"]) == 36
    gid = h["globalIdentifier"]
    mask = {"objectMask": "mask[id,provisionDate,activeTransaction[id],"
                          "billingItem[id,hourlyFlag,orderItem[preset[keyName]]]]"}
    status, _, got = fake.call("GET", "SoftLayer_Hardware/%s/getObject.json" % gid, query=mask)
    assert status == 200 and "provisionDate" not in got and "activeTransaction" in got
    assert got["billingItem"]["orderItem"]["preset"]["keyName"].startswith("S1270")
    time.sleep(0.5)
    status, _, got = fake.call("GET", "SoftLayer_Hardware/%s/getObject.json" % gid, query=mask)
    assert got["provisionDate"] and "activeTransaction" not in got
    assert fake.call("POST", "SoftLayer_Hardware/%s/setTags.json" % gid, ["a:1,b:2"])[0] == 200
    status, _, listed = fake.call("GET", "SoftLayer_Account/getHardware.json", query={
        "objectMask": "mask[globalIdentifier,tagReferences[tag[name]]]",
        "objectFilter": json.dumps({"hardware": {"globalIdentifier": {"operation": gid}}})})
    assert [t["tag"]["name"] for t in listed[0]["tagReferences"]] == ["a:1", "b:2"]
    assert fake.call("GET", "SoftLayer_Hardware/%s/deleteObject.json" % gid)[0] == 200
    # Cancelled: listed without a billing item until it is reclaimed, then gone.
    status, _, got = fake.call("GET", "SoftLayer_Hardware/%s/getObject.json" % gid, query=mask)
    assert status == 200 and "billingItem" not in got
    time.sleep(1.2)
    assert fake.call("GET", "SoftLayer_Hardware/%s/getObject.json" % gid)[0] == 404


def test_bare_metal_refusals(fake):
    for bad, word in ((hardware(fixedConfigurationPreset={"keyName": "NOPE"}), "NOPE"),
                      (hardware(memoryCapacity=8), "memoryCapacity"),
                      (hardware(fixedConfigurationPreset=None, processorCoreAmount=4), "must be"),
                      (hardware(colour="red"), "colour"),
                      (hardware(datacenter={"name": "moon1"}), "moon1")):
        status, _, body = fake.call("POST", "SoftLayer_Hardware/createObject.json", [bad])
        assert status == 500 and word in body["error"], (bad, body)
    status, _, _ = fake.call("GET", "SoftLayer_Hardware/%s/getObject.json" % uuid.uuid4())
    assert status == 404


def test_monthly_bare_metal_is_cancelled_through_its_billing_item(fake):
    status, _, h = fake.call("POST", "SoftLayer_Hardware/createObject.json",
                             [hardware(hourlyBillingFlag=False)])
    gid = h["globalIdentifier"]
    status, _, body = fake.call("GET", "SoftLayer_Hardware/%s/deleteObject.json" % gid)
    assert status == 500 and "monthly" in body["error"]
    status, _, got = fake.call("GET", "SoftLayer_Hardware/%s/getObject.json" % gid,
                               query={"objectMask": "mask[billingItem[id]]"})
    item = got["billingItem"]["id"]
    status, _, body = fake.call("POST", "SoftLayer_Billing_Item/%d/cancelItem.json" % item,
                                [True])
    assert status == 500 and "cancelImmediately" in body["error"]
    status, _, ok = fake.call("POST", "SoftLayer_Billing_Item/%d/cancelItem.json" % item,
                              [True, False, "No longer needed", ""])
    assert status == 200 and ok is True
    assert fake.call("POST", "SoftLayer_Billing_Item/%d/cancelItem.json" % item,
                     [True, False, "No longer needed", ""])[0] == 404


def test_options_list_bare_metal_presets(fake):
    status, _, options = fake.call("GET", "SoftLayer_Hardware/getCreateObjectOptions.json")
    assert status == 200
    keys = [p["preset"]["keyName"] for p in options["fixedConfigurationPresets"]]
    assert "S1270_8GB_2X1TBSATA_NORAID" in keys
    assert all(float(p["preset"]["totalMinimumHourlyFee"]) > 0
               for p in options["fixedConfigurationPresets"])


def test_a_refused_post_leaves_a_kept_alive_connection_in_step(fake):
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=30)
    auth = {"Authorization": "Basic " + base64.b64encode(
        (USER + ":" + KEY).encode()).decode(), "Content-Type": "application/json"}
    conn.request("POST", BASE + "SoftLayer_Virtual_Guest/createObject.json",
                 body=json.dumps({"parameters": [template()]}),
                 headers=dict(auth, Authorization="Basic d3Jvbmc6a2V5"))
    r = conn.getresponse()
    r.read()
    assert r.status == 401
    conn.request("GET", BASE + "SoftLayer_Account/getVirtualGuests.json", headers=auth)
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read()) == []
    conn.close()
