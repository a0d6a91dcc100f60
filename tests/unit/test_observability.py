import json
import logging
import logging.config

from app.observability import JsonFormatter, logging_config


def test_json_lines_carry_the_record_fields():
    record = logging.LogRecord("gateway.access", logging.INFO, __file__, 1, "request", None, None)
    record.fields = {"route": "/api/{table}", "status": 201}
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "request" and line["route"] == "/api/{table}" and line["status"] == 201
    assert line["level"] == "info" and line["ts"].endswith("Z")


def test_logging_config_is_a_valid_dict_config():
    for fmt in ("json", "text"):
        config = logging_config(fmt, "warning")
        logging.config.dictConfig(config)
        assert logging.getLogger().level == logging.WARNING
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
