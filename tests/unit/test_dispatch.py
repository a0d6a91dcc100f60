"""The route table and the dispatcher built from it (pure: no app, no database)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.api.routes import ROUTES
from app.core.errors import NotAcceptable
from app.http import negotiation
from app.http.dispatch import Dispatcher
from app.http.route import Route

DISPATCHER = Dispatcher(ROUTES)
RESERVED = {"tables", "batch", "schemas", "rpc", "policies", "admin"}  # /api's own first segments, as the table declares them


def serving(path: str, method: str = "GET") -> Route | None:
    node, _ = DISPATCHER.match(path)
    return node.routes.get(method) if node is not None else None


def test_every_route_is_declared_once_and_serves_its_own_path():
    seen = set()
    for route in ROUTES:
        assert (route.method, route.path) not in seen, route.path
        seen.add((route.method, route.path))
        path = route.path.replace("{table}", "users").replace("{key}", "7").replace("{job_id}", "j1")
        assert serving(path, route.method) is route, route.path


def test_the_reserved_names_are_the_literal_segments_of_the_table():
    assert set(DISPATCHER.root.literal["api"].literal) == RESERVED
    assert set(DISPATCHER.root.literal["api"].literal["batch"].literal) == {"import", "validate", "jobs", "dead-letters"}


def test_a_literal_segment_is_never_taken_for_a_table():
    assert serving("/api/batch/import", "POST").name == "import_file"
    assert serving("/api/batch/query") is None  # not a table called "batch"
    assert serving("/api/tables/users").name == "describe"
    assert serving("/api/users/query").name == "list"
    assert serving("/api/users/aggregate").name == "aggregate"
    assert serving("/api/users/7").name == "get"


def test_any_table_is_served_under_api_tables():
    for name in ("batch", "tables", "schemas", "users", "query"):
        assert serving(f"/api/tables/{name}/query").name == "list"
        assert serving(f"/api/tables/{name}/7", "PUT").name == "update_by_key"
        assert serving(f"/api/tables/{name}", "POST").name == "create"
        assert serving(f"/api/tables/{name}/export").name == "export"
    assert serving("/api/tables/batch").name == "describe"  # GET is the catalog's


def test_a_reserved_name_is_told_where_its_table_is():
    error = DISPATCHER._missing("/api/batch/query", "GET", {})
    assert error.code == "not_found" and error.details["use"] == "/api/tables/batch/query"
    error = DISPATCHER._missing("/api/batch/jobs/export", "GET", {})
    assert error.code == "not_found"  # a job called "export" has no such route: no table is meant here


def test_a_known_path_with_another_method_is_405_naming_the_allowed_ones():
    node, _ = DISPATCHER.match("/api/users/query")
    error = DISPATCHER._missing("/api/users/query", "PATCH", node.routes)
    assert error.status == 405 and error.headers["Allow"] == "GET, POST"


def test_public_paths_use_the_long_form_only_for_reserved_names():
    export = next(r for r in ROUTES if r.name == "export")
    listing = next(r for r in ROUTES if r.name == "list")
    assert DISPATCHER.public_path(listing, "users") == "/api/users/query"
    assert DISPATCHER.public_path(listing, "batch") == "/api/tables/batch/query"
    assert DISPATCHER.public_path(export, "users") == "/api/batch/users/export"
    assert DISPATCHER.public_path(export, "jobs") == "/api/tables/jobs/export"


def test_two_routes_claiming_one_place_are_refused():
    async def handler(call):  # pragma: no cover - never called
        return None

    with pytest.raises(ValueError, match="declared twice"):
        Dispatcher([Route("GET", "/a/{x}", handler, "", "open", "a"), Route("GET", "/a/{x}", handler, "", "open", "b")])
    with pytest.raises(ValueError, match="another route has"):
        Dispatcher([Route("GET", "/a/{x}", handler, "", "open", "a"), Route("GET", "/a/{y}/b", handler, "", "open", "b")])


segments = st.text(st.characters(blacklist_characters="/", blacklist_categories=("Cs",)), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(table=segments, key=segments, method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
def test_any_table_and_key_reach_the_route_of_their_shape(table, key, method):
    """Whatever a table or key is called, /api/tables/{table}/... reaches the rows' routes, and the
    short form does unless the name is reserved (then nothing a table's is served there)."""
    long = serving(f"/api/tables/{table}/{key}", method)
    if key in ("query", "aggregate", "export", "ws"):
        return
    assert long is not None and long.path == "/api/{table}/{key}" if method != "POST" else long is None
    short = serving(f"/api/{table}/{key}", method)
    if table in RESERVED:
        assert short is None or "{table}" not in short.path[: len("/api/{table}")]
    elif method != "POST":
        assert short is long


@pytest.mark.parametrize("accept, chosen", [
    (None, "json"), ("", "json"), ("*/*", "json"), ("application/json", "json"), ("text/csv", "csv"),
    ("TEXT/CSV; charset=utf-8", "csv"), ("application/x-ndjson", "jsonl"), ("text/*", "csv"),
    ("text/csv;q=0.5, application/json;q=0.9", "json"), ("application/json;q=0, */*", "csv"),
    ("application/x-ndjson, text/csv", "csv"),  # a tie: the server's order
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "json"),  # a browser
    ("text/csv;q=0.2, application/x-ndjson;q=0.3", "jsonl"),
])
def test_a_read_answers_in_what_accept_prefers(accept, chosen):
    assert negotiation.choose(accept) == chosen


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "text/csv;q=abc", "text/csv;q=0", "image/*"])
def test_an_accept_that_takes_nothing_offered_is_406_naming_what_is(accept):
    with pytest.raises(NotAcceptable) as caught:
        negotiation.choose(accept)
    assert caught.value.details == {"available": ["application/json", "text/csv", "application/x-ndjson"]}


@given(st.text(max_size=80))
def test_any_accept_header_is_chosen_or_406(accept):
    try:
        assert negotiation.choose(accept) in ("json", "csv", "jsonl")
    except NotAcceptable:
        pass
