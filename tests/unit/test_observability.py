import json
import logging
import logging.config

from app.core.observability import JsonFormatter, logging_config


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


def test_lines_are_written_in_bunches_and_none_is_lost(tmp_path):
    from app.core.observability import BunchedStreamHandler

    path = tmp_path / "log"
    with path.open("w") as stream:
        handler = BunchedStreamHandler(stream, flush_s=60)
        handler.setFormatter(JsonFormatter())
        logger = logging.getLogger("test.bunched")
        logger.addHandler(handler)
        logger.propagate = False
        try:
            logger.setLevel(logging.INFO)
            for n in range(3):
                logger.info("line %d", n)
            assert path.read_text() == ""  # waiting: no write a line
            logger.warning("a warning")  # written at once, with the lines before it, in order
            assert [json.loads(line)["msg"] for line in path.read_text().splitlines()] == ["line 0", "line 1", "line 2", "a warning"]
            logger.info("last")
            handler.flush()  # logging.shutdown does this at exit
            assert json.loads(path.read_text().splitlines()[-1])["msg"] == "last"
        finally:
            logger.removeHandler(handler)
            handler.close()


def test_a_timer_writes_what_waits():
    import io
    import threading

    from app.core.observability import BunchedStreamHandler

    stream = io.StringIO()
    handler = BunchedStreamHandler(stream, flush_s=0.01)
    written = threading.Event()
    handler.stream.flush = written.set  # the timer's write ends with a flush
    handler.emit(logging.LogRecord("t", logging.INFO, __file__, 1, "waiting", None, None))
    assert written.wait(10) and stream.getvalue() == "waiting\n"


def test_a_repeated_failure_is_said_once_a_minute_and_when_it_ends():
    from app.core.observability import RepeatedWarning

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("test.repeated")
    logger.addHandler(Collect())
    logger.propagate = False
    now = [0.0]
    failing = RepeatedWarning(logger, "job claim failed", every_s=60, clock=lambda: now[0])
    failing.cleared()  # nothing failing: nothing said
    for second in range(90):  # a poll a second, the database away
        now[0] = second
        failing.seen("database unavailable (service_unavailable)")
    failing.seen("table does not exist (table_not_found)")  # another reason: said at once
    failing.cleared()
    failing.cleared()
    assert lines == [
        "job claim failed: database unavailable (service_unavailable)",
        "job claim failed: database unavailable (service_unavailable) (and 59 time(s) more since the last line)",
        "job claim failed: table does not exist (table_not_found)",  # the total comes with the end
        "job claim failed: works again, after 91 failure(s)",
    ]
