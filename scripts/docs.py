"""Write the docs' tables from the code that they describe, so they cannot drift:

  docs/configuration.md   every setting (app/core/config.py), with its variable, default and meaning
  docs/api.md             the routes (app/api/routes.py) and the filter operators (app/query/operators.py)
  docs/contract.md        the error codes (app/core/errors.py)

A generated part stands between `<!-- generated: NAME -->` and `<!-- end -->`.

    .venv/bin/python scripts/docs.py           # write them
    .venv/bin/python scripts/docs.py --check   # exit 1 naming the files that are not up to date (a test runs this)
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.api.routes import ROUTES  # noqa: E402
from app.core.config import Settings  # noqa: E402
from app.core.errors import ERRORS, meaning  # noqa: E402
from app.query.operators import OPERATORS  # noqa: E402

ACCESS = {"open": "anyone", "caller": "any caller (the handler checks the table's scope)",
          "manage": "the scope `admin`", "audit": "the scope `audit`"}


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def variable(name: str, field: Any) -> str:
    alias = field.validation_alias
    if alias is not None:
        return ", ".join(f"`{choice}`" for choice in alias.choices[:1])
    return f"`GATEWAY_{name.upper()}`"


def default(value: Any) -> str:
    if value is None or value == () or value == "":
        return "(none)"
    if isinstance(value, tuple):
        return "`" + ",".join(str(v) for v in value) + "`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def settings() -> str:
    return table(["variable", "default", "meaning"], [
        [variable(name, field), default(field.default), field.description or ""]
        for name, field in Settings.model_fields.items()
    ])


def routes() -> str:
    return table(["method", "path", "who may call", "what it does"], [
        [route.method if route.method != "WS" else "WebSocket", f"`{route.path}`",
         ACCESS.get(route.access, f"`{route.access}` on the table"), route.summary]
        for route in ROUTES if route.documented
    ])


def operators() -> str:
    return table(["operator", "takes", "meaning", "example"], [
        [f"`{op.name}`", op.takes, op.meaning, f"`{op.example}`"] for op in OPERATORS.values()
    ])


def errors() -> str:
    errors = sorted(ERRORS, key=lambda e: e.status)
    return table(["status", "`error`", "when"], [[str(e.status), f"`{e.code}`", meaning(e)] for e in errors])


PARTS: dict[str, dict[str, Callable[[], str]]] = {
    "docs/configuration.md": {"settings": settings},
    "docs/api.md": {"routes": routes, "operators": operators},
    "docs/contract.md": {"errors": errors},
}


def render(text: str, parts: dict[str, Callable[[], str]]) -> str:
    for name, make in parts.items():
        pattern = re.compile(rf"(<!-- generated: {name} -->\n).*?(<!-- end -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"no `<!-- generated: {name} -->` ... `<!-- end -->` to fill")
        text = pattern.sub(lambda m: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main(check: bool) -> list[str]:
    stale = []
    for path, parts in PARTS.items():
        file = ROOT / path
        text = file.read_text()
        new = render(text, parts)
        if new != text:
            stale.append(path)
            if not check:
                file.write_text(new)
    return stale


if __name__ == "__main__":
    checking = sys.argv[1:] == ["--check"]
    stale = main(checking)
    if checking and stale:
        raise SystemExit(f"not up to date (run scripts/docs.py): {', '.join(stale)}")
    print("\n".join(f"wrote {path}" for path in stale) or "up to date")
