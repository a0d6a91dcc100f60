"""What a route is: one declaration, from which the dispatcher serves it and the OpenAPI document
describes it (app/api/routes.py holds them all).

A route names its method and path shape, who may call it (`access`), what it reads (a JSON body
model, query parameters and headers, each with its JSON Schema), what it answers and which errors it
may give, and the handler that does the work: `async def handler(call: Call) -> Response`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from app.core.auth import Principal
    from app.http.schemas import Shape

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "WS"]
# Who may call: the scope `action:{table}` for the route's table ("read", "write", "import",
# "export"); "caller": any authenticated caller (the handler checks scopes itself, e.g. when the
# table comes from a file's name); "open": anyone (health, metrics, the docs' assets); "manage" and
# "audit": the gateway's own bare scopes `admin` (accounts and keys) and `audit` (the audit trail).
Access = Literal["read", "write", "import", "export", "admin", "manage", "audit", "caller", "open"]
BARE_ACCESS = {"manage": "admin", "audit": "audit"}  # access -> the bare scope it needs


@dataclass(frozen=True)
class Param:
    """A query parameter or header the route reads: parsed by its schema (type, enum, bounds) into
    `Call.query`, or, with `parsed=False`, only described (the handler reads it itself)."""

    name: str
    schema: dict[str, Any]
    description: str = ""
    default: Any = None
    where: Literal["query", "header"] = "query"
    parsed: bool = True
    key: str | None = None  # its name in Call.query, when not `name` (`async`, `format` are words Python keeps)
    tables: str | None = None  # OpenAPI lists the tables the caller may do this action with as its values

    @property
    def as_key(self) -> str:
        return self.key or self.name


@dataclass(frozen=True)
class Route:
    method: Method
    path: str  # "/api/{table}/query": literal segments and {parameters}
    handler: Callable[..., Awaitable[Any]]
    summary: str
    access: Access
    name: str  # the operation's name (per table: "list" -> list_users)
    tag: str = ""
    body: type[BaseModel] | None = None  # a JSON body, parsed strictly and validated (400 invalid_body)
    params: tuple[Param, ...] = ()
    status: int = 200
    request: "Shape | None" = None  # how OpenAPI shows the body, per table (default: the body model's schema)
    answer: "Shape | None" = None  # how OpenAPI shows the answer's `data`
    raw: bool = False  # the answer is `answer` itself, not in the envelope (POST /token: RFC 6749's JSON)
    listing: bool = False  # the answer is a list with `meta` (count, limit, offset, next, next_cursor)
    options: tuple[str, ...] = ()  # the list options it takes (limit, offset, order, fields, cursor, count)
    filters: bool = False  # takes a filter per column in the query string
    media: tuple[str, ...] = ("application/json",)  # the answer's media types (CSV, a stream of events, ...)
    negotiated: bool = False  # the answer comes as the Accept header asks: JSON, CSV or JSON Lines (406 if none)
    errors: tuple[int, ...] = ()  # statuses beyond the ones every route may give (see app/core/errors.py)
    also: tuple[tuple[int, "Shape | None"], ...] = ()  # other success statuses: their answer (None: no body)
    checks: str | None = None  # "caller" routes: the scope the handler checks on the table it finds (a file's name)
    documented: bool = True
    segments: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(self.path.strip("/").split("/")))

    @property
    def per_table(self) -> bool:
        return "{table}" in self.segments


@dataclass(slots=True)
class Call:
    """One request as a handler sees it."""

    request: Request
    path: dict[str, str]  # the path's parameters: {"table": "users", "key": "7"}
    query: dict[str, Any]  # the route's parsed parameters (query and headers)
    body: Any  # the route's body model, validated; None without one
    who: Principal

    @property
    def state(self) -> Any:
        """The app's services (app/main.py puts them on app.state)."""
        return self.request.app.state

    @property
    def table(self) -> str:
        return self.path["table"]


Handler = Callable[[Call], Awaitable[Response]]
