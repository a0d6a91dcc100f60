"""Aggregates against the same GROUP BY written in SQL on a real table (NULLs, empty groups,
decimals, dates)."""

import datetime as dt
from decimal import Decimal

import pytest

from tests.conftest import run_sql, running
from tests.integration.test_crud import assert_error

ROWS = [
    (1, "Sales", "Paris", "1000.50", 3, "2020-01-15", 4.5),
    (2, "Sales", "Paris", "2000.25", None, "2021-06-01", None),
    (3, "Sales", "Lyon", None, 1, None, 3.0),
    (4, "R&D", "Paris", "3000.00", 5, "2019-03-10", 5.0),
    (5, "R&D", "Nice", "2999.99", 2, "2022-11-30", 4.0),
    (6, None, "Lyon", "1500.00", None, "2023-02-28", None),
    (7, None, None, None, None, None, None),
]


@pytest.fixture
def employees(schema):
    run_sql(schema, """CREATE TABLE employees (
        id INT PRIMARY KEY, department VARCHAR(20), city VARCHAR(20), salary DECIMAL(10,2),
        bonus INT, hired_at DATE, rating DOUBLE, note JSON)""")
    for row in ROWS:
        run_sql(schema, "INSERT INTO employees (id, department, city, salary, bonus, hired_at, rating) VALUES (%s,%s,%s,%s,%s,%s,%s)", row)
    return schema


def as_json(value):
    """What the gateway's JSON carries for a value pymysql reads."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def expected(sql, query: str, names: list[str]) -> list[dict]:
    return [dict(zip(names, map(as_json, row))) for row in run_sql(sql, query)]


async def test_every_function_by_group_matches_sql(employees, settings):
    async with running(settings()) as client:
        response = await client.get("/api/employees/aggregate", params=[
            ("group_by", "department"), ("count", "*"), ("count", "bonus"), ("count_distinct", "city"),
            ("sum", "salary,bonus"), ("avg", "salary"), ("avg", "rating"), ("min", "hired_at"), ("max", "hired_at"),
        ])
        assert response.status_code == 200, response.text
        body = response.json()
        names = ["department", "count", "count_bonus", "count_distinct_city", "sum_salary", "sum_bonus",
                 "avg_salary", "avg_rating", "min_hired_at", "max_hired_at"]
        want = expected(employees, """SELECT department, COUNT(*), COUNT(bonus), COUNT(DISTINCT city), SUM(salary),
            SUM(bonus), AVG(salary), AVG(rating), MIN(hired_at), MAX(hired_at) FROM employees
            GROUP BY department ORDER BY department""", names)
        for row in want:
            row["sum_bonus"] = int(row["sum_bonus"]) if row["sum_bonus"] is not None else None  # an integer sum is an integer
        assert body["data"] == want
        assert body["meta"] == {"count": 3, "limit": 100, "offset": 0, "next": None}
        assert [list(r) for r in body["data"]][0] == names  # result columns in a predictable order
        assert body["data"][0]["department"] is None and body["data"][0]["sum_salary"] == "1500.00"  # the NULL group


async def test_filters_having_order_and_pages(employees, settings):
    async with running(settings()) as client:
        async def get(*params):
            response = await client.get("/api/employees/aggregate", params=list(params))
            assert response.status_code == 200, response.text
            return response.json()

        paris = await get(("group_by", "department"), ("city", "Paris"), ("sum", "salary"))
        assert paris["data"] == expected(employees, "SELECT department, SUM(salary) FROM employees WHERE city = 'Paris' GROUP BY department ORDER BY department", ["department", "sum_salary"])
        assert [r["department"] for r in paris["data"]] == ["R&D", "Sales"]
        having = await get(("group_by", "department"), ("having", "count.gt.2"))
        assert having["data"] == [{"department": "Sales", "count": 3}]
        having = await get(("group_by", "department"), ("sum", "salary"), ("having", "sum_salary.gte.5999.99"), ("having", "count.lt.3"))
        assert having["data"] == [{"department": "R&D", "sum_salary": "5999.99"}]
        ordered = await get(("group_by", "city"), ("order", "count.desc,city.asc"))
        assert [(r["city"], r["count"]) for r in ordered["data"]] == [("Paris", 3), ("Lyon", 2), (None, 1), ("Nice", 1)]
        assert ordered["data"] == expected(employees, "SELECT city, COUNT(*) FROM employees GROUP BY city ORDER BY COUNT(*) DESC, city ASC", ["city", "count"])
        page = await get(("group_by", "city"), ("order", "city"), ("limit", "2"))
        assert [r["city"] for r in page["data"]] == [None, "Lyon"] and page["meta"]["next"] == 2
        rest = await get(("group_by", "city"), ("order", "city"), ("limit", "2"), ("offset", "2"))
        assert [r["city"] for r in rest["data"]] == ["Nice", "Paris"] and rest["meta"]["next"] is None
        unselected = await get(("group_by", "department"), ("sum", "salary"), ("having", "avg_salary.gt.2000"), ("order", "max_bonus.desc"))
        assert unselected["data"] == expected(employees, "SELECT department, SUM(salary) FROM employees GROUP BY department HAVING AVG(salary) > 2000 ORDER BY MAX(bonus) DESC", ["department", "sum_salary"])
        assert [r["department"] for r in unselected["data"]] == ["R&D"]
        by_two = await get(("group_by", "department,city"), ("having", "department.eq.Sales"))
        assert by_two["data"] == [{"department": "Sales", "city": "Lyon", "count": 1}, {"department": "Sales", "city": "Paris", "count": 2}]


async def test_no_groups_and_empty_groups(employees, settings):
    async with running(settings()) as client:
        overall = (await client.get("/api/employees/aggregate?sum=bonus&avg=salary&max=hired_at")).json()
        assert overall["data"] == [{"sum_bonus": 11, "avg_salary": str(run_sql(employees, "SELECT AVG(salary) FROM employees")[0][0]),
                                    "max_hired_at": "2023-02-28"}]
        assert overall["meta"]["limit"] is None
        nothing = (await client.get("/api/employees/aggregate?city=Berlin&count=*&sum=salary")).json()
        assert nothing["data"] == [{"count": 0, "sum_salary": None}]  # SQL's answer for no rows
        assert (await client.get("/api/employees/aggregate?city=Berlin&group_by=city")).json()["data"] == []


async def test_the_json_form_says_the_same(employees, settings):
    async with running(settings()) as client:
        body = {"input": {"or": [{"city": "Paris"}, {"bonus": {"gte": 2}}]}, "group_by": ["department"],
                "aggregates": {"count": "*", "sum": ["salary"], "min": ["rating"]}, "having": {"count": {"gte": 1}},
                "order_by": "sum_salary.desc", "limit": 10}
        response = await client.post("/api/employees/aggregate", json=body)
        assert response.status_code == 200, response.text
        want = expected(employees, """SELECT department, COUNT(*), SUM(salary), MIN(rating) FROM employees
            WHERE city = 'Paris' OR bonus >= 2 GROUP BY department HAVING COUNT(*) >= 1 ORDER BY SUM(salary) DESC""",
                        ["department", "count", "sum_salary", "min_rating"])
        assert response.json()["data"] == want
        get = await client.get("/api/employees/aggregate", params={"group_by": "department", "count": "*", "sum": "salary", "min": "rating", "order": "sum_salary.desc", "city": "Paris"})
        assert get.status_code == 200


async def test_bad_aggregates_are_400_with_the_reason(employees, settings):
    async with running(settings()) as client:
        cases = [
            ("sum=city", 400, "invalid_aggregate"),
            ("avg=hired_at", 400, "invalid_aggregate"),
            ("sum=nosuch", 400, "unknown_column"),
            ("group_by=nosuch", 400, "unknown_column"),
            ("sum=*", 400, "invalid_aggregate"),
            ("group_by=city&having=nosuch.gt.1", 400, "invalid_aggregate"),
            ("group_by=city&having=avg_city.gt.1", 400, "invalid_aggregate"),  # an average of text
            ("group_by=city&having=count.gt.many", 400, "invalid_filter"),
            ("group_by=city&having=count.like.1", 400, "invalid_filter"),
            ("group_by=city&order=total.desc", 400, "invalid_aggregate"),
            ("group_by=city&limit=0", 400, "invalid_filter"),
            ("group_by=city,city", 400, "invalid_aggregate"),
            ("median=salary", 400, "unknown_column"),  # not a function: a filter on a column it lacks
        ]
        for query, status, code in cases:
            assert_error(await client.get(f"/api/employees/aggregate?{query}"), status, code)
        for body, code in (
            ({"aggregates": {"median": ["salary"]}}, "invalid_aggregate"),
            ({"aggregates": ["count"]}, "invalid_body"),
            ({"having": {"nosuch": 1}}, "invalid_aggregate"),
            ({"group_by": "department", "having": {"count": {"gt": True}}}, "invalid_filter"),
        ):
            assert_error(await client.post("/api/employees/aggregate", json=body), 400, code)
        assert_error(await client.get("/api/nosuch/aggregate?count=*"), 404, "table_not_found")
        assert_error(await client.get("/api/secret_stuff/aggregate?count=*"), 404, "table_not_found")


async def test_a_table_of_every_type(schema, settings):
    """min/max typed like the column (JSON, BIT, dates, times, binary), sums of integers exact."""
    run_sql(schema, "INSERT INTO types (id, b, d, dt, tm, bin, bits, j, flag) VALUES (1, 9223372036854775807, 1.5, '2024-01-01 10:00:00.5', '10:00:01', 'ab', b'101', '[1]', 1), (2, 9223372036854775807, 2.25, NULL, NULL, 'cd', b'011', '{\"a\": 2}', 0)")
    async with running(settings()) as client:
        response = await client.get("/api/types/aggregate?sum=b,d,flag&min=dt,tm,bin,bits,j&max=bits")
        assert response.status_code == 200, response.text
        row = response.json()["data"][0]
        assert row["sum_b"] == 18446744073709551614 and row["sum_d"] == "3.750" and row["sum_flag"] == 1
        assert row["min_dt"] == "2024-01-01T10:00:00.500000" and row["min_tm"] == "10:00:01"
        assert row["min_bits"] == 3 and row["max_bits"] == 5 and row["min_bin"] == "YWI="
