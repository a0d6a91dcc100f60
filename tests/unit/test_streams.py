"""Streams' pure parts: the sources' syntax, message shapes, checking rows, and no message that can
make the checker raise."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.rows.rules import compile_rules
from app.streams.messages import Checked, Checker, Message, Outcome, message_rows
from app.streams.sources import parse_source, parse_sources

from .tables import PAIRS, USERS


def test_the_readme_sources_parse():
    kafka, amqp, nats = parse_sources(
        """kafka://127.0.0.1:9092,10.0.0.2:9092/employees?table=employees&group=gateway,
           amqp://guest:secret@127.0.0.1:5672/%2f?queue=employees&table=employees&mode=upsert
           nats://127.0.0.1:4222?stream=EMPLOYEES&subject=employees.>&table=employees&ack_wait=5"""
    )
    assert (kafka.kind, kafka.name, kafka.address, kafka.options["topic"]) == ("kafka", "kafka:gateway:employees", "127.0.0.1:9092,10.0.0.2:9092", "employees")
    assert (amqp.name, amqp.mode, amqp.options["queue"]) == ("amqp:employees", "upsert", "employees")
    assert "secret" in amqp.address and "secret" not in amqp.shown  # the password is never shown
    assert (nats.name, nats.options["subject"], nats.options["ack_wait"], nats.address) == (
        "nats:EMPLOYEES:gateway", "employees.>", "5", "nats://127.0.0.1:4222"
    )


@pytest.mark.parametrize("url, says", [
    ("kafka://h:9092/t?group=g", "`table` is required"),
    ("kafka://h:9092/t?table=x", "`group`"),
    ("kafka://h:9092/?table=x&group=g", "one topic"),
    ("amqp://h/%2f?table=x", "`queue`"),
    ("nats://h?table=x&stream=S", "`subject`"),
    ("nats://h?table=x&stream=S&subject=s&ack_wait=soon", "ack_wait must be a positive integer"),
    ("redis://h?table=x", "scheme"),
    ("amqp://u:pw@h/%2f?queue=q&table=x&mode=merge", "mode must be insert or upsert"),
    ("amqp://u:pw@h/%2f?queue=q&table=x&colour=red", "unknown option(s) colour"),
    ("amqp://u:pw@h/%2f?queue=q&table=x&batch=0", "batch must be a positive integer"),
])
def test_a_wrong_source_is_named_without_its_password(url, says):
    with pytest.raises(ValueError) as raised:
        parse_source(url)
    assert says in str(raised.value) and "pw" not in str(raised.value)


def test_two_sources_may_not_share_a_name():
    with pytest.raises(ValueError, match="different `name`s"):
        parse_sources("amqp://h/%2f?queue=q&table=a amqp://h/%2f?queue=q&table=b")
    assert len(parse_sources("amqp://h/%2f?queue=q&table=a amqp://h/%2f?queue=q&table=b&name=other")) == 2


def test_message_shapes():
    assert message_rows({"name": "a"}) == ([{"name": "a"}], None)
    assert message_rows([{"a": 1}, {"a": 2}]) == ([{"a": 1}, {"a": 2}], None)
    assert message_rows({"id": 5, "rows": [{"a": 1}]}) == ([{"a": 1}], "5")
    # A row whose columns happen to be called id and rows is a row, not an envelope.
    assert message_rows({"id": 5, "rows": 3}) == ([{"id": 5, "rows": 3}], None)
    assert message_rows({"id": 5, "rows": [], "x": 1}) == ([{"id": 5, "rows": [], "x": 1}], None)
    for bad in (3, "text", None, {"id": [1], "rows": []}, {"id": True, "rows": []}):
        with pytest.raises(ValueError):
            message_rows(bad)


def check(payload, table=USERS, rules=None):
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Checker(table, rules).check(Message(data, "p"))


def test_rows_are_checked_whole_and_every_problem_named():
    good = check([{"name": "ann", "age": 3}, {"name": "bo"}])
    assert isinstance(good, Checked) and len(good.rows) == 2
    bad = check([{"name": "ann", "age": -1}, {"name": "toolongname"}, {"name": "ok"}, 7])
    assert isinstance(bad, Outcome) and bad.status == "rejected" and bad.rows_written == 0
    assert [e["index"] for e in bad.errors] == [3]  # the shape first: a non-object refuses the message
    bad = check([{"name": "ann", "age": -1}, {"name": "toolongname"}, {"name": "ok"}])
    assert [(e["index"], e["column"]) for e in bad.errors] == [(0, "age"), (1, "name")]
    assert "row 0: " in bad.reason and "row 1: " in bad.reason
    assert "table 'users' has no column 'nope'" in check({"name": "a", "nope": 1}).reason
    assert "column 'name': missing" in check({"age": 1}).reason
    assert "not valid JSON" in check(b"{").reason
    assert check({"id": 1, "rows": []}).reason == "the message holds no rows"
    assert "not valid JSON" in check(b"{\"name\": NaN}").reason  # strict JSON: NaN cannot be stored
    # A broker message's key: its own id, else its envelope's; without either it may be refused.
    anonymous = Message(b'{"name": "x"}', "p", envelope_ids=True, needs_key="no id")
    assert Checker(USERS, None).check(anonymous).reason == "no id"
    enveloped = Message(b'{"id": "b-1", "rows": [{"name": "x"}]}', "p", envelope_ids=True, needs_key="no id")
    assert isinstance(Checker(USERS, None).check(enveloped), Checked) and enveloped.key == "b-1"
    given = Message(b'{"id": "b-1", "rows": [{"name": "x"}]}', "p", key="m-9", envelope_ids=True)
    Checker(USERS, None).check(given)
    assert given.key == "m-9"


def test_rules_name_the_row_and_column():
    rules = compile_rules(USERS, {"type": "object", "properties": {"age": {"maximum": 10}}})
    outcome = check([{"name": "a", "age": 5}, {"name": "b", "age": 50}], rules=rules)
    assert isinstance(outcome, Outcome)
    assert outcome.errors[0]["index"] == 1 and outcome.errors[0]["column"] == "age" and "rule" in outcome.errors[0]["reason"]


def test_plans_are_shared_by_messages_with_the_same_keys():
    checker = Checker(PAIRS, None)
    one = checker.check(Message(b'{"a": 1, "b": "x"}', "1"))
    two = checker.check(Message(b'{"a": 2, "b": "y"}', "2"))
    assert isinstance(one, Checked) and isinstance(two, Checked) and one.plan is two.plan


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["name", "age", "id", "rows", "meta", "price", "x"]), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.one_of(st.binary(max_size=100), json_values.map(lambda v: json.dumps(v).encode())))
def test_no_message_makes_the_checker_raise(payload):
    """Whatever a producer sends, the checker answers with rows to write or a reason, never an
    exception (which would stall a broker stream or drop a WebSocket)."""
    outcome = Checker(USERS, None).check(Message(payload, "p"))
    assert isinstance(outcome, (Checked, Outcome))
    if isinstance(outcome, Outcome):
        assert outcome.status == "rejected" and outcome.errors and outcome.reason


def test_json_lines_for_load_data():
    from app.rows.plan import BARE_NULL
    from app.streams.jsonlines import json_lines

    rows = [(1, 'say "hi", ok', BARE_NULL, 2.5), (2, "back\\slash\nnew\ttab\rcr\bbs", "],[ inside", -7)]
    assert json_lines(rows) == (
        b'[1,"say \\"hi\\", ok",NULL,2.5]\n'
        b'[2,"back\\\\slash\\nnew\\ttab\\rcr\\bbs","],[ inside",-7]\n'
    )
    assert json_lines([(1, "\u00e9\U0001f600")]) == '[1,"\u00e9\U0001f600"]\n'.encode()
    assert json_lines([]) == b""
    # What LOAD DATA would read otherwise is left to the CSV writer.
    assert json_lines([(1, "form\ffeed")]) is None
    assert json_lines([(1, "bell\x07")]) is None
    assert json_lines([(2**70, "big")]) is None


def test_a_long_broker_id_is_recorded_whole_by_its_hash():
    from app.streams.positions import ID_CHARS, key_of

    short = "m-1"
    a, b = "x" * ID_CHARS + "a", "x" * ID_CHARS + "b"  # the same first 191 characters
    assert key_of(short) == short and key_of("y" * ID_CHARS) == "y" * ID_CHARS
    assert key_of(a) != key_of(b) and len(key_of(a)) <= ID_CHARS and key_of(a) == key_of(a)
