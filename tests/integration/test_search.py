"""Full-text search over MariaDB's FULLTEXT indexes (issue 32): `?col=fts.words`, `bfts` (boolean
mode), `?q=words` over the table's index, ranked by relevance unless ordered; in the JSON filter,
aggregates and exports; never a scan: no index, 400 naming those there are."""

import pytest

from tests.conftest import only, run_sql, running
from tests.integration.test_crud import assert_error

DOCS = [
    """CREATE TABLE docs (id INT PRIMARY KEY, title VARCHAR(100), body TEXT, lang CHAR(2),
        FULLTEXT KEY title_ft (title), FULLTEXT KEY all_ft (title, body))""",
    "CREATE TABLE notes (id INT PRIMARY KEY, body TEXT, FULLTEXT KEY body_ft (body))",
    "CREATE TABLE plain (id INT PRIMARY KEY, body TEXT)",
    """INSERT INTO docs VALUES
        (1, 'Tuning MariaDB', 'buffer pool and redo log sizes for MariaDB servers', 'en'),
        (2, 'Replication', 'MariaDB replicas, GTIDs and semi-sync', 'en'),
        (3, 'Backups', 'mariabackup and point in time recovery', 'fr'),
        (4, 'Query planning', 'indexes, histograms and the optimizer', 'en'),
        (5, 'Galera', 'a cluster of MariaDB nodes: certification, flow control, MariaDB again', 'de'),
        (6, 'Kitchen', 'recipes for bread and soup', 'en'),
        (7, 'Garden', 'tomatoes and beans in summer', 'en'),
        (8, 'Travel', 'trains across the alps', 'fr')""",
    "INSERT INTO notes VALUES (1, 'remember the milk'), (2, 'call the plumber'), (3, 'milk and bread')",
    "INSERT INTO plain VALUES (1, 'milk')",
]


def ids(response):
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["data"]]


async def test_full_text_search_by_column_by_index_and_ranked(schema, settings):
    only(schema, DOCS)
    async with running(settings()) as client:
        # A column with a FULLTEXT index of its own, natural language mode.
        assert ids(await client.get("/api/docs/query", params={"title": "fts.replication", "fields": "id"})) == [2]
        # ?q over the table's index, ranked by relevance (Galera's body says MariaDB twice), then by key.
        ranked = ids(await client.get("/api/notes/query", params={"q": "milk"}))
        assert sorted(ranked) == [1, 3]
        ranked = ids(await client.get("/api/docs/query", params={"q": "mariadb", "q.index": "all_ft"}))
        by_server = run_sql(schema, "SELECT id FROM docs WHERE MATCH (title, body) AGAINST ('mariadb')"
                                    " ORDER BY MATCH (title, body) AGAINST ('mariadb') DESC, id")
        assert ranked == [i for (i,) in by_server] and set(ranked) == {1, 2, 5}
        assert ranked[-1] == 2  # one mention, the others two
        # An order given wins over relevance; offset pages; a cursor is refused while ranked.
        assert ids(await client.get("/api/docs/query", params={"q": "mariadb", "q.index": "all_ft", "order": "id"})) == [1, 2, 5]
        page2 = ids(await client.get("/api/docs/query", params={"q": "mariadb", "q.index": "all_ft", "limit": 1, "offset": 1}))
        assert page2 == ranked[1:2]
        assert_error(await client.get("/api/docs/query", params={"q": "mariadb", "q.index": "all_ft", "cursor": "x"}),
                     400, "invalid_filter")
        # Boolean mode: + must, - must not, and other filters beside it.
        response = await client.get("/api/docs/query", params={"title": "bfts.+tuning -galera"})
        assert ids(response) == [1]
        response = await client.get("/api/docs/query", params={"q": "+mariadb -replicas", "q.index": "all_ft", "lang": "eq.en"})
        assert sorted(ids(response)) == [1, 2]  # natural language mode: + and - are not operators
        # The JSON filter, an aggregate, an export, a count.
        response = await client.post("/api/docs/query", json={"input": {"title": {"fts": "backups"}}, "fields": "id"})
        assert ids(response) == [3]
        response = await client.get("/api/docs/aggregate", params={"group_by": "lang", "count": "*", "q": "mariadb",
                                                                     "q.index": "all_ft", "order": "lang"})
        assert response.json()["data"] == [{"lang": "de", "count": 1}, {"lang": "en", "count": 2}]
        response = await client.get("/api/batch/notes/export", params={"q": "plumber"})
        assert response.text.splitlines() == ["id,body", "2,call the plumber"]
        meta = (await client.get("/api/notes/query", params={"q": "milk", "count": "exact"})).json()["meta"]
        assert meta["total"] == 2


@pytest.mark.parametrize("table, params", [
    ("docs", {"body": "fts.redo"}),  # body is only in a two-column index
    ("docs", {"lang": "fts.en"}),
    ("plain", {"body": "fts.milk"}),
    ("plain", {"q": "milk"}),
    ("docs", {"q": "mariadb"}),  # two indexes: say which
    ("docs", {"q": "mariadb", "q.index": "nope"}),
    ("notes", {"q": ""}),
    ("notes", {"q.index": "body_ft"}),
    ("notes", {"body": "fts." + "x" * 1001}),
])
async def test_a_search_without_an_index_is_a_400_naming_the_indexes(schema, settings, table, params):
    only(schema, DOCS)
    async with running(settings()) as client:
        body = assert_error(await client.get(f"/api/{table}/query", params=params), 400, "invalid_filter")
        if "fulltext" in (body["details"] or {}):
            assert body["details"]["fulltext"] == {
                "docs": {"title_ft": ["title"], "all_ft": ["title", "body"]}, "notes": {"body_ft": ["body"]},
                "plain": {},
            }[table]
        # The same in the JSON filter, and never in a HAVING.
        assert_error(await client.post(f"/api/{table}/query", json={"input": {"body": {"fts": "milk"}}}) if table == "plain"
                     else await client.get(f"/api/{table}/query", params=params), 400, "invalid_filter")
    assert run_sql(schema, "SELECT 1") == [(1,)]


async def test_a_column_named_q_is_filtered_as_a_column(schema, settings):
    only(schema, ["CREATE TABLE quiz (id INT PRIMARY KEY, q VARCHAR(20), FULLTEXT KEY q_ft (q))",
                  "INSERT INTO quiz VALUES (1, 'why'), (2, 'how now')"])
    async with running(settings()) as client:
        assert ids(await client.get("/api/quiz/query", params={"q": "why"})) == [1]
        assert ids(await client.get("/api/quiz/query", params={"q": "fts.now"})) == [2]
        described = (await client.get("/api/tables/quiz")).json()["data"]
        assert described["fulltext"] == {"q_ft": ["q"]}


def test_no_search_text_gives_a_5xx(schema, settings):
    """InnoDB's parser refuses a stray * @ ( or ) with a syntax error and nests parentheses until it
    runs out of memory: every text a search is given reaches it rewritten, or is a 400."""
    from hypothesis import HealthCheck, given
    from hypothesis import settings as examples
    from hypothesis import strategies as st
    from starlette.testclient import TestClient

    from app.main import create_app

    only(schema, DOCS)
    pieces = st.sampled_from(list('+-~<>()"*@ .a1é\'_') + ["mariadb", "tuning", "x@y.com"])
    texts = st.lists(pieces, max_size=20).map("".join)
    with TestClient(create_app(settings())) as client:

        @examples(max_examples=150, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(text=texts)
        def check(text):
            for params in ({"title": "bfts." + text}, {"title": "fts." + text}, {"q": text, "q.index": "all_ft"}):
                response = client.get("/api/docs/query", params=params)
                assert response.status_code in (200, 400), (params, response.text)
            response = client.post("/api/docs/query", json={"input": {"title": {"bfts": text}}})
            assert response.status_code in (200, 400), response.text

        check()
        for deep in ("(" * 300 + "a" + ")" * 300, "a)", "(a", "@", "*", "a@b.com", "+++"):
            assert client.get("/api/docs/query", params={"title": "bfts." + deep}).status_code in (200, 400), deep


async def test_an_index_made_while_the_gateway_runs_is_found(schema, settings):
    only(schema, DOCS)
    async with running(settings(catalog_ttl_s=3600)) as client:
        assert_error(await client.get("/api/plain/query", params={"body": "fts.milk"}), 400, "invalid_filter")
        run_sql(schema, "ALTER TABLE plain ADD FULLTEXT KEY body_ft (body)")
        assert ids(await client.get("/api/plain/query", params={"body": "fts.milk"})) == [1]


async def test_openapi_offers_q_where_a_table_has_a_fulltext_index(schema, settings):
    only(schema, DOCS)
    async with running(settings()) as client:
        parameters = (await client.get("/openapi.json")).json()["components"]["parameters"]
        docs = parameters["docs.filters"]["schema"]["properties"]
        assert sorted(docs["q.index"]["enum"]) == ["all_ft", "title_ft"] and "q" in docs
        assert "q" not in parameters["plain.filters"]["schema"]["properties"]
