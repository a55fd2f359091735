"""The baseline: Tutorial 1's Echo service as the tutorial writes it, on Flask's development server.

Same contract as echo-service/echo_service.py (null stays null, JSON text for other values),
kept in the tutorial's style: per-batch DEBUG f-strings and `app.run`.
"""

import json
import logging
import os
import sys

from flask import Flask, request

SERVICE_HOST = os.getenv("SERVER_HOST", "0.0.0.0")
SERVICE_PORT = int(os.getenv("SERVER_PORT", "8080"))
CHARACTER_NAME = os.getenv("CHARACTER_NAME", "I")


def get_logger(logger_name: str) -> logging.Logger:
    logger = logging.getLogger(logger_name)
    logger.setLevel(logging.DEBUG)
    handler = logging.StreamHandler(sys.stdout)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s [%(asctime)s] [%(levelname)s] %(message)s"))
    logger.addHandler(handler)
    return logger


logger = get_logger("echo-service")
app = Flask(__name__)


@app.get("/healthcheck")
def readiness_probe() -> str:
    return "I'm ready!"


@app.post("/echo")
def echo() -> dict:
    message = request.json
    logger.debug(f"Received request: {message}")
    input_rows = message["data"]
    logger.info(f"Received {len(input_rows)} rows")
    output_rows = [[row[0], get_echo_response(row[1])] for row in input_rows]
    logger.info(f"Produced {len(output_rows)} rows")
    response = {"data": output_rows}
    logger.debug(f"Sending response: {response}")
    return response


def get_echo_response(input: object) -> str | None:
    if input is None:
        return None
    return f"{CHARACTER_NAME} said {input if isinstance(input, str) else json.dumps(input)}"


if __name__ == "__main__":
    app.run(host=SERVICE_HOST, port=SERVICE_PORT)
