"""Take the web console's screenshots in docs/console/ (docs/api.md shows them): a gateway started on
a demo database of its own beside DATABASE_URL's, driven in Debian's Chromium.

    make screenshots        # or: DATABASE_URL=... .venv/bin/python scripts/console_screenshots.py
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import unicodedata
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pymysql
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.core.config import DatabaseAddress  # noqa: E402
from tests.integration.browser import ARGS, chromium  # noqa: E402

OUT = ROOT / "docs" / "console"
DEMO = "console_demo"
SEED = [
    "CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(60) NOT NULL,"
    " country CHAR(2), email VARCHAR(120) UNIQUE, since DATE)",
    "CREATE TABLE orders (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL,"
    " total DECIMAL(10,2) NOT NULL, status ENUM('new','paid','shipped') NOT NULL DEFAULT 'new',"
    " placed DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, notes JSON,"
    " FOREIGN KEY (customer_id) REFERENCES customers(id))",
    "CREATE TABLE products (sku VARCHAR(20) PRIMARY KEY, title VARCHAR(100) NOT NULL, price DECIMAL(8,2))",
]
NAMES = ["Ann Lee", "Bob Marsh", "Chloé Martin", "Dev Patel", "Eva Novak", "Farid Haddad", "Grace Kim",
         "Hugo Blanc", "Ines Costa", "Jon Berg", "Kai Müller", "Lina Rossi"]


def main() -> None:
    url = os.environ["DATABASE_URL"]
    address = DatabaseAddress.parse(url)
    with pymysql.connect(**address.connect_kwargs(), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DEMO}")
        cur.execute(f"CREATE DATABASE {DEMO}")
        cur.execute(f"USE {DEMO}")
        for statement in SEED:
            cur.execute(statement)
        countries = ["FR", "DE", "PT", "US", "IN", "KR"]
        for i, name in enumerate(NAMES, 1):
            email = unicodedata.normalize("NFKD", name.split()[0].lower()).encode("ascii", "ignore").decode()
            email += "@example.org"
            cur.execute("INSERT INTO customers (name, country, email, since) VALUES (%s, %s, %s, %s)",
                        (name, countries[i % 6], email, f"2024-0{1 + i % 9}-1{i % 9}"))
        for i in range(1, 61):
            cur.execute("INSERT INTO orders (customer_id, total, status, placed) VALUES (%s, %s, %s, %s)",
                        (1 + i % 12, f"{(i * 37) % 500 + 9.5:.2f}", ("new", "paid", "shipped")[i % 3],
                         f"2026-11-{1 + i % 28:02d} {8 + i % 10}:{i % 60:02d}:00"))
    port = _free_port()
    parts = urlsplit(url)
    demo_url = urlunsplit(parts._replace(path="/" + DEMO))
    env = os.environ | {"DATABASE_URL": demo_url, "PORT": str(port), "GATEWAY_ACCESS_LOG": "false"}
    server = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env)
    try:
        _wait(f"http://127.0.0.1:{port}/health/ready")
        _shoot(f"http://127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(10)
        with pymysql.connect(**address.connect_kwargs(), autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DEMO}")


def _shoot(base: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    csv = b"name,country,email\nMara Diaz,ES,mara@example.org\nX,FR,x@example.org\nNoor Ali,AEU,noor@example.org\n"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 760})
        page.on("dialog", lambda d: d.accept())
        page.goto(f"{base}/console#/t/customers/rules")
        page.fill("textarea.schema", '{\n  "type": "object",\n  "properties": {\n    "name": {"minLength": 2},\n'
                  '    "email": {"format": "email"}\n  }\n}')
        page.get_by_role("button", name="Store as a new version").click()
        expect(page.locator(".messages .ok")).to_contain_text("version 1")
        page.screenshot(path=OUT / "rules.png")

        page.goto(f"{base}/console#/t/orders")
        page.click("summary:has-text('Filter')")
        page.select_option("select[aria-label=combine]", "or")
        for column, op, value in (("status", "eq", "paid"), ("total", "gte", "400")):
            page.get_by_role("button", name="+ condition").click()
            row = page.locator(".condition").last
            row.locator("select[aria-label=column]").select_option(column)
            row.locator("select[aria-label=operator]").select_option(op)
            row.locator("input[aria-label=value]").fill(value)
        page.get_by_role("button", name="Apply filter").click()
        page.click("th button:has-text('total')")
        page.click("th button:has-text('total')")
        page.get_by_role("button", name="Count rows").click()
        expect(page.locator(".status")).to_contain_text("match")
        page.locator(".grid-wrap tbody tr").first.click()
        expect(page.locator(".detail .related")).to_be_visible()
        page.screenshot(path=OUT / "rows.png")

        page.goto(f"{base}/console#/t/customers")
        page.locator(".grid-wrap tbody tr").nth(2).click()
        page.get_by_role("button", name="Edit", exact=True).click()
        page.fill("#f-name", "C")
        page.get_by_role("button", name="Save", exact=True).click()
        expect(page.locator("#f-name")).to_have_attribute("aria-invalid", "true")
        page.screenshot(path=OUT / "edit.png")

        page.goto(f"{base}/console#/t/customers/import")
        upload = {"name": "new-customers.csv", "mimeType": "text/csv", "buffer": csv}
        page.set_input_files("input[type=file]", files=[upload])
        page.get_by_role("button", name="Validate").click()
        expect(page.locator(".report table")).to_be_visible()
        page.get_by_role("button", name="Import as a job").click()
        expect(page.locator(".job-state")).to_have_attribute("data-state", "succeeded", timeout=30_000)
        expect(page.locator(".recent tbody tr")).to_have_count(1)
        page.screenshot(path=OUT / "import.png")
        browser.close()
    print(f"wrote {', '.join(p.name for p in sorted(OUT.glob('*.png')))} in {OUT.relative_to(ROOT)}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


if __name__ == "__main__":
    main()
