"""Log lines that carry the request id, configured once per process: JSON by default, or text.

Every line of a process goes through one handler on the root logger, so that uvicorn's, alembic's
and the warnings module's lines come in the same format as the service's own: a log shipper reading
JSON chokes on the one line that is not.
"""

import logging
import logging.config
import time
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from app.core.errors import request_id_var

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s request_id=%(request_id)s %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s"


def utc_timestamp(record: logging.LogRecord) -> str:
    """ISO 8601 in UTC with milliseconds (``2026-12-05T15:41:11.424Z``): the host's time zone and
    logging's default comma leave shippers guessing at the instant."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        return True


class TextFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_timestamp(record)


class UTCJsonFormatter(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_timestamp(record)


def formatter(kind: str) -> logging.Formatter:
    if kind == "json":
        # One object per line; the access log's fields (method, route, status, …) come as extras.
        return UTCJsonFormatter(
            JSON_FIELDS,
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
            # uvicorn adds a copy of its messages with terminal colours: not for a log shipper.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        )
    return TextFormatter(TEXT_FORMAT)


def stderr_handler(kind: str) -> logging.Handler:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(formatter(kind))
    # Warnings would otherwise be printed to stderr as bare text, outside the log format.
    logging.captureWarnings(True)
    return handler


def configure_logging(level: str, kind: str = "json") -> None:
    """Send the service's logs to stderr with the request id, unless the host already set logging up."""
    logging.getLogger("tthc").setLevel(level)
    root = logging.getLogger()
    if root.handlers:
        for handler in root.handlers:
            if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
                handler.addFilter(RequestIdFilter())
        return
    root.addHandler(stderr_handler(kind))
    root.setLevel(logging.INFO)


def uvicorn_log_config(level: str, kind: str) -> dict[str, Any]:
    """uvicorn's ``log_config``: the same root handler as configure_logging, and uvicorn's loggers
    sent to it. uvicorn applies it in each process it starts, so ``--workers`` processes log in the
    service's format from their first line (not only once the app's lifespan has started)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stderr": {"()": stderr_handler, "kind": kind}},
        "root": {"handlers": ["stderr"], "level": "INFO"},
        "loggers": {
            "tthc": {"level": level},
            # Their own handlers (uvicorn's default config) would write a second, differently
            # formatted line; propagating to the root writes one.
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            # The service's tthc.access line has the request id, client and duration; uvicorn's
            # would be a second line for the same request.
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }


def take_over_uvicorn_defaults(level: str, kind: str) -> None:
    """Log in the service's format under ``uvicorn app.main:app`` (and ``fastapi run``), as under
    ``tthc serve``. uvicorn sets up its own coloured text handlers before it loads the app; they are
    replaced by uvicorn_log_config's, unless uvicorn was given a logging configuration of its own
    (``--log-config``), which is the operator's to keep."""
    from uvicorn.logging import ColourizedFormatter

    handlers = [*logging.getLogger("uvicorn").handlers, *logging.getLogger("uvicorn.access").handlers]
    if handlers and all(isinstance(handler.formatter, ColourizedFormatter) for handler in handlers):
        logging.config.dictConfig(uvicorn_log_config(level, kind))
