"""Log lines that carry the request id, configured once per process: JSON by default, or text."""

import logging

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from app.core.errors import request_id_var

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s request_id=%(request_id)s %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        return True


def formatter(kind: str) -> logging.Formatter:
    if kind == "json":
        # One object per line; the access log's fields (method, route, status, …) come as extras.
        return JsonFormatter(
            JSON_FIELDS,
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
            # uvicorn adds a copy of its messages with terminal colours: not for a log shipper.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        )
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(level: str, kind: str = "json") -> None:
    """Send the service's logs to stderr with the request id, unless the host already set logging up."""
    logging.getLogger("tthc").setLevel(level)
    root = logging.getLogger()
    if root.handlers:
        for handler in root.handlers:
            if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
                handler.addFilter(RequestIdFilter())
        return
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(formatter(kind))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
