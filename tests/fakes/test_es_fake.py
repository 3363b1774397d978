"""The Elasticsearch fake (es_fake.py) checked with Elastic's own Python client (Debian's
python3-elasticsearch 7.17): what the client expects of a real server -- the product check,
the shape of every answer, bulk item errors, retries on 429 -- the fake must do, and it must
refuse what Elasticsearch refuses.

  /usr/bin/python3 -m pytest -q tests/fakes/test_es_fake.py
"""

import gzip
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

try:
    import elasticsearch
    from elasticsearch import Elasticsearch, helpers
except ImportError:
    # A missing client may skip on a developer's machine; under CI it is a failure.
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("python3-elasticsearch is not installed (Debian package python3-elasticsearch)",
                allow_module_level=True)

HERE = os.path.dirname(os.path.abspath(__file__))


class Fake:
    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="es-fake-test-")
        port_file = os.path.join(self.dir, "port")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "es_fake.py"), "--port-file", port_file, *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("es_fake did not start: " + self.proc.stderr.read().decode())
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read())
        self.url = f"http://127.0.0.1:{self.port}"

    def raw(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        if isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, dict(r.getheaders()), (json.loads(data) if data else None)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def fake():
    f = Fake()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def fake8():
    f = Fake("--version", "8.11.0")
    yield f
    f.stop()


@pytest.fixture
def es(fake):
    return Elasticsearch(fake.url)


NDJSON = {"Content-Type": "application/x-ndjson"}


def test_client_product_check_and_info(es):
    info = es.info()
    assert info["version"]["number"] == "7.17.0"
    assert info["tagline"] == "You Know, for Search"


def test_bulk_helper_indexes_and_deterministic_ids_deduplicate(es):
    docs = [{"_index": "dedup", "_id": f"id-{i % 50}", "metric": "m", "value": float(i)}
            for i in range(100)]
    ok, errors = helpers.bulk(es, docs)
    assert ok == 100 and errors == []
    assert es.count(index="dedup")["count"] == 50
    hit = es.get(index="dedup", id="id-7")
    assert hit["_source"]["value"] == 57.0 and hit["_version"] == 2


def test_index_template_is_applied_on_first_write(es):
    es.indices.put_index_template(name="bf", body={
        "index_patterns": ["bf-*"], "priority": 200,
        "template": {"mappings": {"properties": {"metric": {"type": "keyword"},
                                                 "value": {"type": "double"},
                                                 "timestamp": {"type": "date_nanos"}}}}})
    es.index(index="bf-a", id="1", document={"metric": "m", "value": 1,
                                         "timestamp": "2023-11-14T22:13:20.123456789Z"})
    mapping = es.indices.get_mapping(index="bf-a")["bf-a"]["mappings"]["properties"]
    assert mapping["value"]["type"] == "double"
    assert mapping["timestamp"]["type"] == "date_nanos"
    assert es.indices.get_index_template(name="bf")["index_templates"][0]["name"] == "bf"


def test_mapping_conflicts_fail_their_item_only(es):
    actions = [
        {"_index": "conflict", "_id": "a", "labels": {"gpu": "h100"}},
        {"_index": "conflict", "_id": "b", "labels": {"gpu.model": "h100"}},  # gpu is a value
        {"_index": "conflict", "_id": "c", "labels": {"gpu": "a100", "gpu.model": "x"}},
        {"_index": "conflict", "_id": "d", "labels": {"": "empty key"}},
        {"_index": "conflict", "_id": "e", "labels": {"gpu": "v100"}},
    ]
    ok, errors = helpers.bulk(es, actions, raise_on_error=False)
    assert ok == 2
    assert sorted(e["index"]["_id"] for e in errors) == ["b", "c", "d"]
    assert all(e["index"]["status"] == 400 for e in errors)
    assert errors[0]["index"]["error"]["type"] == "mapper_parsing_exception"
    with pytest.raises(helpers.BulkIndexError):
        helpers.bulk(es, actions[1:2])


def test_values_the_mapping_refuses(es):
    es.indices.create(index="typed", body={"mappings": {"properties": {
        "value": {"type": "double"}, "ts": {"type": "date_nanos"},
        "k": {"type": "keyword"}, "short": {"type": "keyword", "ignore_above": 10}}}})
    ok, errors = helpers.bulk(es, [
        {"_index": "typed", "_id": "nan", "value": "NaN"},
        {"_index": "typed", "_id": "text", "value": "abc"},
        {"_index": "typed", "_id": "old", "ts": "1969-12-31T23:59:59Z"},
        {"_index": "typed", "_id": "huge", "k": "x" * 40000},
        {"_index": "typed", "_id": "long-ignored", "short": "x" * 40000},
        {"_index": "typed", "_id": "fine", "value": 1.5, "ts": "2023-01-01T00:00:00.000000001Z"},
    ], raise_on_error=False)
    assert ok == 2
    reasons = {e["index"]["_id"]: e["index"]["error"] for e in errors}
    assert "finite" in reasons["nan"]["caused_by"]["reason"]
    assert reasons["text"]["caused_by"]["type"] == "number_format_exception"
    assert "before the epoch" in reasons["old"]["caused_by"]["reason"]
    assert "immense term" in reasons["huge"]["reason"]


def test_search_count_sort_and_window(es):
    helpers.bulk(es, [{"_index": "search", "_id": f"{i:03d}", "metric": "m" if i % 2 else "n",
                       "n": i} for i in range(30)], refresh=True)
    assert es.count(index="search", body={"query": {"term": {"metric": "m"}}})["count"] == 15
    page = es.search(index="search", body={"query": {"match_all": {}}, "size": 5,
                                           "sort": [{"n": "desc"}]})
    assert [h["_source"]["n"] for h in page["hits"]["hits"]] == [29, 28, 27, 26, 25]
    assert page["hits"]["total"] == {"value": 30, "relation": "eq"}
    after = es.search(index="search", body={"size": 5, "sort": [{"n": "desc"}],
                                            "search_after": page["hits"]["hits"][-1]["sort"]})
    assert [h["_source"]["n"] for h in after["hits"]["hits"]] == [24, 23, 22, 21, 20]
    ids = es.search(index="search", body={"query": {"ids": {"values": ["001", "002"]}}})
    assert sorted(h["_id"] for h in ids["hits"]["hits"]) == ["001", "002"]
    with pytest.raises(elasticsearch.exceptions.RequestError) as e:
        es.search(index="search", body={"from": 9995, "size": 10})
    assert "Result window is too large" in str(e.value.info)
    with pytest.raises(elasticsearch.exceptions.NotFoundError):
        es.search(index="no-such-index")
    assert es.count(index="no-such-*")["count"] == 0


def test_bulk_helper_retries_items_rejected_with_429():
    f = Fake("--item-429", "0.5", "--seed", "7")
    try:
        es = Elasticsearch(f.url)
        docs = [{"_index": "retried", "_id": str(i), "v": i} for i in range(200)]
        ok = 0
        # This client retries 429 items only when it is not told to raise on the first error.
        for success, _ in helpers.streaming_bulk(es, docs, max_retries=20, initial_backoff=0.01,
                                                 max_backoff=0.05, chunk_size=50,
                                                 raise_on_error=False):
            ok += success
        assert ok == 200
        assert es.count(index="retried")["count"] == 200
        stats = f.raw("GET", "/_fake/stats")[2]
        assert stats["injected_item_429"] > 0
    finally:
        f.stop()


def test_whole_request_faults_are_what_the_client_sees():
    f = Fake("--bulk-429", "1.0")
    try:
        es = Elasticsearch(f.url, max_retries=0)
        with pytest.raises(elasticsearch.exceptions.TransportError) as e:
            es.bulk(body=[{"index": {"_index": "x", "_id": "1"}}, {"v": 1}])
        assert e.value.status_code == 429
        f.raw("POST", "/_fake/faults", json.dumps({"bulk_429": 0, "drop": 1.0}))
        with pytest.raises(elasticsearch.exceptions.ConnectionError):
            es.bulk(body=[{"index": {"_index": "x", "_id": "1"}}, {"v": 1}])
        f.raw("POST", "/_fake/faults", json.dumps({"drop": 0, "slow_ms": 300}))
        start = time.time()
        es.bulk(body=[{"index": {"_index": "x", "_id": "1"}}, {"v": 1}])
        assert time.time() - start >= 0.3
    finally:
        f.stop()


def test_what_the_bulk_api_refuses_outright(fake):
    ok_line = '{"index":{"_index":"raw","_id":"1"}}\n{"v":1}\n'
    assert fake.raw("POST", "/_bulk", ok_line, NDJSON)[0] == 200
    status, _, body = fake.raw("POST", "/_bulk", ok_line[:-1], NDJSON)
    assert status == 400 and "terminated by a newline" in body["error"]["reason"]
    status, _, body = fake.raw("POST", "/_bulk", '{"upsert":{"_index":"raw"}}\n{}\n', NDJSON)
    assert status == 400 and "expected one of [create, delete, index, update]" in \
        body["error"]["reason"]
    status, _, body = fake.raw("POST", "/_bulk", "not json\n", NDJSON)
    assert status == 400
    status, _, body = fake.raw("POST", "/_bulk", ok_line, {"Content-Type": "text/plain"})
    assert status == 406 and "is not supported" in body["error"]
    status, _, body = fake.raw("POST", "/_bulk", '{"index":{"_index":"Upper"}}\n{}\n', NDJSON)
    assert status == 200 and body["items"][0]["index"]["error"]["type"] == \
        "invalid_index_name_exception"
    status, _, body = fake.raw("POST", "/_bulk", '{"index":{"_index":"raw","_id":"1","x":1}}\n{}\n',
                               NDJSON)
    assert status == 400 and "unknown parameter [x]" in body["error"]["reason"]
    status, _, body = fake.raw("POST", "/_bulk", gzip.compress(ok_line.encode()),
                               dict(NDJSON, **{"Content-Encoding": "gzip"}))
    assert status == 200 and body["items"][0]["index"]["result"] == "updated"
    status, _, body = fake.raw("POST", "/_bulk", '{"create":{"_index":"raw","_id":"1"}}\n{}\n',
                               NDJSON)
    assert body["errors"] and body["items"][0]["create"]["status"] == 409
    assert "_type" in body["items"][0]["create"]  # 7.x still names the type


def test_templates_the_api_refuses(es, fake):
    status, _, body = fake.raw("PUT", "/_index_template/bad", json.dumps(
        {"index_patterns": ["x-*"], "templat": {}}), {"Content-Type": "application/json"})
    assert status == 400 and "unknown field [templat]" in body["error"]["reason"]
    status, _, body = fake.raw("PUT", "/_index_template/bad", json.dumps(
        {"index_patterns": ["x-*"], "template": {"mappings": {"properties": {
            "f": {"type": "strnig"}}}}}), {"Content-Type": "application/json"})
    assert status == 400 and "No handler for type [strnig]" in body["error"]["reason"]
    es.indices.put_index_template(name="one", body={"index_patterns": ["same-*"],
                                                    "priority": 5})
    with pytest.raises(elasticsearch.exceptions.RequestError):
        es.indices.put_index_template(name="two", body={"index_patterns": ["same-*"],
                                                        "priority": 5})
    es.indices.put_template(name="legacy", body={"index_patterns": ["old-*"], "order": 1,
                                                 "mappings": {"properties": {
                                                     "v": {"type": "double"}}}})
    es.index(index="old-1", id="1", document={"v": 1})
    assert es.indices.get_mapping(index="old-1")["old-1"]["mappings"]["properties"]["v"][
        "type"] == "double"


def test_version_8_mode(fake8):
    status, headers, info = fake8.raw("GET", "/")
    assert info["version"]["number"] == "8.11.0"
    assert info["version"]["minimum_wire_compatibility_version"] == "7.17.0"
    assert headers["X-Elastic-Product"] == "Elasticsearch"
    es = Elasticsearch(fake8.url)
    assert es.info()["version"]["number"] == "8.11.0"
    ok, _ = helpers.bulk(es, [{"_index": "eight", "_id": "1", "v": 1}])
    assert ok == 1
    status, _, body = fake8.raw("POST", "/_bulk",
                                '{"index":{"_index":"eight","_id":"2","_type":"_doc"}}\n{}\n',
                                NDJSON)
    assert status == 400 and "unknown parameter [_type]" in body["error"]["reason"]
    compat = "application/vnd.elasticsearch+x-ndjson;compatible-with=8"
    status, headers, body = fake8.raw(
        "POST", "/_bulk", '{"index":{"_index":"eight","_id":"3"}}\n{"v":3}\n',
        {"Content-Type": compat, "Accept": "application/vnd.elasticsearch+json;compatible-with=8"})
    assert status == 200 and "_type" not in body["items"][0]["index"]
    assert "compatible-with=8" in headers["Content-Type"]
    status, _, body = fake8.raw(
        "POST", "/_bulk", '{"index":{"_index":"eight","_id":"3"}}\n{"v":3}\n',
        {"Content-Type": compat, "Accept": "application/vnd.elasticsearch+json;compatible-with=7"})
    assert status == 400 and body["error"]["type"] == "media_type_header_exception"
    status, _, body = fake8.raw("POST", "/eight/_search",
                                json.dumps({"sort": [{"_id": "asc"}]}),
                                {"Content-Type": "application/json"})
    assert status == 400 and "Fielddata access on the _id field is disallowed" in \
        body["error"]["reason"]


def test_security_as_the_client_meets_it():
    f = Fake("--user", "elastic:changeme", "--api-key", "kid:ksecret")
    try:
        with pytest.raises(elasticsearch.exceptions.AuthenticationException):
            Elasticsearch(f.url).info()
        assert Elasticsearch(f.url, http_auth=("elastic", "changeme")).info()["tagline"]
        assert Elasticsearch(f.url, api_key=("kid", "ksecret")).info()["tagline"]
        with pytest.raises(elasticsearch.exceptions.AuthenticationException):
            Elasticsearch(f.url, http_auth=("elastic", "wrong")).info()
    finally:
        f.stop()
