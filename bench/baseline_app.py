"""The baseline for bench/crud.py: a minimal FastAPI + aiomysql app doing the same queries as the
gateway, with none of its machinery (no catalog, no validation, no retry wrapper, no envelope).
This is what one would write by hand for one table."""

import json
import os

import aiomysql
from fastapi import FastAPI, HTTPException, Request

from app.core.config import DatabaseAddress

address = DatabaseAddress.parse(os.environ["DATABASE_URL"])
app = FastAPI()
COLUMNS = "`id`, `name`, `qty`, `price`, `created`"


@app.on_event("startup")
async def startup():
    app.state.pool = await aiomysql.create_pool(
        **address.connect_kwargs(), db=address.database, autocommit=True, maxsize=20
    )


async def query(sql, params=()):
    async with app.state.pool.acquire() as conn:
        async with conn.cursor(aiomysql.DictCursor) as cursor:
            await cursor.execute(sql, params)
            return await cursor.fetchall(), cursor.lastrowid


@app.get("/items/{item_id}")
async def get_item(item_id: int):
    rows, _ = await query(f"SELECT {COLUMNS} FROM `items` WHERE `id` = %s", (item_id,))
    if not rows:
        raise HTTPException(404)
    return rows[0]


@app.get("/items")
async def list_items(limit: int = 100):
    rows, _ = await query(f"SELECT {COLUMNS} FROM `items` ORDER BY `id` LIMIT %s", (limit,))
    return rows


@app.post("/items", status_code=201)
async def create_item(request: Request):
    body = (await request.json())["input"]
    _, last_id = await query("INSERT INTO `items` (`name`, `qty`, `price`) VALUES (%s, %s, %s)", (body["name"], body["qty"], body["price"]))
    return {"id": last_id, **body}


# Issue 26's hand-written comparison: 100 orders with their customer and lines, PostgREST-style,
# in one statement (JSON built by the server), as one would write it for these three tables.
ORDERS_EMBEDDED = """
SELECT o.`id`, o.`total`,
  (SELECT JSON_OBJECT('id', c.`id`, 'name', c.`name`, 'email', c.`email`)
     FROM `customers` c WHERE c.`id` = o.`customer_id`) AS customer,
  (SELECT JSON_ARRAYAGG(JSON_OBJECT('sku', l.`sku`, 'qty', l.`qty`))
     FROM `lines` l WHERE l.`order_id` = o.`id`) AS `lines`
FROM `orders` o ORDER BY o.`id` LIMIT %s"""


@app.get("/orders_embedded")
async def orders_embedded(limit: int = 100):
    rows, _ = await query(ORDERS_EMBEDDED, (limit,))
    for row in rows:
        row["customer"] = json.loads(row["customer"]) if row["customer"] else None
        row["lines"] = json.loads(row["lines"]) if row["lines"] else []
    return rows
