"""POST /api/rpc/{name}: a stored procedure or function, called with named arguments checked
against INFORMATION_SCHEMA.PARAMETERS and converted as a column's values are."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.errors import GatewayError, InvalidBody, InvalidValue, PayloadTooLarge
from app.db.catalog import quote
from app.db.database import Database
from app.db.routines import Parameter, Routine, Routines
from app.db.session import StatementResult
from app.rows.values import to_db


def arguments(routine: Routine, given: Mapping[str, Any]) -> list[Any]:
    """The IN and INOUT arguments in the routine's order, converted: every one given (MariaDB's
    routines have no defaults), none it does not take."""
    expected = [p.name for p in routine.arguments]
    given = {str(n).lower(): v for n, v in given.items()}  # MariaDB's parameter names ignore case
    missing = [n for n in expected if n.lower() not in given]
    unknown = sorted(n for n in given if n not in {e.lower() for e in expected})
    if missing or unknown:
        raise InvalidBody(
            f"'{routine.name}' takes {', '.join(expected) or 'no arguments'}"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; not its arguments: {', '.join(unknown)}" if unknown else ""),
            {"missing": missing, "unknown": unknown, "takes": expected},
        )
    values = []
    for parameter in routine.arguments:
        try:
            values.append(to_db(parameter.column, given[parameter.name.lower()]))
        except GatewayError as exc:
            named = exc.message.replace(f"column '{parameter.name}'", f"argument '{parameter.name}'")
            raise type(exc)(named, {"argument": parameter.name}) from None
    return values


def statements(routine: Routine, values: list[Any]) -> list[tuple[str, tuple]]:
    """Pure: what runs. A function: SELECT f(...). A procedure: INOUT arguments set into session
    variables first, OUT and INOUT read from them after: SET ...; CALL p(%s, @_gateway_out_2); SELECT ..."""
    if routine.kind == "function":
        return [(f"SELECT {quote(routine.name)}({', '.join(['%s'] * len(values))})", tuple(values))]
    given = {p.name: v for p, v in zip(routine.arguments, values)}
    before: list[tuple[str, tuple]] = []
    places, outs = [], []
    for i, parameter in enumerate(routine.parameters):
        variable = f"@_gateway_out_{i}"
        if parameter.mode == "IN":
            places.append("%s")
            continue
        if parameter.mode == "INOUT":
            before.append((f"SET {variable} = %s", (given[parameter.name],)))
        places.append(variable)
        outs.append((parameter, variable))
    inputs = tuple(v for p, v in zip(routine.arguments, values) if p.mode == "IN")
    # A session variable has lost its type: cast back to the parameter's (a DATETIME reads as one).
    after = [(f"SELECT {', '.join(_typed(p, v) for p, v in outs)}", ())] if outs else []
    # A transaction the procedure opened and left open is committed (closing its connection after
    # would roll it back, and the call answered as a success would have written nothing).
    return [*before, (f"CALL {quote(routine.name)}({', '.join(places)})", inputs), *after, ("COMMIT", ())]


CASTS = {"date": "DATE", "datetime": "DATETIME(6)", "timestamp": "DATETIME(6)", "time": "TIME(6)", "decimal": "DECIMAL"}


def _typed(parameter: Parameter, variable: str) -> str:
    column = parameter.column
    cast = CASTS.get(column.kind)
    if cast == "DECIMAL":
        cast = f"DECIMAL({column.precision or 10},{column.scale or 0})"
    elif column.kind in ("int", "bool"):
        cast = "UNSIGNED" if column.unsigned else "SIGNED"
    return f"CAST({variable} AS {cast})" if cast else variable


def _rows(result: StatementResult) -> list[dict]:
    return [dict(zip(result.names, row)) for row in result.rows]


class RpcService:
    def __init__(self, db: Database, routines: Routines, max_rows: int = 1000):
        self.db, self.routines, self.max_rows = db, routines, max_rows

    async def call(self, name: str, given: Mapping[str, Any]) -> tuple[Any, dict]:
        """(data, meta): a function's value; a procedure's first result set's rows, with the others
        and its OUT and INOUT values in meta. A routine dropped or redefined since it was read (the
        arguments do not fit it, or the server refuses the call before running it) is read again
        and called once more."""
        try:
            return await self._call(name, given)
        except InvalidBody as exc:  # other arguments than the routine took when it was read: changed?
            if not (isinstance(exc.details, dict) and "takes" in exc.details):
                raise
        except InvalidValue as exc:
            if not (isinstance(exc.details, dict) and exc.details.get("db_code") in (1305, 1318)):
                raise
        await self.routines.reread()
        return await self._call(name, given)

    async def _call(self, name: str, given: Mapping[str, Any]) -> tuple[Any, dict]:
        routine = await self.routines.routine(name)
        values = arguments(routine, given)
        run = statements(routine, values)
        if routine.kind == "function":  # one that only reads (or reads nothing) is retried like any read
            result = (await self.db.call(run, retried=routine.reads_only))[0][0]
            return (result.rows[0][0] if result.rows else None), {}
        answered = await self.db.call(run)
        at = next(i for i, (sql, _) in enumerate(run) if sql.startswith("CALL"))
        sets = [_rows(r) for r in answered[at] if r.names]
        if (rows := sum(len(rows) for rows in sets)) > self.max_rows:
            raise PayloadTooLarge(
                f"'{routine.name}' answered {rows} rows; at most {self.max_rows} come back (GATEWAY_MAX_LIMIT): "
                "have it return a page, or read a view of it", {"rows": rows, "max": self.max_rows},
            )
        meta: dict[str, Any] = {"result_sets": len(sets)}
        if len(sets) > 1:
            meta["more"] = sets[1:]
        outs = [p.name for p in routine.parameters if p.mode != "IN"]
        if outs:
            meta["out"] = dict(zip(outs, answered[at + 1][0].rows[0]))
        return (sets[0] if sets else []), meta
