"""The docs' tables are made from the code (scripts/docs.py): the settings, the routes, the filter
operators and the error codes. They must say what the code says."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_generated_tables_are_up_to_date():
    spec = importlib.util.spec_from_file_location("docs_script", ROOT / "scripts" / "docs.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(check=True) == [], "run: .venv/bin/python scripts/docs.py"


def test_every_setting_says_what_it_means():
    from app.core.config import Settings

    assert [name for name, field in Settings.model_fields.items() if not field.description] == []


def test_the_readme_stays_short_and_links_the_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for page in ("docs/api.md", "docs/data.md", "docs/contract.md", "docs/configuration.md", "docs/operations.md",
                 "docs/ARCHITECTURE.md", "bench/README.md"):
        assert f"]({page})" in readme and (ROOT / page).exists(), page


def test_every_error_a_client_can_get_is_listed_with_its_code():
    import inspect

    from app.core import errors

    defined = {
        cls for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.GatewayError) and cls is not errors.GatewayError
    }
    assert defined - set(errors.ERRORS) == set(), "add them to ERRORS: the contract's table is made from it"
    codes = [cls.code for cls in errors.ERRORS]
    assert len(codes) == len(set(codes)), "each code means one error"
