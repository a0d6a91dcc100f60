"""POST /api/rpc/{name}: a stored procedure or function, called with named arguments checked
against INFORMATION_SCHEMA.PARAMETERS and converted as a column's values are."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.errors import GatewayError, InvalidBody
from app.db.catalog import quote
from app.db.database import Database
from app.db.routines import Routine, Routines
from app.db.session import StatementResult
from app.rows.values import to_db


def arguments(routine: Routine, given: Mapping[str, Any]) -> list[Any]:
    """The IN and INOUT arguments in the routine's order, converted: every one given (MariaDB's
    routines have no defaults), none it does not take."""
    expected = [p.name for p in routine.arguments]
    missing = [n for n in expected if n not in given]
    unknown = sorted(str(n) for n in given if n not in expected)
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
            values.append(to_db(parameter.column, given[parameter.name]))
        except GatewayError as exc:
            raise type(exc)(f"argument '{parameter.name}': {exc.message}", {"argument": parameter.name}) from None
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
        outs.append((parameter.name, variable))
    inputs = tuple(v for p, v in zip(routine.arguments, values) if p.mode == "IN")
    after = [(f"SELECT {', '.join(v for _, v in outs)}", ())] if outs else []
    return [*before, (f"CALL {quote(routine.name)}({', '.join(places)})", inputs), *after]


def _rows(result: StatementResult) -> list[dict]:
    return [dict(zip(result.names, row)) for row in result.rows]


class RpcService:
    def __init__(self, db: Database, routines: Routines):
        self.db, self.routines = db, routines

    async def call(self, name: str, given: Mapping[str, Any]) -> tuple[Any, dict]:
        """(data, meta): a function's value; a procedure's first result set's rows, with the others
        and its OUT and INOUT values in meta."""
        routine = await self.routines.routine(name)
        values = arguments(routine, given)
        run = statements(routine, values)
        if routine.kind == "function":
            if routine.reads_only:  # reads nothing or only reads: retried like any read
                result = await self.db.fetch(*run[0])
            else:
                result = (await self.db.call(run))[0][0]
            return (result.rows[0][0] if result.rows else None), {}
        answered = await self.db.call(run)
        at = next(i for i, (sql, _) in enumerate(run) if sql.startswith("CALL"))
        sets = [_rows(r) for r in answered[at] if r.names]
        meta: dict[str, Any] = {"result_sets": len(sets)}
        if len(sets) > 1:
            meta["more"] = sets[1:]
        outs = [p.name for p in routine.parameters if p.mode != "IN"]
        if outs:
            meta["out"] = dict(zip(outs, answered[-1][0].rows[0]))
        return (sets[0] if sets else []), meta
