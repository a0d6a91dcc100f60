"""CSV under faults: the database going away mid-import or mid-export, clients going away."""

import httpx
import pytest

from tests.conftest import eventually, proxied_url, run_sql, running, serving
from tests.integration.test_crud import assert_error

FAST = {"attempt_timeouts_ms": (100, 100, 100, 100), "retry_waits_ms": (10, 10, 10)}
BOUNDARY = "gatewaytestboundary"


def multipart(filename: str, parts: list[bytes], between=None):
    """A multipart body streamed part by part; `between(i)` runs before part i is sent."""

    async def body():
        yield (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
               "Content-Type: text/csv\r\n\r\n").encode()
        for i, part in enumerate(parts):
            if between:
                await between(i)
            yield part
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    return body(), {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def running_processes(schema, prefix: str) -> int:
    rows = run_sql(schema, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE %s", (prefix + "%",))
    return rows[0][0]


@pytest.mark.parametrize("load_data", [True, False])
async def test_database_lost_mid_import_reports_committed_lines(schema, settings, proxy, test_db, load_data):
    config = settings(
        database_url=proxied_url(test_db, proxy.port), import_batch_rows=10, import_load_data=load_data, **FAST
    )
    first = b"name\r\n" + b"".join(f"a{i}\r\n".encode() for i in range(2, 32))  # lines 2-31
    second = b"".join(f"b{i}\r\n".encode() for i in range(32, 62))  # lines 32-61

    async def between(i):
        if i == 1:  # some of the first part is in; now the database goes away
            await eventually(lambda: run_sql(schema, "SELECT COUNT(*) FROM users")[0][0] > 0)
            await proxy.down()

    async with running(config) as client:
        content, headers = multipart("users.csv", [first, second], between)
        response = await client.post("/api/batch/import", content=content, headers=headers)
        body = assert_error(response, 503, "service_unavailable")
        report = body["details"]["report"]
    # Exactly the lines the report calls committed are in the table, and nothing else.
    committed = {line for start, end in report["committed_lines"] for line in range(start, end + 1)}
    present = {int(name[1:]) for (name,) in run_sql(schema, "SELECT name FROM users")}
    assert committed == present and present
    not_committed = {line for start, end in report["not_committed_lines"] for line in range(start, end + 1)}
    assert not_committed and not (not_committed & present)
    assert report["rows_inserted"] == len(present)
    assert report["rows_read"] == report["rows_inserted"] + report["rows_not_applied"]


@pytest.fixture
def big_table(schema):
    run_sql(schema, "INSERT INTO users (name, email) SELECT CONCAT('user ', seq), CONCAT(REPEAT('x', 60), seq) FROM seq_1_to_300000")
    return schema


async def test_export_client_disconnect_frees_cursor_and_connection(big_table, settings):
    async with serving(settings()) as (app, url):
        async with httpx.AsyncClient() as client:
            async with client.stream("GET", f"{url}/api/batch/users/export") as response:
                assert response.status_code == 200
                async for chunk in response.aiter_raw():
                    assert chunk.startswith(b"id,name,email")
                    break  # the client goes away after the first chunk
        db = app.state.db
        await eventually(lambda: db.pool_stats()["used"] == 0)
        await eventually(lambda: running_processes(big_table, "SELECT CONCAT_WS") == 0)
        # The gateway is fine afterwards.
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{url}/api/users/1")).status_code == 200


async def test_database_lost_mid_export_breaks_the_transfer(big_table, settings, proxy, test_db):
    config = settings(database_url=proxied_url(test_db, proxy.port), kill_timeout_ms=100)
    async with serving(config) as (app, url):
        received = 0
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.HTTPError):  # never a silently short file
                async with client.stream("GET", f"{url}/api/batch/users/export") as response:
                    assert response.status_code == 200
                    async for chunk in response.aiter_raw():
                        received += len(chunk)
                        if proxy._links:
                            proxy.cut_all()
        assert 0 < received < 300_000 * 70
        await eventually(lambda: app.state.db.pool_stats()["used"] == 0)


async def test_export_is_retried_before_the_first_byte(schema, settings, proxy, test_db):
    run_sql(schema, "INSERT INTO users (name) VALUES ('a')")
    async with running(settings(database_url=proxied_url(test_db, proxy.port), **FAST)) as client:
        assert (await client.get("/api/batch/users/export")).status_code == 200
        proxy.cut_all()  # the pooled connection is dead; the first attempt fails, the retry works
        response = await client.get("/api/batch/users/export")
        assert response.status_code == 200 and "\r\n1,a,,,0.00," in response.text
        await proxy.down()
        assert_error(await client.get("/api/batch/users/export"), 503, "service_unavailable")
