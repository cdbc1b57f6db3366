#!/usr/bin/env python3
"""The official Confluent Python client against unsilo's schema registry, with HTTP Basic credentials
(`basic.auth.user.info`), exactly as a department's existing Kafka tooling would use it.

    registry_client.py BASE_URL USER TOKEN

Registers a schema, looks it up, serialises and deserialises a record with AvroSerializer/AvroDeserializer
(Confluent wire format), reads a shared std.* schema, and checks that a shared schema cannot be changed and
that wrong credentials are refused. Prints one JSON line with what it saw; exits non-zero on any failure."""
import json
import sys

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

base, user, token = sys.argv[1:4]
client = SchemaRegistryClient({"url": base, "basic.auth.user.info": f"{user}:{token}"})

schema_str = json.dumps({
    "type": "record", "name": "Rating", "namespace": "dept.test",
    "fields": [{"name": "case_no", "type": "string"}, {"name": "stars", "type": "int"}],
})
subject = "dept.rating-value"
schema_id = client.register_schema(subject, Schema(schema_str, "AVRO"))
latest = client.get_latest_version(subject)
assert latest.schema_id == schema_id, (latest.schema_id, schema_id)
found = client.lookup_schema(subject, Schema(schema_str, "AVRO"))
assert found.schema_id == schema_id

serializer = AvroSerializer(client, schema_str, conf={"auto.register.schemas": False, "use.latest.version": True})
deserializer = AvroDeserializer(client)
ctx = SerializationContext("dept.rating", MessageField.VALUE)
record = {"case_no": "SX20240701000123", "stars": 5}
framed = serializer(record, ctx)
assert framed[0] == 0 and int.from_bytes(framed[1:5], "big") == schema_id, framed[:5]
back = deserializer(framed, ctx)
assert back == record, back

shared = client.get_latest_version("std.grid_event-value")
assert "x-sensitivity" in shared.schema.schema_str

try:
    client.register_schema("std.grid_event-value", Schema(schema_str, "AVRO"))
    raise SystemExit("a shared schema was changed through the API")
except SchemaRegistryError as e:
    assert e.http_status_code == 403, e

stranger = SchemaRegistryClient({"url": base, "basic.auth.user.info": f"{user}:wrong-token"})
try:
    stranger.get_subjects()
    raise SystemExit("wrong credentials were accepted")
except SchemaRegistryError as e:
    assert e.http_status_code == 401, e

print(json.dumps({"schema_id": schema_id, "round_trip": back, "shared_version": shared.version}))
