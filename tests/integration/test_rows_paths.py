"""One way rows come in (issue 31): the same bad row gives the same error code, column and words
whether it is POSTed, imported (CSV, JSON Lines) or sent as a stream message."""

import csv
import io

import orjson
import pytest
from starlette.testclient import TestClient

from app.main import create_app

RULES = {"properties": {"age": {"maximum": 150}}}
CASES = [
    ({"name": "a", "age": "old"}, "invalid_value", "age"),
    ({"name": "x" * 51}, "invalid_value", "name"),
    ({"name": "a", "balance": "1.234"}, "invalid_value", "balance"),
    ({"name": "a", "created": "yesterday"}, "invalid_value", "created"),
    ({"name": "a", "age": 200}, "invalid_value", "age"),  # breaks a rule
    ({"name": "a", "active": "maybe"}, "invalid_value", "active"),
    ({"age": 3}, "missing_column", "name"),  # a file's header would say it first: JSON Lines and streams only
    ({"name": "a", "nope": 1}, "unknown_column", "nope"),
]


@pytest.fixture
def app_client(schema, settings):
    with TestClient(create_app(settings()), raise_server_exceptions=False) as client:
        assert client.put("/api/schemas/users", json=RULES).status_code == 200
        yield client


def csv_of(row: dict) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(row)
    writer.writerow(row.values())
    return out.getvalue().encode()


@pytest.mark.parametrize("row, code, column", CASES)
def test_a_bad_row_is_said_alike_through_every_path(app_client, row, code, column):
    said = {}
    posted = app_client.post("/api/users", json={"input": row})
    assert posted.status_code in (400, 422), posted.text
    body = posted.json()
    said["post"] = (body["error"], body["details"]["column"], body["message"])

    lines = [{"name": "first"}, row]  # the first object is checked as a header: the bad one comes second
    data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    report = app_client.post("/api/batch/import", files={"file": ("users.jsonl", data)}).json()["data"]
    (error,) = report["errors"]
    said["jsonl"] = (error["code"], error["column"], error["reason"])

    if code == "invalid_value":  # a CSV header names every column: missing and unknown ones are the header's 400
        report = app_client.post("/api/batch/import", files={"file": ("users.csv", csv_of(row))}).json()["data"]
        (error,) = report["errors"]
        said["csv"] = (error["code"], error["column"], error["reason"])

    with app_client.websocket_connect("/api/users/ws") as ws:
        ws.send_text(orjson.dumps({"id": "m1", "rows": [row]}).decode())
        answer = ws.receive_json()
    assert answer["status"] == "rejected"
    error = answer["errors"][0]
    said["stream"] = (error["code"], error["column"], error["reason"])

    assert said["post"][:2] == (code, column), said
    assert len(set(said.values())) == 1, said
