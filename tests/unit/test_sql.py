from app.query import sql
from app.query.filters import parse_filter, parse_query_params
from app.query.lists import list_query

from .tables import PAIRS, USERS


def query(where=None, **options):
    return list_query(USERS, where, default_limit=100, max_limit=1000, **options)


def test_select_defaults_to_all_columns_ordered_by_primary_key():
    statement, params = sql.select(USERS, query())
    assert statement.startswith("SELECT `id`, `name`, `age`")
    assert statement.endswith("FROM `users` ORDER BY `id` ASC LIMIT %s")
    assert params == (100,)


def test_select_with_filter_fields_order_page():
    where = parse_filter(USERS, {"age": {"gte": 18}, "or": [{"name": "a"}, {"name": None}]})
    statement, params = sql.select(USERS, query(where, fields="id,name", order="age.desc,-name", limit=10, offset=20), extra_row=True)
    assert statement == (
        "SELECT `id`, `name`, `age` FROM `users` WHERE (`age` >= %s AND (`name` = %s OR `name` IS NULL))"  # age: for the cursor
        " ORDER BY `age` DESC, `name` DESC, `id` DESC LIMIT %s OFFSET %s"  # the key breaks ties: stable pages
    )
    assert params == (18, "a", 11, 20)


def test_every_operator_renders_with_parameters_only():
    where = parse_filter(
        USERS,
        {"age": {"eq": 1, "ne": 2, "gt": 3, "gte": 4, "lt": 5, "lte": 6, "in": [7, 8], "nin": [9], "between": [1, 2]},
         "name": {"like": "a%", "is_null": False}},
    )
    statement, params = sql.where_sql(where)
    assert statement == (
        "(`age` = %s AND `age` <> %s AND `age` > %s AND `age` >= %s AND `age` < %s AND `age` <= %s"
        " AND `age` IN (%s,%s) AND `age` NOT IN (%s) AND `age` BETWEEN %s AND %s"
        " AND `name` LIKE %s AND `name` IS NOT NULL)"
    )
    assert params == (1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, "a%")


def test_empty_in_list_matches_nothing_and_empty_nin_everything():
    assert sql.where_sql(parse_filter(USERS, {"age": {"in": []}})) == ("1=0", ())
    assert sql.where_sql(parse_filter(USERS, {"age": {"nin": []}})) == ("1=1", ())


def test_identifiers_are_quoted_and_percent_doubled():
    column = USERS.column("odd`name")
    assert column.quoted == "`odd``name`"
    from app.db.catalog import quote

    assert quote("a%b") == "`a%%b`"


def test_insert_multi_row_with_defaults_and_returning():
    columns = [USERS.column("name"), USERS.column("age")]
    statement, params = sql.insert(
        USERS, columns, [["a", 1], ["b", None]], returning=True, defaults=[[False, False], [False, True]]
    )
    assert statement.startswith("INSERT INTO `users` (`name`, `age`) VALUES (%s,%s),(%s,DEFAULT) RETURNING `id`, ")
    assert params == ("a", 1, "b")


def test_insert_modes():
    columns = [PAIRS.column("a"), PAIRS.column("b")]
    assert sql.insert(PAIRS, columns, [[1, "x"]], mode="ignore")[0].startswith("INSERT IGNORE INTO `pairs`")
    upsert = sql.insert(USERS, [USERS.column("id"), USERS.column("name")], [[1, "x"]], mode="upsert")[0]
    assert upsert.endswith("ON DUPLICATE KEY UPDATE `name`=VALUES(`name`)")


def test_insert_with_no_columns_uses_all_defaults():
    assert sql.insert(USERS, [], [[], []])[0] == "INSERT INTO `users` () VALUES (),()"


def test_update_and_delete():
    where = parse_filter(USERS, {"id": 3})
    assert sql.update(USERS, {USERS.column("name"): "z"}, where) == ("UPDATE `users` SET `name` = %s WHERE `id` = %s", ("z", 3))
    assert sql.delete(USERS, where) == ("DELETE FROM `users` WHERE `id` = %s", (3,))


def test_offset_without_limit_is_valid_mysql():
    q = list_query(USERS, None, default_limit=None, max_limit=None, offset=5)
    statement, params = sql.select(USERS, q)
    assert "LIMIT 18446744073709551615 OFFSET %s" in statement and params == (5,)


def test_query_string_values_never_reach_sql_text():
    evil = "1; DROP TABLE users; --"
    where = parse_query_params(USERS, [("name", "like." + evil)])
    statement, params = sql.where_sql(where)
    assert evil not in statement and params == (evil,)


def test_csv_cells_test_for_null_only_where_null_can_be():
    assert "IS NULL" not in sql.csv_cell(USERS.column("name"))  # NOT NULL
    assert sql.csv_cell(USERS.column("age")).startswith("IF(`age` IS NULL, '', ")  # the standard convention
    assert sql.csv_cell(USERS.column("age"), null="\\N").startswith("IF(`age` IS NULL, CHAR(92, 78 USING utf8mb4), ")
    assert "'" not in sql.csv_cell(USERS.column("age"), null="'; DROP TABLE users; --")  # spelt as bytes
    assert "REGEXP" in sql.csv_cell(USERS.column("name")) and "REGEXP" not in sql.csv_cell(USERS.column("age"))
    assert "\\\\" not in sql.csv_select(USERS, list_query(USERS, None, default_limit=None, max_limit=None))[0]
