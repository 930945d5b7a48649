"""What repeats all day writes no INFO line: the polls in runserver's access log, the periodic
tasks in beat's and the worker's log, the sweeps when they find nothing. What is not routine still does."""

import io
import logging
import threading
import time
import urllib.error
import urllib.request

import pytest
from celery.app import trace
from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer
from django.core.wsgi import get_wsgi_application

from conversations import queueing, tasks


@pytest.fixture
def wsgi_app():
    # Made first: django.setup() configures logging again, with new handlers.
    return get_wsgi_application()


@pytest.fixture
def log_output(wsgi_app):
    """What the configured console handler (settings.LOGGING: its filters) writes, as text."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


@pytest.mark.django_db
def test_a_sweep_with_nothing_to_do_writes_no_info_record(caplog):
    with caplog.at_level(logging.INFO):
        assert (tasks.inbound_sweep(), tasks.outbound_sweep(), tasks.status_sweep(), tasks.media_sweep()) == (0, 0, 0, 0)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO] == []


def test_celery_lines_of_periodic_tasks_are_dropped_and_others_kept(log_output):
    # The very calls Celery's beat, worker strategy and tracer make.
    logging.getLogger("celery.beat").info("Scheduler: Sending due task %s (%s)", "sweep-unhandled-inbound", queueing.INBOUND_SWEEP)
    for name in (queueing.INBOUND_SWEEP, queueing.MEDIA_SWEEP, queueing.AGENT_REPLY):
        context = {"id": "0b1c", "name": name, "args": "()", "kwargs": "{}", "runtime": 0.01, "return_value": 0, "eta": None}
        trace.info(trace.LOG_RECEIVED, context)
        trace.info(trace.LOG_SUCCESS, context)
    logging.getLogger("celery.app.trace").warning("Task %(name)s[%(id)s] retry", {"name": queueing.INBOUND_SWEEP, "id": "1"})
    lines = log_output.getvalue().splitlines()
    assert not any("sweep" in line and "INFO" in line for line in lines), lines
    assert sum(queueing.AGENT_REPLY in line for line in lines) == 2  # a customer's turn: received and succeeded
    assert any("WARNING" in line and queueing.INBOUND_SWEEP in line for line in lines)


def test_runserver_logs_no_poll_request_but_logs_the_others(wsgi_app, log_output):
    server = WSGIServer(("127.0.0.1", 0), WSGIRequestHandler)
    server.set_app(wsgi_app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        for path in ("/console/list/poll/?since=x&q=&filter=all", "/console/c/12/poll/?rev=3&after=9", "/console/simulator/poll/", "/favicon.ico"):
            with pytest.raises(urllib.error.HTTPError) as answered:  # each a redirect (to the login, to the SVG)
                opener.open(base + path, timeout=5)
            assert answered.value.code == 302
    finally:
        server.shutdown()
        server.server_close()
    # The server writes its access line once the response is out: wait for the last one.
    deadline = time.monotonic() + 5
    while "/favicon.ico" not in log_output.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    lines = [line for line in log_output.getvalue().splitlines() if "django.server" in line]
    assert len(lines) == 1 and '"GET /favicon.ico HTTP/1.1" 302' in lines[0], lines
