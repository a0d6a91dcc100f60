"""Rules under any sequence of PUT and DELETE, on two instances (issue 24): a Hypothesis state machine
against a model. A write or an import is accepted exactly when the current schema accepts it, on
either instance, and `rules_version` names exactly the schema that was applied.

The instances run with GATEWAY_RULES_TTL_S=0 (every write reads the table's current version), so the
model is exact; the bound a larger TTL gives is tested in test_rules.py."""

import io

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from starlette.testclient import TestClient

from app.main import create_app
from tests.conftest import run_sql

instances = st.integers(0, 1)
minimums = st.integers(-3, 3)
ages = st.integers(-4, 4)


def schema_of(minimum: int) -> dict:
    return {"properties": {"age": {"minimum": minimum}}, "required": ["name"]}


@pytest.fixture
def two_instances(schema, settings):
    with TestClient(create_app(settings(rules_ttl_s=0)), raise_server_exceptions=False) as one, \
            TestClient(create_app(settings(rules_ttl_s=0)), raise_server_exceptions=False) as two:
        yield one, two


def test_any_sequence_of_rule_changes_on_two_instances(two_instances, schema):
    clients = two_instances

    class Rules(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            run_sql(schema, "DELETE FROM _gateway_schemas WHERE table_name = 'users'")
            run_sql(schema, "DELETE FROM users")
            self.versions: list[dict] = []  # the model: {"version", "minimum", "removed"}

        def current(self) -> dict | None:
            kept = [v for v in self.versions if not v["removed"]]
            return kept[-1] if kept else None

        def accepts(self, age: int) -> bool:
            current = self.current()
            return current is None or age >= current["minimum"]

        @rule(at=instances, minimum=minimums)
        def put(self, at, minimum):
            response = clients[at].put("/api/schemas/users", json=schema_of(minimum))
            assert response.status_code == 200, response.text
            number = max((v["version"] for v in self.versions), default=0) + 1  # never a number used before
            self.versions.append({"version": number, "minimum": minimum, "removed": False})
            assert response.json()["data"]["version"] == number

        @rule(at=instances)
        def delete(self, at):
            response = clients[at].delete("/api/schemas/users")
            current = self.current()
            if current is None:
                assert response.status_code == 404 and response.json()["error"] == "schema_not_found"
                return
            assert response.status_code == 200, response.text
            current["removed"] = True
            now = self.current()
            data = response.json()["data"]
            assert (data and data["version"]) == (now and now["version"])

        @rule(at=instances, age=ages)
        def write(self, at, age):
            response = clients[at].post("/api/users", json={"input": {"name": "w", "age": age}})
            if self.accepts(age):
                assert response.status_code == 201, (self.versions, age, response.text)
            else:
                assert response.status_code == 422, (self.versions, age, response.text)
                assert response.json()["details"]["rules_version"] == self.current()["version"]

        @rule(at=instances, batch=st.lists(ages, min_size=1, max_size=4))
        def import_file(self, at, batch):
            text = "name,age\n" + "".join(f"i,{age}\n" for age in batch)
            response = clients[at].post("/api/batch/import", files={"file": ("users.csv", io.BytesIO(text.encode()))})
            assert response.status_code == 200, response.text
            report = response.json()["data"]
            current = self.current()
            assert report["rules_version"] == (current and current["version"])
            assert report["rows_failed"] == sum(not self.accepts(age) for age in batch)

        @invariant()
        def both_instances_show_the_model(self):
            for client in clients:
                response = client.get("/api/schemas/users")
                current = self.current()
                if current is None:
                    assert response.status_code == 404
                    continue
                data = response.json()["data"]
                assert (data["version"], data["schema"]) == (current["version"], schema_of(current["minimum"]))
                assert [(v["version"], v["removed"]) for v in data["versions"]] == [
                    (v["version"], v["removed"]) for v in self.versions
                ]

    run_state_machine_as_test(Rules, settings=settings(
        max_examples=15, stateful_step_count=12, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck),
    ))
