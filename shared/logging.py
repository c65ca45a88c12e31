"""Structured logging: one JSON object per line, so logs can be grepped and shipped as they are."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # Anything passed with `extra=` becomes a field of its own.
        entry |= {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every failed reconnect at ERROR; one line per attempt is noise during an outage.
    quiet = logging.CRITICAL if level.upper() != "DEBUG" else logging.DEBUG
    logging.getLogger("aiokafka").setLevel(quiet)
    logging.getLogger("kafka").setLevel(max(logging.WARNING, root.level))


def logging_dict_config(service: str, level: str = "INFO") -> dict[str, object]:
    """The same JSON logging as a dictConfig, for runners that configure logging themselves (Faust)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter, "service": service}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {"aiokafka": {"level": "CRITICAL"}, "kafka": {"level": "WARNING"}},
    }
