"""The event loop's HTTP/1.1 transport under the OpenAI SDK (`conversations.agent.loop_http`),
against a raw HTTP server on loopback that answers as the test says: keep-alive, chunked
bodies, connections closed by the server, silence."""

import asyncio
import json
import threading

import httpx2
import openai
import pytest

from conversations.agent import loop_http
from conversations.agent.loop_http import LoopTransport

ANSWER = {"id": "resp_1", "object": "response", "model": "gpt-4.1", "output": [], "usage": {"input_tokens": 3, "output_tokens": 1}}


class RawServer:
    """A loopback HTTP server on its own thread and loop; `respond(head, body)` returns the
    bytes to write back, or None to close the connection without answering."""

    def __init__(self, respond):
        self.respond = respond
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait(5)

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _handle(self, reader, writer):
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
                body = await reader.readexactly(length)
                self.requests.append((head, body))
                answer = self.respond(head, body)
                if answer is None:
                    break
                if answer == "silence":
                    await asyncio.sleep(10)
                    break
                writer.write(answer)
                await writer.drain()
                if b"Connection: close" in answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def close(self):
        async def stop():
            self.server.close()
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)


def json_answer(payload=ANSWER, *, extra=b"") -> bytes:
    data = json.dumps(payload).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n" % (len(data), extra) + data


@pytest.fixture
def serve():
    servers = []

    def start(respond) -> RawServer:
        server = RawServer(respond)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def create(port: int, *, calls: int = 1, read_timeout: float = 5.0, transport: LoopTransport | None = None):
    """`calls` responses.create through the SDK on a fresh loop; the answers' JSON."""

    async def run():
        client = openai.AsyncOpenAI(
            api_key="sk-test", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0,
            timeout=openai.Timeout(read_timeout, connect=2.0),
            http_client=httpx2.AsyncClient(transport=transport or LoopTransport()),
        )  # fmt: skip
        out = []
        for _ in range(calls):
            raw = await client.responses.with_raw_response.create(extra_body={"model": "gpt-4.1", "input": "Ciao"})
            out.append(json.loads(raw.content))
        return out

    return asyncio.run(run())


def test_calls_share_one_kept_alive_connection_and_the_request_is_the_sdks(serve):
    server = serve(lambda head, body: json_answer())

    assert create(server.port, calls=3) == [ANSWER] * 3

    assert server.connections == 1
    head, body = server.requests[0]
    assert head.startswith(b"POST /v1/responses HTTP/1.1\r\n")
    assert b"authorization: bearer sk-test" in head.lower()
    assert b"Accept-Encoding: identity" in head
    assert json.loads(body) == {"model": "gpt-4.1", "input": "Ciao"}


def test_a_chunked_answer_is_read_whole(serve):
    data = json.dumps(ANSWER).encode()
    chunked = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked += b"%x\r\n%s\r\n%x;ext=1\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n" % (10, data[:10], len(data) - 10, data[10:])
    server = serve(lambda head, body: chunked)

    assert create(server.port, calls=2) == [ANSWER] * 2
    assert server.connections == 1


def test_an_http_1_0_answer_or_connection_close_is_not_reused(serve):
    server = serve(lambda head, body: json_answer(extra=b"Connection: close\r\n"))

    assert create(server.port, calls=2) == [ANSWER] * 2
    assert server.connections == 2


def test_a_kept_connection_the_server_closed_is_replaced_before_the_next_call(serve):
    answered = []

    def respond(head, body):
        answered.append(1)
        return json_answer() if len(answered) % 2 else None  # every second request: closed unanswered

    server = serve(respond)
    transport = LoopTransport()

    assert create(server.port, calls=3, transport=transport) == [ANSWER] * 3
    # Calls 2 and 3 each met their kept connection closed and went again on a new one.
    assert len(server.requests) == 5 and server.connections == 3


def test_silence_is_a_timeout_for_the_sdk(serve):
    server = serve(lambda head, body: "silence")

    with pytest.raises(openai.APITimeoutError):
        create(server.port, read_timeout=0.3)


def test_nothing_listening_is_a_connection_error_for_the_sdk(serve):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(openai.APIConnectionError):
        create(port)


def test_an_error_status_reaches_the_sdk_as_its_error(serve):
    error = json.dumps({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}).encode()
    server = serve(lambda head, body: b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 2\r\nContent-Length: %d\r\n\r\n%s" % (len(error), error))

    with pytest.raises(openai.RateLimitError) as caught:
        create(server.port)
    assert caught.value.status_code == 429 and caught.value.response.headers["retry-after"] == "2"


def test_a_proxy_setting_keeps_httpx_own_transport(monkeypatch):
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert loop_http.usable()
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert not loop_http.usable()


def test_a_call_cancelled_midway_leaves_no_connection_to_reuse(serve):
    server = serve(lambda head, body: "silence")
    transport = LoopTransport()

    async def run():
        client = httpx2.AsyncClient(transport=transport)
        call = asyncio.ensure_future(client.post(f"http://127.0.0.1:{server.port}/v1/responses", json={"input": "Ciao"}))
        await asyncio.sleep(0.2)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    asyncio.run(run())
    assert not any(transport._idle.values())  # closed, not kept: its answer could still arrive
