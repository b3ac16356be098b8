"""Baseline for `make bench-api`: a bare FastAPI app that inserts each POST into SQLite.

Same server settings and durability as HCP (WAL, synchronous=NORMAL, commit before the
response), nothing else: no auth, no validation beyond the body model, no history, no queue.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid

from fastapi import FastAPI
from pydantic import BaseModel

DB = os.environ.get("BASELINE_DB", "var/bench-baseline.db")
_local = threading.local()


def connection() -> sqlite3.Connection:
    conn: sqlite3.Connection | None = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(DB, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, kind TEXT, gpus INT)")
        _local.conn = conn
    return conn


class Item(BaseModel):
    workload_type: str
    gpu_count: int = 1


app = FastAPI()


@app.post("/items", status_code=201)
def create(item: Item) -> dict[str, str]:
    conn = connection()
    item_id = str(uuid.uuid4())
    with conn:
        conn.execute(
            "INSERT INTO items VALUES (?, ?, ?)", (item_id, item.workload_type, item.gpu_count)
        )
    return {"id": item_id}
