"""A department's integration, written against the client OpenAPI Generator made from the hub's /openapi.json.

Run by tests/tests/generated_client.rs with PYTHONPATH pointing at the generated package (`unsilo_client`) and
UNSILO_BASE, UNSILO_OPERATOR_TOKEN, UNSILO_PUSH_TOKEN, UNSILO_SUFFIX and UNSILO_GRID_MESSAGES (a JSON array of
grid messages) in the environment. Every answer is read into the generated models, which validate it against the
document's schemas; any mismatch raises and fails the test. Prints one line per step.
"""

import datetime
import json
import os
import sys
import time

import unsilo_client
from unsilo_client.api.admin_api import AdminApi
from unsilo_client.api.ingest_api import IngestApi
from unsilo_client.api.pull_api import PullApi
from unsilo_client.models import (
    ApproveRequest,
    NewAgency,
    NewCorrection,
    SubscriptionRequest,
)

BASE = os.environ["UNSILO_BASE"]
BEIJING = datetime.timezone(datetime.timedelta(hours=8))
SUFFIX = os.environ["UNSILO_SUFFIX"]


def client(token):
    configuration = unsilo_client.Configuration(host=BASE, access_token=token)
    return unsilo_client.ApiClient(configuration)


operator = client(os.environ["UNSILO_OPERATOR_TOKEN"])
admin = AdminApi(operator)

# 1. The platform registers the civil-affairs bureau; its token comes back once.
agency_id = f"civil-{SUFFIX}"
created = admin.create_agency(
    NewAgency(id=agency_id, name="汉阴县民政局", uscc="11610921016050037T", clearance="S3")
)
assert created.agency.id == agency_id, created
assert created.token, "a token"
print(f"agency created: {created.agency.id} ({created.agency.name}), token {created.token_id}")

# 2. The bureau requests the grid's households (Art. 20: basis, scenario, scope, time limit), pulled.
bureau = client(created.token)
bureau_admin = AdminApi(bureau)
request = SubscriptionRequest.from_dict(
    {
        "name": "households",
        "schema": "household",
        "fields": [
            {"field": "household_id", "treatment": "clear"},
            {"field": "member_count", "treatment": "clear"},
            {"field": "care_level", "treatment": "clear"},
        ],
        "filter": 'data_grade != "CORE"',
        "purpose": "走访帮扶",
        "legal_basis": "《社会救助暂行办法》",
        "scenario": "民政救助对象动态管理",
        "scope": "本县网格内的户",
        "expires_at_ms": int(datetime.datetime(2030, 12, 31, 23, 59, 59, tzinfo=BEIJING).timestamp() * 1000),
        "channel": {"kind": "pull"},
    }
)
requested = bureau_admin.request_subscription(request)
subscription = requested.subscription
assert subscription.status.value == "requested", subscription.status
assert subscription.deadlines is not None and subscription.deadlines.answer_due_ms > 0
print(f"requested: {subscription.id}, answer due {subscription.deadlines.answer_due_ms}")

# 3. A security administrator approves it as asked: it is active.
approved = admin.approve(subscription.id, ApproveRequest())
assert approved.status.value == "active", approved.status
print(f"approved: {approved.status.value}, granted {[f.var_field if hasattr(f, 'var_field') else f.field for f in approved.granted.fields]}")

# 4. The grid pushes two households.
grid = client(os.environ["UNSILO_PUSH_TOKEN"])
pushed = IngestApi(grid).ingest("grid", body=json.loads(os.environ["UNSILO_GRID_MESSAGES"]))
assert pushed.accepted == 2 and pushed.rejected == 0, pushed
print(f"pushed: {pushed.accepted} accepted")

# 5. The bureau pulls until both have arrived, and acknowledges.
pull = PullApi(bureau)
records, cursor = [], None
deadline = time.time() + 60
while len(records) < 2:
    assert time.time() < deadline, f"only {len(records)} records arrived"
    batch = pull.records(subscription.id, cursor=cursor, wait_ms=1000)
    records.extend(batch.records)
    cursor = batch.cursor
for r in records:
    assert r.record["household_id"], r
    assert "head_cert_no" not in r.record, "only granted fields"
print(f"pulled: {len(records)} records, first {records[0].record_id}")

# 6. It finds a wrong member count and files a correction (校核纠错) on the record it received.
filed = bureau_admin.file_correction(
    NewCorrection.from_dict(
        {
            "subscription": subscription.id,
            "record_id": records[0].record_id,
            "field": "member_count",
            "problem": "户内人数有误：走访核实为 5 人",
            "evidence": "入户走访记录",
            "proposed_value": 5,
        }
    )
)
assert filed.status.value == "filed", filed.status
assert filed.due_ms > filed.filed_at_ms
print(f"correction filed: {filed.id}, due {filed.due_ms}")

# And reads its own list back.
listed = bureau_admin.list_corrections()
assert [c.id for c in listed.corrections] == [filed.id], listed
sys.exit(0)
