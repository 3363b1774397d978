#!/usr/bin/python3
"""A strict, in-memory fake of Elasticsearch's REST API, for bitfusion's tests and benchmarks.

Elasticsearch cannot run on the test machines, so this fake stands in for it. It is written from
Elastic's published reference, Elasticsearch Guide 7.17 and 8.x:

  root API            GET /                       (REST APIs > Root; the client's product check)
  bulk API            POST|PUT /_bulk, /<index>/_bulk
                      https://www.elastic.co/guide/en/elasticsearch/reference/7.17/docs-bulk.html
  search API          GET|POST /<target>/_search  .../reference/7.17/search-search.html
  count API           GET|POST /<target>/_count   .../reference/7.17/search-count.html
  index templates     PUT|GET|DELETE|HEAD /_index_template/<name> (composable, 7.8+)
                      .../reference/7.17/index-templates.html, indices-put-template.html
                      PUT|GET|DELETE|HEAD /_template/<name> (legacy)
                      .../reference/7.17/indices-templates-v1.html
  indices             PUT|HEAD|DELETE /<index>, GET /<index>/_mapping, POST /<index>/_refresh,
                      GET /<index>/_doc/<id>, GET /_cluster/health
  compatibility       8.x REST compatibility headers (Accept/Content-Type
                      "application/vnd.elasticsearch+json;compatible-with=7|8")
                      .../reference/8.11/rest-api-compatibility.html
  dynamic mapping     .../reference/7.17/dynamic-field-mapping.html, dynamic-templates.html,
                      dots-in-field-names, ignore-above.html, date_nanos.html

It is strict where Elasticsearch is: a bulk body must be NDJSON ending with a newline; actions
are index, create, update or delete with known metadata (8.x refuses _type); Content-Type must be
JSON or NDJSON; index names must be valid; a document whose fields contradict the index mapping
(a field that is both an object and a value -- what dotted keys such as "gpu" and "gpu.model"
do --, text in a numeric field, NaN in a double, a date_nanos before 1970, a keyword longer than
32766 bytes without ignore_above, an empty field name) is refused with the same error type and
status, and its neighbours in the request are not; from + size is limited to 10000; sorting on
_id is refused in 8.x. Documents live in memory keyed by _id (index with an existing _id
replaces it, create refuses it), so deterministic ids deduplicate. Where the fake is simpler
than Elasticsearch (one shard, immediate refresh, term queries compare whole values, no
analysis), it says so in the code.

Fault injection, from the command line or POST /_fake/faults with a JSON object of the same
names (underscores): --bulk-429 F (answer that fraction of bulk requests with 429
es_rejected_execution_exception), --item-429 F (reject that fraction of bulk items with 429
inside a 200 answer with errors: true), --bulk-500 F, --drop F (close the connection without an
answer), --slow-ms N (delay every bulk answer). GET /_fake/stats counts requests, documents and
injected faults; POST /_fake/reset forgets everything. These /_fake/ paths are the fake's own.

Security, as Elasticsearch's: with --user NAME:PASSWORD and/or --api-key ID:KEY every request
must carry that basic auth or "Authorization: ApiKey base64(ID:KEY)", else 401
security_exception; with --tls-cert/--tls-key the fake speaks HTTPS only.

  es_fake.py [--port 0] [--port-file FILE] [--version 7.17.0|8.11.0] [--seed N] [faults...]
             [--user NAME:PASSWORD] [--api-key ID:KEY] [--tls-cert PEM --tls-key PEM]
             [--data FILE]   (load at start, save on SIGTERM/SIGINT)
"""

import base64
import fnmatch
import functools
import gzip
import json
import math
import os
import random
import re
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlsplit

import fake_http

MAX_RESULT_WINDOW = 10000
MAX_TERM_BYTES = 32766
DEFAULT_FIELDS_LIMIT = 1000
FIELD_TYPES = {"keyword", "text", "long", "integer", "short", "byte", "double", "float",
               "half_float", "scaled_float", "boolean", "date", "date_nanos", "object", "nested",
               "ip", "flattened", "constant_keyword", "wildcard", "unsigned_long"}
INTEGER_TYPES = {"long", "integer", "short", "byte", "unsigned_long"}
FLOAT_TYPES = {"double", "float", "half_float", "scaled_float"}
ISO_DATE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$")
NANOS_MAX = 9223372036854775807  # 2262-04-11T23:47:16.854775807Z
INDEX_BAD_CHARS = set('\\/*?"<>| ,#:')


class EsError(Exception):
    """An error Elasticsearch answers with: type, reason, HTTP status."""

    def __init__(self, status, etype, reason, **extra):
        super().__init__(reason)
        self.status, self.etype, self.reason, self.extra = status, etype, reason, extra

    def body(self):
        cause = dict({"type": self.etype, "reason": self.reason}, **self.extra)
        return {"error": dict(cause, root_cause=[cause]), "status": self.status}

    def item(self):
        return dict({"type": self.etype, "reason": self.reason}, **self.extra)


def parse_date(value, nanos):
    """Nanoseconds since the epoch for a date field's value (strict_date_optional_time or
    epoch_millis), or EsError as date and date_nanos fields refuse it."""
    field_type = "date_nanos" if nanos else "date"
    if isinstance(value, bool) or value is None:
        raise EsError(400, "mapper_parsing_exception", f"failed to parse date field [{value}]")
    if isinstance(value, (int, float)):
        ns = int(value * 1_000_000)
    else:
        m = ISO_DATE.match(str(value))
        if m is None:
            if re.fullmatch(r"-?\d+", str(value)):
                ns = int(value) * 1_000_000
            else:
                raise EsError(400, "mapper_parsing_exception",
                              f"failed to parse date field [{value}] with format "
                              f"[strict_date_optional_time||epoch_millis]")
        else:
            y, mo, d, h, mi, s, frac, tz = m.groups()
            import calendar
            try:
                secs = calendar.timegm((int(y), int(mo), int(d), int(h or 0), int(mi or 0),
                                        int(s or 0), 0, 0, 0))
            except (ValueError, OverflowError) as e:
                raise EsError(400, "mapper_parsing_exception",
                              f"failed to parse date field [{value}]: {e}")
            if not (1 <= int(mo) <= 12 and 1 <= int(d) <= 31 and int(h or 0) < 24):
                raise EsError(400, "mapper_parsing_exception", f"failed to parse date field [{value}]")
            if tz and tz != "Z":
                sign = 1 if tz[0] == "+" else -1
                digits = tz[1:].replace(":", "")
                secs -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
            ns = secs * 1_000_000_000 + int((frac or "0").ljust(9, "0"))
    if nanos and ns < 0:
        raise EsError(400, "mapper_parsing_exception",
                      f"failed to parse field of type [{field_type}]",
                      caused_by={"type": "illegal_argument_exception",
                                 "reason": f"date[{value}] is before the epoch in 1970 and cannot "
                                           "be stored in nanosecond resolution"})
    if nanos and ns > NANOS_MAX:
        raise EsError(400, "mapper_parsing_exception",
                      f"failed to parse field of type [{field_type}]",
                      caused_by={"type": "illegal_argument_exception",
                                 "reason": f"date[{value}] is after 2262-04-11T23:47:16.854775807 "
                                           "and cannot be stored in nanosecond resolution"})
    return ns


def valid_index_name(name):
    if not name or name in (".", "..") or name != name.lower() or len(name.encode()) > 255:
        return "must be lowercase" if name != name.lower() else "is not a valid name"
    if name[0] in "-_+":
        return "must not start with '_', '-', or '+'"
    if any(c in INDEX_BAD_CHARS for c in name):
        return 'must not contain the following characters [ , ", *, \\, <, |, ,, >, /, ?, #, :]'
    return None


def check_index_name(name):
    why = valid_index_name(name)
    if why:
        raise EsError(400, "invalid_index_name_exception", f"Invalid index name [{name}], {why}",
                      index=name)


class Index:
    """One index: its mapping (a tree of {"type": ..., "properties": {...}}) and documents."""

    def __init__(self, name, mappings=None, settings=None):
        self.name = name
        self.uuid = uuid.uuid4().hex[:22]
        self.settings = settings or {}
        mappings = mappings or {}
        self.properties = json.loads(json.dumps(mappings.get("properties", {})))
        self.dynamic_templates = mappings.get("dynamic_templates", [])
        self.dynamic = mappings.get("dynamic", True)
        self.date_detection = mappings.get("date_detection", True)
        self.docs = {}
        self.seq_no = 0
        self.fields_limit = int(self.setting("index.mapping.total_fields.limit",
                                             DEFAULT_FIELDS_LIMIT))

    def setting(self, key, default):
        node = self.settings
        if key in node:
            return node[key]
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def mapping_json(self):
        out = {"properties": self.properties}
        if self.dynamic_templates:
            out["dynamic_templates"] = self.dynamic_templates
        return out

    def count_fields(self, props=None):
        n = 0
        for spec in (self.properties if props is None else props).values():
            n += 1 + len(spec.get("fields", {}))
            if "properties" in spec:
                n += self.count_fields(spec["properties"])
        return n

    # ---- documents against the mapping ------------------------------------------------------

    def dynamic_mapping(self, path, name, value):
        """The mapping a new field gets: the first dynamic template that matches, else the
        default dynamic mapping."""
        if isinstance(value, bool):
            kind = "boolean"
        elif isinstance(value, int):
            kind = "long"
        elif isinstance(value, float):
            kind = "double"
        elif isinstance(value, dict):
            kind = "object"
        else:
            kind = "string"
        for entry in self.dynamic_templates:
            ((_, tpl),) = entry.items()
            if "match_mapping_type" in tpl and tpl["match_mapping_type"] not in ("*", kind):
                continue
            if "path_match" in tpl and not fnmatch.fnmatchcase(path, tpl["path_match"]):
                continue
            if "path_unmatch" in tpl and fnmatch.fnmatchcase(path, tpl["path_unmatch"]):
                continue
            if "match" in tpl and not fnmatch.fnmatchcase(name, tpl["match"]):
                continue
            if "unmatch" in tpl and fnmatch.fnmatchcase(name, tpl["unmatch"]):
                continue
            mapping = dict(tpl["mapping"])
            if mapping.get("type") in (None, "{dynamic_type}"):
                mapping["type"] = {"string": "text", "long": "long", "double": "float",
                                   "boolean": "boolean", "object": "object"}[kind]
            if kind == "object" and mapping["type"] == "object":
                mapping.setdefault("properties", {})
            return mapping
        if kind == "object":
            return {"type": "object", "properties": {}}
        if kind == "string":
            if self.date_detection and isinstance(value, str) and ISO_DATE.match(value):
                return {"type": "date"}
            return {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
        return {"type": {"double": "float"}.get(kind, kind)}

    @staticmethod
    def expand(source, path=""):
        """The document with dotted field names expanded into objects, as Elasticsearch reads
        them; a name that is both a value and an object is a mapping conflict."""
        out = {}
        for key, value in source.items():
            full = f"{path}{key}"
            if key == "":
                raise EsError(400, "mapper_parsing_exception",
                              "field name cannot be an empty string")
            if key.strip() == "":
                raise EsError(400, "mapper_parsing_exception",
                              f"field name cannot contain only whitespace: ['{full}']")
            parts = key.split(".")
            if any(p == "" for p in parts):
                raise EsError(400, "illegal_argument_exception",
                              f"object field starting or ending with a [.] makes object "
                              f"resolution ambiguous: [{full}]")
            if isinstance(value, dict):
                value = Index.expand(value, full + ".")
            node = out
            for i, part in enumerate(parts[:-1]):
                sub = node.get(part)
                if sub is None:
                    sub = node[part] = {}
                elif not isinstance(sub, dict):
                    here = ".".join(parts[:i + 1])
                    raise EsError(400, "mapper_parsing_exception",
                                  f"Could not dynamically add mapping for field [{path}{key}]. "
                                  f"Existing mapping for [{path}{here}] must be of type object "
                                  f"but found a concrete value")
                node = sub
            last = parts[-1]
            if last in node:
                old = node[last]
                if isinstance(old, dict) and isinstance(value, dict):
                    old.update(value)  # both objects: merged, as Elasticsearch does
                    continue
                raise EsError(400, "mapper_parsing_exception",
                              f"object mapping for [{full}] tried to parse field [{full}] as "
                              "object, but found a concrete value"
                              if isinstance(old, dict) or isinstance(value, dict) else
                              f"Duplicate field '{full}'")
            node[last] = value
        return out

    def check_value(self, path, spec, value, doc_id):
        t = spec.get("type", "object")
        if value is None:
            return
        if isinstance(value, list):
            for v in value:
                self.check_value(path, spec, v, doc_id)
            return
        preview = str(value)[:20]
        if t in ("object", "nested"):
            if not isinstance(value, dict):
                raise EsError(400, "mapper_parsing_exception",
                              f"object mapping for [{path}] tried to parse field [{path}] as "
                              "object, but found a concrete value")
            return
        if isinstance(value, dict):
            if t == "flattened":
                return
            raise EsError(400, "mapper_parsing_exception",
                          f"failed to parse field [{path}] of type [{t}] in document with id "
                          f"'{doc_id}'. Preview of field's value: '{preview}'",
                          caused_by={"type": "illegal_state_exception",
                                     "reason": "Can't get text on a START_OBJECT"})
        if t in ("keyword", "wildcard", "constant_keyword"):
            text = json.dumps(value) if isinstance(value, bool) else str(value)
            ignore_above = spec.get("ignore_above")
            if ignore_above is not None and len(text) > ignore_above:
                return  # kept in _source, not indexed
            if len(text.encode("utf-8", "surrogatepass")) > MAX_TERM_BYTES:
                raise EsError(400, "illegal_argument_exception",
                              f"Document contains at least one immense term in field=\"{path}\" "
                              "(whose UTF8 encoding is longer than the max length 32766), all "
                              "of which were skipped.  Please correct the analyzer to not "
                              "produce such terms.")
        elif t in INTEGER_TYPES or t in FLOAT_TYPES:
            try:
                if isinstance(value, bool):
                    raise ValueError
                number = float(value)
            except (TypeError, ValueError):
                raise EsError(400, "mapper_parsing_exception",
                              f"failed to parse field [{path}] of type [{t}] in document with "
                              f"id '{doc_id}'. Preview of field's value: '{preview}'",
                              caused_by={"type": "number_format_exception",
                                         "reason": f"For input string: \"{value}\""})
            if not math.isfinite(number):
                raise EsError(400, "mapper_parsing_exception",
                              f"failed to parse field [{path}] of type [{t}] in document with "
                              f"id '{doc_id}'. Preview of field's value: '{preview}'",
                              caused_by={"type": "illegal_argument_exception",
                                         "reason": f"[{t}] supports only finite values, but got "
                                                   f"[{value}]"})
        elif t in ("date", "date_nanos"):
            parse_date(value, t == "date_nanos")
        elif t == "boolean":
            if value not in (True, False, "true", "false", ""):
                raise EsError(400, "mapper_parsing_exception",
                              f"failed to parse field [{path}] of type [boolean] in document "
                              f"with id '{doc_id}'. Preview of field's value: '{preview}'",
                              caused_by={"type": "illegal_argument_exception",
                                         "reason": "Failed to parse value [" + str(value) +
                                                   "] as only [true] or [false] are allowed."})

    def map_document(self, doc, doc_id):
        """Checks `doc` against the mapping; returns the new mapping (a copy) with the fields
        it adds, or None when it adds none; raises EsError. Nothing changes until the caller
        commits the result."""
        expanded = self.expand(doc)

        class NewField(Exception):
            pass

        def walk(obj, props, prefix, grow, added):
            for name, value in obj.items():
                path = prefix + name
                spec = props.get(name)
                if spec is None:
                    if value is None or value == []:
                        continue
                    probe = value[0] if isinstance(value, list) else value
                    if self.dynamic in (False, "false"):
                        continue
                    if self.dynamic == "strict":
                        raise EsError(400, "strict_dynamic_mapping_exception",
                                      f"mapping set to strict, dynamic introduction of [{name}] "
                                      f"within [{prefix[:-1] or '_doc'}] is not allowed")
                    if not grow:
                        raise NewField()
                    spec = props[name] = self.dynamic_mapping(path, name, probe)
                    added[0] += 1 + len(spec.get("fields", {}))
                self.check_value(path, spec, value, doc_id)
                if spec.get("type", "object") in ("object", "nested"):
                    sub = spec.get("properties")
                    if sub is None:
                        if not grow:
                            raise NewField()
                        sub = spec["properties"] = {}
                    for element in (value if isinstance(value, list) else [value]):
                        if isinstance(element, dict):
                            walk(element, sub, path + ".", grow, added)

        # Most documents add no field: checked against the mapping as it is, without a copy.
        try:
            walk(expanded, self.properties, "", False, [0])
            return None
        except NewField:
            pass
        props = json.loads(json.dumps(self.properties))
        added = [0]
        walk(expanded, props, "", True, added)
        if added[0] and self.count_fields(props) > self.fields_limit:
            raise EsError(400, "illegal_argument_exception",
                          f"Limit of total fields [{self.fields_limit}] has been exceeded while "
                          f"adding new fields [{added[0]}]")
        return props if added[0] else None


def field_values(source, path):
    """Values of `path` in a document: objects and dotted names both lead there."""
    out = []

    def walk(node, parts):
        if not parts:
            out.extend(node if isinstance(node, list) else [node])
            return
        if isinstance(node, list):
            for n in node:
                walk(n, parts)
            return
        if not isinstance(node, dict):
            return
        for i in range(1, len(parts) + 1):
            key = ".".join(parts[:i])
            if key in node:
                walk(node[key], parts[i:])

    walk(source, path.split("."))
    return [v for v in out if v is not None]


class Store:
    def __init__(self, version, seed):
        self.version = version
        self.major = int(version.split(".")[0])
        self.lock = threading.RLock()
        self.indices = {}
        self.index_templates = {}
        self.legacy_templates = {}
        self.rng = random.Random(seed)
        self.faults = {"bulk_429": 0.0, "item_429": 0.0, "bulk_500": 0.0, "drop": 0.0,
                       "slow_ms": 0}
        self.stats = {"requests": 0, "bulk_requests": 0, "bulk_items": 0, "injected_bulk_429": 0,
                      "injected_item_429": 0, "injected_bulk_500": 0, "injected_drop": 0,
                      "rejected_items": 0}

    # ---- templates ---------------------------------------------------------------------------

    def template_for(self, name):
        """(mappings, settings) for a new index: the composable template of highest priority
        that matches, else the legacy templates that match, merged by order."""
        best = None
        for tname, t in self.index_templates.items():
            if any(fnmatch.fnmatchcase(name, p) for p in t["index_patterns"]):
                if best is None or t.get("priority", 0) > best.get("priority", 0):
                    best = t
        if best is not None:
            tpl = best.get("template", {})
            return tpl.get("mappings", {}), tpl.get("settings", {})
        mappings, settings = {"properties": {}}, {}
        for t in sorted(self.legacy_templates.values(), key=lambda t: t.get("order", 0)):
            if any(fnmatch.fnmatchcase(name, p) for p in t["index_patterns"]):
                m = t.get("mappings", {})
                mappings["properties"].update(m.get("properties", {}))
                for k in ("dynamic_templates", "dynamic", "date_detection"):
                    if k in m:
                        mappings[k] = m[k]
                settings.update(t.get("settings", {}))
        return mappings, settings

    @staticmethod
    def check_mappings(mappings, where):
        if not isinstance(mappings, dict):
            raise EsError(400, "mapper_parsing_exception", f"Failed to parse mapping: {where}")
        if "_doc" in mappings and len(mappings) == 1:
            raise EsError(400, "mapper_parsing_exception",
                          "Failed to parse mapping: Root mapping definition has unsupported "
                          "parameters:  [_doc : ...]")
        known = {"properties", "dynamic_templates", "dynamic", "date_detection", "_source",
                 "_meta", "numeric_detection", "_routing"}
        extra = set(mappings) - known
        if extra:
            raise EsError(400, "mapper_parsing_exception",
                          "Failed to parse mapping: Root mapping definition has unsupported "
                          f"parameters:  [{sorted(extra)[0]} : ...]")

        def walk(props, prefix):
            for name, spec in props.items():
                t = spec.get("type", "object")
                if t not in FIELD_TYPES:
                    raise EsError(400, "mapper_parsing_exception",
                                  f"Failed to parse mapping: No handler for type [{t}] "
                                  f"declared on field [{prefix}{name}]")
                walk(spec.get("properties", {}), prefix + name + ".")

        walk(mappings.get("properties", {}), "")
        for entry in mappings.get("dynamic_templates", []):
            if not isinstance(entry, dict) or len(entry) != 1:
                raise EsError(400, "mapper_parsing_exception",
                              "Failed to parse mapping: a dynamic template must be an object "
                              "with one named template")

    @staticmethod
    def index_patterns(body):
        patterns = body.get("index_patterns")
        if isinstance(patterns, str):
            patterns = [patterns]
        if not patterns:
            raise EsError(400, "action_request_validation_exception",
                          "Validation Failed: 1: index patterns are missing;")
        return patterns

    def put_index_template(self, name, body, create=False):
        allowed = {"index_patterns", "template", "priority", "version", "_meta", "composed_of",
                   "data_stream", "allow_auto_create"}
        for key in body:
            if key not in allowed:
                raise EsError(400, "x_content_parse_exception",
                              f"[1:2] [index_template] unknown field [{key}]")
        patterns = self.index_patterns(body)
        tpl = body.get("template", {})
        for key in tpl:
            if key not in ("settings", "mappings", "aliases"):
                raise EsError(400, "x_content_parse_exception",
                              f"[1:2] [template] unknown field [{key}]")
        self.check_mappings(tpl.get("mappings", {}), "template.mappings")
        priority = body.get("priority", 0)
        with self.lock:
            if create and name in self.index_templates:
                raise EsError(400, "illegal_argument_exception",
                              f"index template [{name}] already exists")
            for other, t in self.index_templates.items():
                if other == name or t.get("priority", 0) != priority:
                    continue
                overlap = [p for p in patterns for q in t["index_patterns"]
                           if fnmatch.fnmatchcase(p, q) or fnmatch.fnmatchcase(q, p)]
                if overlap:
                    raise EsError(400, "illegal_argument_exception",
                                  f"index template [{name}] has index patterns {patterns} "
                                  f"matching patterns from existing templates [{other}] with "
                                  f"patterns ({other} => {t['index_patterns']}) that have the "
                                  f"same priority [{priority}], multiple index templates may "
                                  "not match during index creation, please use a different "
                                  "priority")
            stored = dict(body, index_patterns=patterns)
            self.index_templates[name] = stored

    def put_legacy_template(self, name, body):
        allowed = {"index_patterns", "order", "settings", "mappings", "aliases", "version"}
        for key in body:
            if key not in allowed:
                raise EsError(400, "illegal_argument_exception",
                              f"unknown key [{key}] in the template ")
        patterns = self.index_patterns(body)
        self.check_mappings(body.get("mappings", {}), "mappings")
        with self.lock:
            self.legacy_templates[name] = dict(body, index_patterns=patterns)

    # ---- indices -----------------------------------------------------------------------------

    def get_or_create(self, name):
        index = self.indices.get(name)
        if index is None:
            check_index_name(name)
            mappings, settings = self.template_for(name)
            index = self.indices[name] = Index(name, mappings, settings)
        return index

    def resolve(self, target, must_exist=True):
        """Indices named by a search target: comma-separated names and wildcards."""
        if target in ("", "_all", "*"):
            return list(self.indices.values())
        out = []
        for part in target.split(","):
            if "*" in part:
                out.extend(i for n, i in self.indices.items() if fnmatch.fnmatchcase(n, part))
            elif part in self.indices:
                out.append(self.indices[part])
            elif must_exist:
                raise EsError(404, "index_not_found_exception", f"no such index [{part}]",
                              index=part, **{"resource.type": "index_or_alias",
                                             "resource.id": part, "index_uuid": "_na_"})
        return out

    def write(self, index, op, doc_id, source, meta):
        if doc_id is not None and len(doc_id.encode()) > 512:
            raise EsError(400, "illegal_argument_exception",
                          f"id [{doc_id[:50]}...] is too long, must be no longer than 512 bytes "
                          f"but was: {len(doc_id.encode())}")
        existing = index.docs.get(doc_id) if doc_id is not None else None
        if op == "delete":
            if existing is None:
                return {"result": "not_found", "status": 404, "_version": 1}
            del index.docs[doc_id]
            index.seq_no += 1
            return {"result": "deleted", "status": 200, "_version": existing["_version"] + 1}
        if op == "create" and existing is not None:
            raise EsError(409, "version_conflict_engine_exception",
                          f"[{doc_id}]: version conflict, document already exists (current "
                          f"version [{existing['_version']}])", index_uuid=index.uuid,
                          shard="0", index=index.name)
        if op == "update":
            if existing is None:
                raise EsError(404, "document_missing_exception",
                              f"[_doc][{doc_id}]: document missing", index_uuid=index.uuid,
                              shard="0", index=index.name)
            if not isinstance(source, dict) or "doc" not in source:
                raise EsError(400, "action_request_validation_exception",
                              "Validation Failed: 1: script or doc is missing;")
            merged = json.loads(json.dumps(existing["_source"]))
            merged.update(source["doc"])
            source = merged
        if not isinstance(source, dict):
            raise EsError(400, "mapper_parsing_exception", "failed to parse",
                          caused_by={"type": "not_x_content_exception",
                                     "reason": "Compressor detection can only be called on some "
                                               "xcontent bytes or compressed xcontent bytes"})
        new_props = index.map_document(source, doc_id)
        if new_props is not None:
            index.properties = new_props
        if doc_id is None:
            doc_id = base64.urlsafe_b64encode(os.urandom(15)).decode()
        version = existing["_version"] + 1 if existing else 1
        index.seq_no += 1
        index.docs[doc_id] = {"_source": source, "_version": version, "_seq_no": index.seq_no}
        return {"_id": doc_id, "result": "updated" if existing else "created",
                "status": 200 if existing else 201, "_version": version}

    # ---- search ------------------------------------------------------------------------------

    def matches(self, doc_id, source, query):
        if not query:
            return True
        if not isinstance(query, dict) or len(query) != 1:
            raise EsError(400, "parsing_exception",
                          "[_na] query malformed, must start with start_object")
        ((kind, body),) = query.items()
        if kind == "match_all":
            return True
        if kind == "match_none":
            return False
        if kind == "ids":
            return doc_id in body.get("values", [])
        if kind in ("term", "terms"):
            ((field, want),) = [(k, v) for k, v in body.items() if k != "boost"]
            if kind == "term" and isinstance(want, dict):
                want = want.get("value")
            wanted = want if kind == "terms" else [want]
            if field == "_id":
                return doc_id in wanted
            # Simpler than Elasticsearch: whole values are compared, text is not analysed.
            return any(v in wanted for v in field_values(source, field))
        if kind == "exists":
            return bool(field_values(source, body["field"]))
        if kind == "range":
            ((field, bounds),) = body.items()
            for v in field_values(source, field):
                ok = all((op != "gte" or v >= b) and (op != "gt" or v > b) and
                         (op != "lte" or v <= b) and (op != "lt" or v < b)
                         for op, b in bounds.items() if op in ("gte", "gt", "lte", "lt"))
                if ok:
                    return True
            return False
        if kind == "bool":
            def clauses(name):
                c = body.get(name, [])
                return c if isinstance(c, list) else [c]
            if not all(self.matches(doc_id, source, q) for q in clauses("must") + clauses("filter")):
                return False
            if any(self.matches(doc_id, source, q) for q in clauses("must_not")):
                return False
            should = clauses("should")
            need = body.get("minimum_should_match",
                            0 if (clauses("must") or clauses("filter")) else 1)
            return not should or sum(self.matches(doc_id, source, q) for q in should) >= int(need)
        raise EsError(400, "parsing_exception", f"unknown query [{kind}]",
                      line=1, col=10)

    def search(self, target, body, params, count_only=False):
        allowed = {"query"} if count_only else {
            "query", "size", "from", "sort", "search_after", "track_total_hits", "_source",
            "timeout", "version", "seq_no_primary_term"}
        for key in body:
            if key not in allowed:
                raise EsError(400, "parsing_exception", f"Unknown key for a START_OBJECT in [{key}].",
                              line=1, col=2)
        lenient = params.get("ignore_unavailable") == "true" or "*" in target
        with self.lock:
            indices = self.resolve(target, must_exist=not lenient)
            hits = [(i.name, doc_id, d) for i in indices for doc_id, d in i.docs.items()
                    if self.matches(doc_id, d["_source"], body.get("query"))]
        if count_only:
            return {"count": len(hits), "_shards": {"total": max(len(indices), 1),
                                                    "successful": max(len(indices), 1),
                                                    "skipped": 0, "failed": 0}}
        size = int(params.get("size", body.get("size", 10)))
        start = int(params.get("from", body.get("from", 0)))
        if start + size > MAX_RESULT_WINDOW:
            raise EsError(400, "illegal_argument_exception",
                          f"Result window is too large, from + size must be less than or equal "
                          f"to: [{MAX_RESULT_WINDOW}] but was [{start + size}]. See the scroll "
                          "api for a more efficient way to request large data sets. This limit "
                          "can be set by changing the [index.max_result_window] index level "
                          "setting.")
        sort = body.get("sort", [])
        sort = sort if isinstance(sort, list) else [sort]
        keys = []
        for s in sort:
            field, order = (s, "asc") if isinstance(s, str) else list(s.items())[0]
            if isinstance(order, dict):
                order = order.get("order", "asc")
            if field == "_id" and self.major >= 8:
                raise EsError(400, "illegal_argument_exception",
                              "Fielddata access on the _id field is disallowed, you can re-enable "
                              "it by updating the dynamic cluster setting: "
                              "indices.id_field_data.enabled")
            keys.append((field, order))

        def sort_values(hit):
            out = []
            for field, _ in keys:
                if field == "_id":
                    out.append(hit[1])
                elif field == "_doc":
                    out.append(hit[2]["_seq_no"])
                elif field == "_score":
                    out.append(1.0)
                else:
                    values = field_values(hit[2]["_source"], field)
                    out.append(min(values) if values else None)
            return out

        def compare(va, vb):
            for (_, order), x, y in zip(keys, va, vb):
                if x == y:
                    continue
                if x is None:
                    return 1  # missing values sort last
                if y is None:
                    return -1
                r = -1 if x < y else 1
                return -r if order == "desc" else r
            return 0

        if keys:
            hits.sort(key=functools.cmp_to_key(lambda a, b: compare(sort_values(a),
                                                                     sort_values(b))))
        after = body.get("search_after")
        if after is not None:
            if not keys:
                raise EsError(400, "illegal_argument_exception",
                              "Sort must contain at least one field.")
            if len(after) != len(keys):
                raise EsError(400, "illegal_argument_exception",
                              f"search_after has {len(after)} value(s) but sort has "
                              f"{len(keys)}.")
            hits = [h for h in hits if compare(sort_values(h), after) > 0]
        total = len(hits)
        track = body.get("track_total_hits", 10000)
        relation = "eq"
        if track is not True and isinstance(track, int) and total > track:
            total, relation = track, "gte"
        page = hits[start:start + size]
        source_filter = body.get("_source", True)
        out_hits = []
        for name, doc_id, d in page:
            hit = {"_index": name, "_id": doc_id, "_score": None if keys else 1.0}
            if self.major < 8:
                hit["_type"] = "_doc"
            if source_filter is not False:
                if isinstance(source_filter, list):
                    hit["_source"] = {k: v for k, v in d["_source"].items() if k in source_filter}
                else:
                    hit["_source"] = d["_source"]
            if keys:
                hit["sort"] = sort_values((name, doc_id, d))
            out_hits.append(hit)
        return {"took": 1, "timed_out": False,
                "_shards": {"total": max(len(indices), 1), "successful": max(len(indices), 1),
                            "skipped": 0, "failed": 0},
                "hits": {"total": {"value": total, "relation": relation},
                         "max_score": None if keys or not page else 1.0, "hits": out_hits}}

    # ---- persistence -------------------------------------------------------------------------

    def save(self, path):
        with self.lock:
            data = {"indices": {n: {"mappings": i.mapping_json(), "settings": i.settings,
                                    "docs": i.docs} for n, i in self.indices.items()},
                    "index_templates": self.index_templates,
                    "legacy_templates": self.legacy_templates}
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)

    def load(self, path):
        with open(path) as f:
            data = json.load(f)
        self.index_templates = data.get("index_templates", {})
        self.legacy_templates = data.get("legacy_templates", {})
        for name, d in data.get("indices", {}).items():
            index = Index(name, d["mappings"], d["settings"])
            index.docs = d["docs"]
            self.indices[name] = index


def bulk(store, path_index, text, params):
    """Runs a bulk request; returns the answer or raises EsError for the whole request."""
    if not text:
        raise EsError(400, "parse_exception", "request body is required")
    if not text.endswith("\n"):
        raise EsError(400, "illegal_argument_exception",
                      "The bulk request must be terminated by a newline [\\n]")
    lines = text.split("\n")[:-1]
    allowed_meta = {"_index", "_id", "routing", "version", "version_type", "if_seq_no",
                    "if_primary_term", "pipeline", "require_alias", "dynamic_templates",
                    "retry_on_conflict", "_source", "op_type"}
    if store.major < 8:
        allowed_meta.add("_type")
    actions = []
    i = 0
    while i < len(lines):
        line_no = i + 1
        raw = lines[i]
        if raw.strip() == "":
            i += 1
            continue
        try:
            action = json.loads(raw)
        except ValueError:
            raise EsError(400, "x_content_parse_exception",
                          f"[{line_no}:1] Malformed action/metadata line [{line_no}], expected "
                          "START_OBJECT or END_OBJECT but found [VALUE_STRING]")
        if not isinstance(action, dict) or len(action) != 1:
            raise EsError(400, "illegal_argument_exception",
                          f"Malformed action/metadata line [{line_no}], expected START_OBJECT or "
                          f"END_OBJECT but found [{type(action).__name__.upper()}]")
        ((op, meta),) = action.items()
        if op not in ("index", "create", "update", "delete"):
            raise EsError(400, "illegal_argument_exception",
                          f"Malformed action/metadata line [{line_no}], expected one of [create, "
                          f"delete, index, update] but found [{op}]")
        if not isinstance(meta, dict):
            raise EsError(400, "illegal_argument_exception",
                          f"Malformed action/metadata line [{line_no}], expected START_OBJECT but "
                          "found [VALUE_STRING]")
        for key in meta:
            if key not in allowed_meta:
                raise EsError(400, "illegal_argument_exception",
                              f"Action/metadata line [{line_no}] contains an unknown parameter "
                              f"[{key}]")
        index = meta.get("_index", path_index)
        if not index:
            raise EsError(400, "action_request_validation_exception",
                          "Validation Failed: 1: index is missing;")
        source_line = None
        if op != "delete":
            if i + 1 >= len(lines):
                raise EsError(400, "illegal_argument_exception",
                              "The bulk request must be terminated by a newline [\\n]")
            source_line = lines[i + 1]
            i += 2
        else:
            i += 1
        if op == "delete" and meta.get("_id") is None:
            raise EsError(400, "action_request_validation_exception",
                          "Validation Failed: 1: id is missing;")
        actions.append((op, index, meta.get("_id"), source_line))
    if not actions:
        raise EsError(400, "action_request_validation_exception",
                      "Validation Failed: 1: no requests added;")
    items = []
    errors = False
    faults = store.faults
    with store.lock:
        store.stats["bulk_items"] += len(actions)
        for op, index_name, doc_id, source_line in actions:
            item = {"_index": index_name, "_id": doc_id}
            if store.major < 8:
                item["_type"] = "_doc"
            try:
                if faults["item_429"] and store.rng.random() < faults["item_429"]:
                    store.stats["injected_item_429"] += 1
                    raise EsError(429, "es_rejected_execution_exception",
                                  "rejected execution of coordinating operation [shard_detail="
                                  f"[{index_name}][0][P]] (injected by the fake)")
                index = store.get_or_create(index_name)
                source = None
                if source_line is not None:
                    try:
                        source = json.loads(source_line)
                    except ValueError as e:
                        raise EsError(400, "mapper_parsing_exception", "failed to parse",
                                      caused_by={"type": "json_parse_exception",
                                                 "reason": str(e)})
                result = store.write(index, op, doc_id, source, None)
                item["_id"] = result.get("_id", doc_id)
                item.update({"_version": result["_version"], "result": result["result"],
                             "_shards": {"total": 2, "successful": 1, "failed": 0},
                             "_seq_no": index.seq_no, "_primary_term": 1,
                             "status": result["status"]})
            except EsError as e:
                errors = True
                store.stats["rejected_items"] += 1
                if item["_id"] is None:
                    item.pop("_id")
                item.update({"status": e.status, "error": e.item()})
            items.append({op: item})
    return {"took": 1, "errors": errors, "items": items}


COMPAT = re.compile(r"compatible-with\s*=\s*(\d+)")
JSON_TYPES = ("application/json", "application/x-ndjson", "application/vnd.elasticsearch+json",
              "application/vnd.elasticsearch+x-ndjson")


def filter_path(answer, spec):
    """The filter_path parameter: keeps the named paths ("items.*.status,errors")."""
    paths = [p.split(".") for p in spec.split(",") if p]

    def keep(node, patterns):
        if not patterns:
            return node
        if isinstance(node, list):
            kept = [keep(n, patterns) for n in node]
            return [k for k in kept if k is not None]
        if not isinstance(node, dict):
            return node if any(len(p) == 0 for p in patterns) else None
        out = {}
        for key, value in node.items():
            rest = [p[1:] for p in patterns if p and fnmatch.fnmatchcase(key, p[0])]
            if not rest:
                continue
            if any(len(r) == 0 for r in rest):
                out[key] = value
            else:
                sub = keep(value, rest)
                if sub not in (None, {}, []):
                    out[key] = sub
        return out or None

    return keep(answer, paths) or {}


class Handler(fake_http.DispatchMixin, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "es-fake"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        # Headers and body leave in separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK add 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def store(self):
        return self.server.store

    def send_json(self, status, body, head=False):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8"
                         if not self.compat else
                         f"application/vnd.elasticsearch+json;compatible-with={self.compat}")
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", "0" if head else str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
        if self.headers.get("Content-Encoding", "").lower() == "gzip" and data:
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError):
                raise EsError(400, "parse_exception", "the gzip'd request body is damaged")
        return data

    def authenticated(self):
        accepted = self.server.credentials
        if not accepted:
            return True
        return (self.headers.get("Authorization") or "") in accepted

    def check_headers(self, has_body):
        """Content-Type and REST compatibility, as Elasticsearch checks them."""
        self.compat = None
        versions = set()
        for header in ("Accept", "Content-Type"):
            value = self.headers.get(header) or ""
            m = COMPAT.search(value)
            if m and "vnd.elasticsearch" in value:
                versions.add(int(m.group(1)))
        if versions:
            allowed = {7, 8} if self.store.major >= 8 else {7}
            if len(versions) > 1 or not versions <= allowed:
                raise EsError(400, "media_type_header_exception",
                              "Invalid media-type value on headers [Accept, Content-Type]",
                              caused_by={"type": "status_exception",
                                         "reason": "A compatible version is required on both "
                                                   "Content-Type and Accept headers if either "
                                                   "one has requested a compatible version and "
                                                   "the compatible versions must match. "
                                                   f"Accept={self.headers.get('Accept')}, "
                                                   f"Content-Type={self.headers.get('Content-Type')}"})
            self.compat = versions.pop()
        if has_body:
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype not in JSON_TYPES:
                raise EsError(406, "", "")

    def handle_any(self, method):
        self.compat = None
        store = self.store
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        parts = [unquote(p) for p in url.path.split("/") if p]
        with store.lock:
            store.stats["requests"] += 1
        try:
            body_bytes = self.read_body()
            if not self.authenticated():
                self.close_connection = False
                error = EsError(401, "security_exception",
                                f"missing authentication credentials for REST request "
                                f"[{self.path}]",
                                header={"WWW-Authenticate": ['Basic realm="security" '
                                                             'charset="UTF-8"', "ApiKey"]})
                return self.send_json(401, error.body())
            if parts[:1] == ["_fake"]:
                return self.fake_admin(method, parts, body_bytes)
            self.check_headers(bool(body_bytes))
            text = body_bytes.decode("utf-8") if body_bytes else ""
            answer = self.route(method, parts, params, text)
            if answer is None:
                return
            status, body = answer
            if "filter_path" in params and isinstance(body, dict):
                body = filter_path(body, params["filter_path"])
            self.send_json(status, body, head=method == "HEAD")
        except EsError as e:
            if e.status == 406:
                body = {"error": f"Content-Type header [{self.headers.get('Content-Type')}] is "
                                 "not supported", "status": 406}
                return self.send_json(406, body)
            self.send_json(e.status, e.body(), head=method == "HEAD")
        except UnicodeDecodeError:
            self.send_json(400, EsError(400, "parse_exception",
                                        "the request body is not UTF-8").body())

    def route(self, method, parts, params, text):
        store = self.store

        def body_json():
            if not text:
                return {}
            try:
                value = json.loads(text)
            except ValueError as e:
                raise EsError(400, "parse_exception", f"Failed to parse content to map: {e}")
            if not isinstance(value, dict):
                raise EsError(400, "parse_exception", "request body must be a JSON object")
            return value

        if not parts:
            if method not in ("GET", "HEAD"):
                raise EsError(405, "method_not_allowed", "Incorrect HTTP method for uri [/]")
            return 200, self.root_info()
        if parts == ["_cluster", "health"]:
            return 200, {"cluster_name": "es-fake", "status": "green", "number_of_nodes": 1}
        if parts[-1] == "_bulk" and len(parts) <= 2:
            if method not in ("POST", "PUT"):
                raise EsError(405, "method_not_allowed",
                              f"Incorrect HTTP method for uri [{self.path}] and method [{method}], "
                              "allowed: [POST, PUT]")
            for key in params:
                if key not in ("refresh", "timeout", "wait_for_active_shards", "pipeline",
                               "routing", "require_alias", "filter_path", "pretty",
                               "_source", "_source_includes", "_source_excludes", "error_trace"):
                    raise EsError(400, "illegal_argument_exception",
                                  f"request [/_bulk] contains unrecognized parameter: [{key}]")
            return self.bulk_request(parts[0] if len(parts) == 2 else None, text, params)
        if parts[0] in ("_index_template", "_template") and len(parts) == 2:
            return self.template_request(method, parts[0], parts[1], body_json(), params)
        if parts[-1] in ("_search", "_count") and len(parts) <= 2:
            if method not in ("GET", "POST"):
                raise EsError(405, "method_not_allowed", f"Incorrect HTTP method [{method}]")
            target = parts[0] if len(parts) == 2 else "_all"
            return 200, store.search(target, body_json(), params, parts[-1] == "_count")
        if len(parts) == 1 and not parts[0].startswith("_"):
            return self.index_request(method, parts[0], body_json())
        if len(parts) == 2 and parts[1] == "_mapping" and method == "GET":
            with store.lock:
                indices = store.resolve(parts[0])
                return 200, {i.name: {"mappings": i.mapping_json()} for i in indices}
        if len(parts) == 2 and parts[1] == "_refresh":
            return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if parts[1:2] in (["_doc"], ["_create"]) and len(parts) in (2, 3) and \
                method in ("PUT", "POST"):
            # The index API (one document), as a bulk of one.
            op = "create" if parts[1] == "_create" or params.get("op_type") == "create" else \
                "index"
            meta = {"_index": parts[0]}
            if len(parts) == 3:
                meta["_id"] = parts[2]
            answer = bulk(store, None, json.dumps({op: meta}) + "\n" + (text or "{}") + "\n",
                          params)
            item = answer["items"][0][op]
            if "error" in item:
                raise EsError(item["status"], item["error"]["type"], item["error"]["reason"],
                              **{k: v for k, v in item["error"].items()
                                 if k not in ("type", "reason")})
            return item.pop("status"), item
        if len(parts) == 3 and parts[1] == "_doc" and method == "GET":
            with store.lock:
                index = store.resolve(parts[0])[0]
                d = index.docs.get(parts[2])
            hit = {"_index": parts[0], "_id": parts[2], "found": d is not None}
            if d is not None:
                hit.update({"_version": d["_version"], "_seq_no": d["_seq_no"],
                            "_primary_term": 1, "_source": d["_source"]})
            return (200 if d else 404), hit
        raise EsError(400, "illegal_argument_exception",
                      f"request [/{'/'.join(parts)}] is not supported by the fake")

    def root_info(self):
        v = self.store.version
        major = self.store.major
        return {"name": "es-fake", "cluster_name": "es-fake", "cluster_uuid": "fake-cluster-uuid",
                "version": {"number": v, "build_flavor": "default", "build_type": "docker",
                            "build_hash": "0" * 40, "build_date": "2023-01-01T00:00:00.000Z",
                            "build_snapshot": False,
                            "lucene_version": "9.8.0" if major >= 8 else "8.11.1",
                            "minimum_wire_compatibility_version":
                                "7.17.0" if major >= 8 else "6.8.0",
                            "minimum_index_compatibility_version":
                                "7.0.0" if major >= 8 else "6.0.0-beta1"},
                "tagline": "You Know, for Search"}

    def bulk_request(self, path_index, text, params):
        store = self.store
        faults = store.faults
        with store.lock:
            store.stats["bulk_requests"] += 1
            roll = store.rng.random()
            drop = faults["drop"] and roll < faults["drop"]
            roll -= faults["drop"]
            rej429 = not drop and faults["bulk_429"] and 0 <= roll < faults["bulk_429"]
            roll -= faults["bulk_429"]
            rej500 = not drop and not rej429 and faults["bulk_500"] and 0 <= roll < faults["bulk_500"]
        if faults["slow_ms"]:
            time.sleep(faults["slow_ms"] / 1000)
        if drop:
            with store.lock:
                store.stats["injected_drop"] += 1
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return None
        if rej429:
            with store.lock:
                store.stats["injected_bulk_429"] += 1
            raise EsError(429, "es_rejected_execution_exception",
                          "rejected execution of coordinating operation (injected by the fake)")
        if rej500:
            with store.lock:
                store.stats["injected_bulk_500"] += 1
            raise EsError(500, "exception", "internal failure (injected by the fake)")
        if path_index:
            check_index_name(path_index)
        return 200, bulk(store, path_index, text, params)

    def template_request(self, method, kind, name, body, params):
        store = self.store
        table = store.index_templates if kind == "_index_template" else store.legacy_templates
        if method in ("PUT", "POST"):
            if kind == "_index_template":
                store.put_index_template(name, body, params.get("create") == "true")
            else:
                store.put_legacy_template(name, body)
            return 200, {"acknowledged": True}
        with store.lock:
            found = {n: t for n, t in table.items() if fnmatch.fnmatchcase(n, name)}
            if method == "DELETE":
                if not found:
                    raise EsError(404, "resource_not_found_exception",
                                  f"index_template matching [{name}] not found")
                for n in found:
                    del table[n]
                return 200, {"acknowledged": True}
        if not found:
            if method == "HEAD":
                return 404, {}
            raise EsError(404, "resource_not_found_exception",
                          f"index template matching [{name}] not found")
        if method == "HEAD":
            return 200, {}
        if kind == "_index_template":
            return 200, {"index_templates": [{"name": n, "index_template": t}
                                             for n, t in found.items()]}
        return 200, found

    def index_request(self, method, name, body):
        store = self.store
        with store.lock:
            if method == "HEAD":
                return (200 if name in store.indices else 404), {}
            if method == "DELETE":
                indices = store.resolve(name)
                for i in indices:
                    del store.indices[i.name]
                return 200, {"acknowledged": True}
            if method == "PUT":
                check_index_name(name)
                if name in store.indices:
                    raise EsError(400, "resource_already_exists_exception",
                                  f"index [{name}/{store.indices[name].uuid}] already exists",
                                  index=name)
                mappings, settings = store.template_for(name)
                mappings = dict(mappings)
                if "mappings" in body:
                    store.check_mappings(body["mappings"], "mappings")
                    mappings.update(body["mappings"])
                settings = dict(settings, **body.get("settings", {}))
                store.indices[name] = Index(name, mappings, settings)
                return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}
            if method == "GET":
                i = store.resolve(name)[0]
                return 200, {i.name: {"aliases": {}, "mappings": i.mapping_json(),
                                      "settings": {"index": i.settings}}}
        raise EsError(405, "method_not_allowed", f"Incorrect HTTP method [{method}]")

    def fake_admin(self, method, parts, body):
        store = self.store
        if parts == ["_fake", "faults"] and method in ("POST", "PUT"):
            update = json.loads(body or b"{}")
            with store.lock:
                for key, value in update.items():
                    if key not in store.faults:
                        return self.send_json(400, {"error": f"unknown fault {key}"})
                    store.faults[key] = value
                return self.send_json(200, dict(store.faults))
        if parts == ["_fake", "stats"]:
            with store.lock:
                return self.send_json(200, dict(store.stats, faults=store.faults,
                                                documents=sum(len(i.docs) for i in
                                                              store.indices.values())))
        if parts == ["_fake", "reset"] and method == "POST":
            with store.lock:
                store.indices.clear()
                store.index_templates.clear()
                store.legacy_templates.clear()
            return self.send_json(200, {"acknowledged": True})
        return self.send_json(404, {"error": "unknown fake admin path"})


def main():
    parser = fake_http.arg_parser(__doc__)
    parser.add_argument("--version", default="7.17.0")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", help="JSON file: load at start, save at exit")
    for fault in ("bulk-429", "item-429", "bulk-500", "drop"):
        parser.add_argument("--" + fault, type=float, default=0.0)
    parser.add_argument("--slow-ms", type=int, default=0)
    parser.add_argument("--user", help="NAME:PASSWORD that basic auth must carry")
    parser.add_argument("--api-key", help="ID:KEY that an ApiKey authorization must carry")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    store = Store(args.version, args.seed)
    for key in ("bulk_429", "item_429", "bulk_500", "drop", "slow_ms"):
        store.faults[key] = getattr(args, key)
    if args.data and os.path.exists(args.data):
        store.load(args.data)
    server = fake_http.Server((args.host, args.port), Handler)
    server.store = store
    server.credentials = set()
    if args.user:
        server.credentials.add("Basic " + base64.b64encode(args.user.encode()).decode())
    if args.api_key:
        server.credentials.add("ApiKey " + base64.b64encode(args.api_key.encode()).decode())
    if args.tls_cert:
        import ssl
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)

    fake_http.serve(server, args.port_file, f"es_fake {args.version}",
                    on_stop=(lambda: store.save(args.data)) if args.data else None)


if __name__ == "__main__":
    sys.exit(main())
