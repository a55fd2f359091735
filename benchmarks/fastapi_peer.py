"""A peer: Tutorial 1's contract as most users would write it, with FastAPI on uvicorn.

Same routes, env vars and per-batch INFO line as echo-service/echo_service.py; the body is checked by
a pydantic model, as FastAPI does it. One worker, as the benchmark pins each server to one CPU.
"""

import json
import logging
import os
import sys
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

SERVICE_HOST = os.getenv("SERVER_HOST", "0.0.0.0")
SERVICE_PORT = int(os.getenv("SERVER_PORT", "8080"))
CHARACTER_NAME = os.getenv("CHARACTER_NAME", "I")


def get_logger(logger_name: str) -> logging.Logger:
    logger = logging.getLogger(logger_name)
    logger.setLevel(logging.INFO)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(name)s [%(asctime)s] [%(levelname)s] %(message)s"))
    logger.addHandler(handler)
    return logger


logger = get_logger("echo-service")
app = FastAPI()


class Batch(BaseModel):
    data: list[list[Any]]


@app.get("/healthcheck", response_class=PlainTextResponse)
async def readiness_probe() -> str:
    return "I'm ready!"


@app.post("/echo")
async def echo(batch: Batch) -> dict:
    logger.info("Received %d rows", len(batch.data))
    return {"data": [[row[0], get_echo_response(row[1])] for row in batch.data]}


def get_echo_response(input: Any) -> str | None:
    if input is None:
        return None
    return f"{CHARACTER_NAME} said {input if isinstance(input, str) else json.dumps(input)}"


if __name__ == "__main__":
    uvicorn.run(app, host=SERVICE_HOST, port=SERVICE_PORT, access_log=False, log_level="warning")
