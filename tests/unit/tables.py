"""Catalog objects for unit tests, built the same way the loader builds them."""

from app.db.catalog import build_tables

COLUMNS = [
    ("users", "id", "int", "int(11)", "NO", None, "auto_increment", None, 10, 0, None),
    ("users", "name", "varchar", "varchar(5)", "NO", None, "", 5, None, None, None),
    ("users", "age", "int", "int(10) unsigned", "YES", "NULL", "", None, 10, 0, None),
    ("users", "price", "decimal", "decimal(6,2)", "NO", "0.00", "", None, 6, 2, None),
    ("users", "meta", "longtext", "longtext", "YES", "NULL", "", 4294967295, None, None, None),
    ("users", "kind", "enum", "enum('a','b''c')", "NO", "'a'", "", 3, None, None, None),
    ("users", "born", "date", "date", "YES", "NULL", "", None, None, None, None),
    ("users", "seen", "datetime", "datetime(6)", "YES", "NULL", "", None, None, None, 6),
    ("users", "flag", "tinyint", "tinyint(1)", "YES", "NULL", "", None, 3, 0, None),
    ("users", "blob", "varbinary", "varbinary(4)", "YES", "NULL", "", 4, None, None, None),
    ("users", "twice", "int", "int(11)", "YES", "NULL", "STORED GENERATED", None, 10, 0, None),
    ("users", "odd`name", "int", "int(11)", "YES", "NULL", "", None, 10, 0, None),
    ("pairs", "a", "int", "int(11)", "NO", None, "", None, 10, 0, None),
    ("pairs", "b", "varchar", "varchar(10)", "NO", None, "", 10, None, None, None),
    ("_gateway_keys", "k", "varchar", "varchar(10)", "NO", None, "", 10, None, None, None),
]
KEYS = [("users", "PRIMARY", "id"), ("pairs", "PRIMARY", "a"), ("pairs", "PRIMARY", "b")]
JSON = [("users", "meta")]

TABLES = build_tables(COLUMNS, KEYS, JSON)
USERS = TABLES["users"]
PAIRS = TABLES["pairs"]
