"""The framework's ceiling: a bare FastAPI app serving fixed bytes from memory (same uvicorn settings)."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Response

BODY = Path(os.environ["KASPARRO_BENCH_BODY"]).read_bytes()
app = FastAPI()


@app.get("/data")
async def data() -> Response:
    return Response(content=BODY, media_type="application/json")


@app.get("/health/live")
async def live() -> Response:
    return Response(content=b'{"status":"ok"}', media_type="application/json")
