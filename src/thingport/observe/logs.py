"""One log format for every logger of the process: ``log_format = text | json``.

``configure`` installs one handler on the root logger and makes uvicorn's loggers (which it would
otherwise configure on their own) and Alembic's migration lines propagate to it, so a log collector
reads one format. Access lines (:data:`ACCESS`) carry their fields as ``extra={"fields": {...}}``:
the text format appends them as ``key=value``, the JSON format as keys of the object.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

#: HTTP requests and MQTT connections, one line each (docs/operations.md, "Logs").
ACCESS = logging.getLogger("thingport.access")

FORMATS = ("text", "json")
_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def _stamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """``time level logger message key=value …``: for a terminal and ``journalctl``."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_stamp(record)} {record.levelname} {record.name} {record.getMessage()}"
        fields: dict[str, Any] | None = getattr(record, "fields", None)
        if fields:
            line += " " + " ".join(f"{k}={_text(v)}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c in text for c in ' "=\n') else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, the line's fields,
    and ``exception`` with the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": _stamp(record), "level": record.levelname, "logger": record.name,
                               "message": record.getMessage()}
        fields: dict[str, Any] | None = getattr(record, "fields", None)
        if fields:
            out.update(fields)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def formatter(log_format: str) -> logging.Formatter:
    if log_format not in FORMATS:
        raise ValueError(f"log_format: 'text' or 'json', not '{log_format}'")
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(log_level: str, log_format: str, stream: TextIO | None = None) -> None:
    """Route every logger of the process through one handler in ``log_format`` on stderr."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(log_level.upper())
    for name in (*_UVICORN, "alembic"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
        lg.disabled = False  # a logging config applied earlier in the process may have disabled it
        lg.setLevel(logging.NOTSET)  # ... or left its own level (uvicorn's log_level); the root's governs

