"""Driver errors -> what the gateway does about them, in one table (pure).

Each MySQL/MariaDB error number the gateway knows has a kind: whether the wrapper retries it (and
an attempt moves to another node at once), what the caller gets when it is final, and whether, when
it answered a COMMIT, the write may have applied. Every decision about a database error, in the
wrapper (retry.py), the connection layer (connections.py) and the callers, reads this table.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from app.core.errors import (
    CommitOutcomeUnknown,
    Conflict,
    DatabaseError,
    GatewayError,
    GatewayTimeout,
    InternalError,
    InvalidValue,
    MissingColumn,
    PoolExhausted,
    ServiceUnavailable,
    TableNotFound,
    UnknownColumn,
)

log = logging.getLogger("gateway.database")


@dataclass(frozen=True)
class Kind:
    name: str
    retried: bool  # transient: the wrapper tries again (on the schedule)
    connectivity: bool  # the server or the path to it is away: another node, at once (Galera)
    final: Callable[[DatabaseError], GatewayError]  # what the caller gets when it is not retried (again)


def _unavailable(exc: DatabaseError) -> GatewayError:
    return ServiceUnavailable("database unavailable", {"db_code": exc.code})


def _setup(said: str | None) -> Callable[[DatabaseError], GatewayError]:
    """The gateway's own configuration does not fit the server: retrying will not help, and it is not
    the caller's fault either. What it is goes in the message (never the password)."""
    return lambda exc: ServiceUnavailable(
        f"database not usable: {said or exc.message[:1].lower() + exc.message[1:]}", {"db_code": exc.code}
    )


CONNECTIVITY = Kind("connectivity", True, True, _unavailable)
# A lock wait timeout, a deadlock (on Galera: a certification conflict).
CONTENTION = Kind("contention", True, False, _unavailable)
# The server stopped the statement at the time the gateway gave it.
SERVER_TIMEOUT = Kind("server_timeout", True, False, lambda exc: GatewayTimeout(
    "the database did not answer in time (it stopped the statement)", {"db_code": exc.code}
))
CONFLICT = Kind("conflict", False, False, lambda exc: Conflict(exc.message, {"db_code": exc.code}))
# How the server names a column in a refusal: 'name', or `database`.`table`.`name` (MariaDB 10.5+).
_COLUMN_NAMED = re.compile(r"column (?:'((?:[^']|'')+)'|(?:`(?:[^`]|``)+`\.)*`((?:[^`]|``)+)`)")
_AT_ROW = re.compile(r" at row \d+$")


# A CHECK constraint's refusal: MariaDB's names the schema and table too, MySQL's only the constraint.
_CHECK = re.compile(r"CONSTRAINT `((?:[^`]|``)+)` failed|[Cc]heck constraint '((?:[^']|'')+)' is violated")


def _value_refused(exc: DatabaseError) -> InvalidValue:
    """The server's refusal of a value, with the column it names (as the gateway's own checks name
    it: 'name', not the database's and table's names too) and without its "at row N", which counts
    the statement's rows, not the caller's."""
    message = _AT_ROW.sub("", exc.message)
    details: dict = {"db_code": exc.code}
    check = _CHECK.search(message)
    if check:
        name = check.group(1).replace("``", "`") if check.group(1) is not None else check.group(2).replace("''", "'")
        return InvalidValue(f"a row breaks the table's CHECK constraint '{name}'", details | {"constraint": name})
    named = _COLUMN_NAMED.search(message)
    if named:
        column = named.group(1).replace("''", "'") if named.group(1) is not None else named.group(2).replace("``", "`")
        details["column"] = column
        message = message[: named.start()] + f"column '{column}'" + message[named.end():]
    return InvalidValue(message, details)


VALUE = Kind("value", False, False, _value_refused)
CHARSET = Kind("charset", False, False, lambda exc: InvalidValue(
    "a value has characters the column's character set cannot hold", {"db_code": exc.code}
))
MISSING = Kind("missing_column", False, False, lambda exc: MissingColumn(exc.message, {"db_code": exc.code}))
_UNKNOWN_COLUMN = re.compile(r"Unknown column '(?:[^']*\.)?((?:[^']|'')*)'")


def _column_gone(exc: DatabaseError) -> UnknownColumn:
    """The server does not know a column the gateway's catalog does (an ALTER since it was read):
    named as the table names it, never with the statement's aliases or text."""
    named = _UNKNOWN_COLUMN.search(exc.message)
    column = named.group(1).replace("''", "'") if named else None
    return UnknownColumn(
        f"column '{column}' is not in the table now (it changed since the gateway read it)" if column
        else "a column is not in the table now (it changed since the gateway read it)",
        {"db_code": exc.code} | ({"column": column} if column else {}),
    )


NO_COLUMN = Kind("unknown_column", False, False, _column_gone)
NO_TABLE = Kind("unknown_table", False, False, lambda exc: TableNotFound("table does not exist", {"db_code": exc.code}))
# A trigger or procedure refused the row (SIGNAL): its message is written for the caller.
SIGNALLED = Kind("signalled", False, False, lambda exc: InvalidValue(
    f"the database refused the row: {exc.message}", {"db_code": exc.code}
))
ROUTINE = Kind("routine", False, False, lambda exc: InvalidValue(
    f"the routine could not run: {exc.message}", {"db_code": exc.code}
))
# The server will not take writes now (read-only, a full table or disk): not the caller's doing.
NOT_WRITABLE = Kind("not_writable", False, False, _unavailable)
READ_ONLY = Kind("read_only", True, False, _unavailable)  # a primary read-only for a moment (a failover)


def _unexpected(exc: DatabaseError) -> GatewayError:
    log.error("database error %s: %s", exc.code, exc.message)
    return InternalError("internal error")


UNKNOWN = Kind("unknown", False, False, _unexpected)

CODES: dict[int, Kind] = {
    # Lost/refused connections, too many connections, shutdown, connection killed, and a Galera node
    # that is not ready (joining, or cut off from the primary component: 1047).
    **dict.fromkeys((2002, 2003, 2006, 2013, 2055, 1040, 1053, 1927, 1047), CONNECTIVITY),
    **dict.fromkeys((1205, 1213), CONTENTION),
    # max_statement_time (MariaDB), MAX_EXECUTION_TIME (MySQL), and a statement killed by KILL QUERY
    # (the gateway's, after its own timer): each was stopped and rolled back.
    **dict.fromkeys((1969, 3024, 1317), SERVER_TIMEOUT),
    **dict.fromkeys((1062, 1022, 1586, 1451, 1452, 1216, 1217), CONFLICT),  # duplicate key, foreign key
    # Values that do not fit; a CHECK constraint (4025 MariaDB, 3819 MySQL).
    **dict.fromkeys((1048, 1264, 1265, 1292, 1366, 1367, 1406, 1411, 1690, 3140, 4025, 4078, 3819), VALUE),
    1644: SIGNALLED,
    1643: SIGNALLED,  # SIGNAL with a "no data" SQLSTATE ('02...')
    1365: VALUE,  # division by 0 in strict mode
    # A routine that cannot run as called: it recursed too deep (1456), or is gone or takes other
    # arguments since the gateway read it (1305, 1318: POST /api/rpc reads the routines again first).
    **dict.fromkeys((1456, 1305, 1318), ROUTINE),
    **dict.fromkeys((1290, 1792), READ_ONLY),
    **dict.fromkeys((1036, 1114, 1021), NOT_WRITABLE),
    **dict.fromkeys((1267, 1270, 1271), CHARSET),  # a value the column's character set cannot hold, compared
    1364: MISSING,
    1054: NO_COLUMN,
    1146: NO_TABLE,
    1049: Kind("setup", False, False, _setup(None)),  # the server's own words: "Unknown database 'x'"
    1044: Kind("setup", False, False, _setup("the database refused the gateway's user access to its database")),
    1045: Kind("setup", False, False, _setup("the database refused the gateway's credentials")),
    1698: Kind("setup", False, False, _setup("the database refused the gateway's credentials")),
    # A privilege the gateway's user lacks (INSERT, a column, CREATE for its own tables, ...).
    **dict.fromkeys((1142, 1143, 1227, 1370), Kind("setup", False, False, _setup(
        "the database refused the gateway's user a privilege this request needs"
    ))),
}
# Answered to COMMIT, these leave the outcome unknown: Galera's "error during COMMIT" when quorum is
# lost mid-way (1180), and a node that stopped being ready as it committed (1047); and any
# client-side error (2xxx: no answer came; the server's own codes are below 2000 and from 3000 on).
COMMIT_UNKNOWN_CODES = frozenset({1180, 1047})


def no_answer(code: int) -> bool:
    """A client library's error (2000-2999): the server's answer did not come."""
    return 2000 <= code < 3000

CONNECTIVITY_CODES = frozenset(code for code, kind in CODES.items() if kind.connectivity)
SERVER_TIMEOUT_CODES = frozenset(code for code, kind in CODES.items() if kind is SERVER_TIMEOUT)
RETRYABLE_CODES = frozenset(code for code, kind in CODES.items() if kind.retried)


def kind_of(exc: DatabaseError) -> Kind:
    return CODES.get(exc.code, UNKNOWN)


def classify(exc: DatabaseError) -> GatewayError:
    """A database error that retrying will not fix (or that is not retried again) -> the caller's error."""
    return kind_of(exc).final(exc)


def is_retryable(exc: BaseException) -> bool:
    """Worth another attempt: a timeout, no free connection, or a transient database error."""
    if isinstance(exc, (TimeoutError, PoolExhausted)):
        return True
    return isinstance(exc, DatabaseError) and kind_of(exc).retried


def is_connectivity(exc: BaseException) -> bool:
    return isinstance(exc, DatabaseError) and exc.code in CONNECTIVITY_CODES


def commit_unknown(exc: DatabaseError) -> bool:
    """An error answered to (or instead of an answer to) COMMIT after which it may have applied."""
    return no_answer(exc.code) or exc.code in COMMIT_UNKNOWN_CODES


def statement_outcome(exc: DatabaseError) -> CommitOutcomeUnknown | None:
    """What an error means for a write statement that commits by itself: CommitOutcomeUnknown when
    no answer came (2xxx) or the answer does not say (1180: Galera lost quorum as it committed);
    None for any other answer, which the server gives for a statement it did not apply (a node that
    is not ready, 1047, refuses a statement before running it)."""
    if no_answer(exc.code) or exc.code == 1180:
        return CommitOutcomeUnknown(
            "the database did not answer the write clearly; it may or may not have applied", {"db_code": exc.code}
        )
    return None


def commit_outcome(exc: BaseException, what: str = "write") -> CommitOutcomeUnknown | None:
    """What a failure while a COMMIT was under way means: CommitOutcomeUnknown when the write may
    have applied (no answer: a timeout, a lost connection; or an answer that does not say), None when
    the answer says it was rolled back (a deadlock, a certification conflict: retried as a whole)."""
    if isinstance(exc, TimeoutError):
        return CommitOutcomeUnknown(
            f"the database did not answer the COMMIT in time; the {what} may or may not have applied"
        )
    if isinstance(exc, DatabaseError) and commit_unknown(exc):
        return CommitOutcomeUnknown(
            f"the COMMIT got no clear answer; the {what} may or may not have applied", {"db_code": exc.code}
        )
    return None
