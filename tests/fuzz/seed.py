#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into tests/fuzz/seeds/<target>/ from the project's own fixtures:
connector fixtures, the shared .avsc schemas, filters from the docs, framed records and dropped files. Seeds
are a starting point; the fuzzer grows its corpus in tests/fuzz/corpus/<target>/."""
import glob, hashlib, os, struct, sys

root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
out = os.path.join(root, "tests", "fuzz", "seeds")


def put(target, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


# raw_json: byte 0 picks grid (0), hotline12345 (1), qinwuyuan (2).
for pick, name in enumerate(["grid", "hotline12345", "qinwuyuan"]):
    for path in glob.glob(os.path.join(root, "connectors", "builtin", name, "fixtures", "*", "*.json")):
        put("raw_json", bytes([pick]) + open(path, "rb").read())

# cel_filter: byte 0 picks the shared schema (0 = the first, grid_event).
for f in [
    'region_code.startsWith("610921") && event_type_code in ["0101", "0203"]',
    'data_grade != "CORE" && share_attribute == "UNCONDITIONAL"',
    'parties.exists(p, p.role == "VICTIM") || size(description) > 10',
    '!(status == "CLOSED") && event_time > 0 ? true : false',
    'location.address.matches("^陕西") && has(location.longitude)',
]:
    for pick in range(3):
        put("cel_filter", bytes([pick]) + f.encode())

# registry_schema: every shared schema's text.
for path in glob.glob(os.path.join(root, "schemas", "avro", "**", "*.avsc"), recursive=True):
    put("registry_schema", open(path, "rb").read())

# framed_avro: magic byte, schema id, a few Avro bodies.
for sid in range(4):
    for body in [b"", b"\x02\x04ab", b"\x00" * 32, b"\x80\x80\x80\x80\x08", bytes(range(64))]:
        put("framed_avro", b"\x00" + struct.pack(">I", sid) + body)

# file_drop: byte 0 picks the name (0 csv, 1 xlsx, 2 jsonl, 3 json, 4 xls).
drops = os.path.join(root, "connectors", "tests", "fixtures", "file_drop")
for path in glob.glob(os.path.join(drops, "*")):
    data = open(path, "rb").read()
    if len(data) > 64 * 1024:
        continue
    ext = path.rsplit(".", 1)[-1].lower()
    pick = {"csv": 0, "xlsx": 1, "jsonl": 2, "json": 3, "xls": 4}.get(ext, 0)
    put("file_drop", bytes([pick]) + data)
put("file_drop", b"\x00" + "姓名,身份证号\n张三,610921198001010018\n".encode("gb18030"))
put("file_drop", b"\x02" + b'{"a": 1}\n{"b": 2}\n')
print("seeds written to", out, file=sys.stderr)
