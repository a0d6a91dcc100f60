"""Several database nodes (Galera): the URL, which node an attempt takes, what a node's state means,
and how Galera's errors are classified. Pure logic; tests/integration/test_galera.py runs a cluster."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.config import DatabaseAddress, Settings
from app.core.errors import DatabaseError
from app.db.errors import COMMIT_UNKNOWN_CODES, CONNECTIVITY_CODES, classify, commit_unknown, is_retryable
from app.db.nodes import Nodes, state_of


def test_a_url_may_name_several_nodes():
    nodes = DatabaseAddress.parse_nodes("mysql://gw:s%40cret@10.0.0.1:3307,db2,[fd00::3]:3309/shop")
    assert [(n.host, n.port) for n in nodes] == [("10.0.0.1", 3307), ("db2", 3306), ("fd00::3", 3309)]
    assert {(n.user, n.password, n.database, n.unix_socket) for n in nodes} == {("gw", "s@cret", "shop", None)}
    assert DatabaseAddress.parse("mysql://gw@a:1,b:2/shop").host == "a"  # the first node
    assert Settings(database_url="mysql://gw@a:1,b:2/shop").db_nodes[1].where == "b:2"


@pytest.mark.parametrize("url", [
    "mysql://gw@a:1,b:2/shop?unix_socket=/tmp/x.sock",  # one socket cannot be several nodes
    "mysql://gw@a:1,b:port/shop",
    "mysql://gw@a:1,b:70000/shop",
])
def test_a_bad_node_list_is_refused(url):
    with pytest.raises(ValueError):
        DatabaseAddress.parse_nodes(url)


@pytest.mark.parametrize("status, expected", [
    ({"wsrep_ready": "ON", "wsrep_local_state_comment": "Synced", "wsrep_cluster_status": "Primary"}, ("Synced", True)),
    ({"wsrep_ready": "ON", "wsrep_local_state_comment": "Donor/Desynced", "wsrep_cluster_status": "Primary"}, ("Donor/Desynced", False)),
    ({"wsrep_ready": "OFF", "wsrep_local_state_comment": "Joining", "wsrep_cluster_status": "Primary"}, ("Joining", False)),
    ({"wsrep_ready": "OFF", "wsrep_local_state_comment": "Synced", "wsrep_cluster_status": "non-Primary"}, ("non-Primary", False)),
    ({"wsrep_ready": "OFF", "wsrep_local_state_comment": "Synced", "wsrep_cluster_status": "Primary"}, ("Synced", False)),
    ({}, ("not a Galera node", True)),
])
def test_only_a_ready_synced_primary_node_is_used(status, expected):
    assert state_of(status) == expected


def nodes(n: int) -> Nodes:
    return Nodes([DatabaseAddress("127.0.0.1", 5500 + i, "u", "", "db", None) for i in range(n)], probe_s=1)


def test_attempts_go_round_the_usable_nodes_and_skip_those_tried():
    cluster = nodes(3)
    a, b, c = cluster.all
    assert [cluster.pick() for _ in range(4)] == [a, b, c, a]
    b.usable = False
    assert {cluster.pick() for _ in range(6)} == {a, c}
    assert cluster.pick({a}) is c and cluster.pick({c}) is a
    # None usable: the attempt still goes somewhere (its error is the answer), not to a node tried.
    a.usable = c.usable = False
    assert cluster.pick({a, b}) is c
    assert sum(n.attempts for n in cluster.all) == 13


def test_one_node_is_always_used():
    single = nodes(1)
    single.all[0].usable = False
    assert single.pick() is single.all[0] and not single.clustered


def test_galera_errors_are_classified():
    assert 1047 in CONNECTIVITY_CODES and is_retryable(DatabaseError(1047, "WSREP has not yet prepared node"))
    assert is_retryable(DatabaseError(1213, "Deadlock found"))  # a certification conflict: rolled back
    assert COMMIT_UNKNOWN_CODES == {1180, 1047}
    assert commit_unknown(DatabaseError(1180, "Got error during COMMIT")) and commit_unknown(DatabaseError(2013, "lost"))
    assert not commit_unknown(DatabaseError(1213, "Deadlock found"))  # rolled back: retried whole
    assert classify(DatabaseError(1047, "not ready")).status == 503


@given(st.text(max_size=60))
def test_any_database_url_parses_or_is_refused_with_a_reason(text):
    """Whatever DATABASE_URL holds, parsing gives nodes or a ValueError (the message `make run` and
    scripts/dbcheck.py show), never another exception."""
    for url in (text, f"mysql://u:p@{text}/db", f"mysql://u@h1:1,{text}/db"):
        try:
            nodes = DatabaseAddress.parse_nodes(url)
        except ValueError:
            continue
        assert nodes and all(0 < n.port < 65536 and n.database for n in nodes)
