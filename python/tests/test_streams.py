"""Streams: recorded replays sync and async, failover before commit, interruption after."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from f3dx_router import AllProvidersFailedError, Router, StreamInterruptedError
from conftest import FIXTURES, MockServer, both_wires, request


def openai_text(path: Path) -> str:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line[6:])["choices"]:
                out.append(choice["delta"].get("content") or "")
    return "".join(out)


def anthropic_text(path: Path) -> str:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("data: "):
            event = json.loads(line[6:])
            if event.get("type") == "content_block_delta" and event["delta"].get("type") == "text_delta":
                out.append(event["delta"]["text"])
    return "".join(out)


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"])


STREAMING = request(stream=True)


@pytest.mark.parametrize(
    "fixture",
    ["openai/streams/chat_text_stop_with_usage.sse", "openai/streams/chat_finish_length_with_usage.sse"],
)
def test_sync_openai_replay(mock: MockServer, fixture: str) -> None:
    mock.script("a", {"stream": {"replay": fixture}})
    stream = Router(providers=[mock.provider("a")]).chat_completions(STREAMING)
    assert stream.route is None
    chunks = list(stream)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert text_of(chunks) == openai_text(FIXTURES / fixture)
    assert stream.route is not None and stream.route.provider == "a"
    assert list(stream) == []


@both_wires
def test_async_anthropic_replay(mock: MockServer, tls: bool) -> None:
    fixture = "anthropic/streams/text_basic.sse"
    mock.script("claude", {"stream": {"replay": fixture, "chunk_gap_ms": 5}})
    r = Router(providers=[mock.provider("claude", kind="anthropic", tls=tls)],
               root_certificates=mock.ca_pem)

    async def main() -> list[dict[str, Any]]:
        stream = await r.achat_completions(request(), stream=True)
        chunks = [c async for c in stream]
        assert stream.route is not None and stream.route.provider == "claude"
        return chunks

    chunks = asyncio.run(main())
    assert text_of(chunks) == anthropic_text(FIXTURES / fixture)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" or any(
        c["choices"] and c["choices"][0]["finish_reason"] == "stop" for c in chunks
    )
    assert mock.received("claude")[0]["json"]["stream"] is True


def test_stream_kwarg_overrides_the_request(mock: MockServer) -> None:
    r = Router(providers=[mock.provider("a")])
    chunks = list(r.chat_completions(request(), stream=True))
    assert text_of(chunks) == "Hello from a."
    c = r.chat_completions(STREAMING, stream=False)
    assert c["choices"][0]["message"]["content"] == "Hello from a."


def test_failover_before_commit_is_invisible(mock: MockServer) -> None:
    # a: 200 and the role chunk, then the connection is cut before any content.
    mock.script("a", {"stream": {"cut_after_events": 1}})
    r = Router(providers=[mock.provider("a"), mock.provider("b")])
    stream = r.chat_completions(STREAMING)
    chunks = list(stream)
    assert text_of(chunks) == "Hello from b."
    assert stream.route is not None
    first, second = stream.route.attempts
    assert first.provider == "a" and first.outcome in ("stream_failed_before_commit", "transport_error")
    assert (second.provider, second.outcome) == ("b", "success")


def test_error_event_before_commit_fails_over(mock: MockServer) -> None:
    mock.script("a", {"stream": {"error_after_events": 0}})
    mock.script("b", {"status": 500})
    r = Router(providers=[mock.provider("a"), mock.provider("b"), mock.provider("c")])
    chunks = list(r.chat_completions(STREAMING))
    assert text_of(chunks) == "Hello from c."


def test_interrupted_after_commit_raises(mock: MockServer) -> None:
    fixture = "openai/streams/chat_text_stop_with_usage.sse"
    mock.script("a", {"stream": {"replay": fixture, "cut_after_events": 4}})
    r = Router(providers=[mock.provider("a"), mock.provider("b")])
    got: list[dict[str, Any]] = []
    with pytest.raises(StreamInterruptedError) as info:
        for chunk in r.chat_completions(STREAMING):
            got.append(chunk)
    assert text_of(got) and openai_text(FIXTURES / fixture).startswith(text_of(got))
    assert info.value.provider == "a"
    assert mock.received("b") == []  # never re-sent after commit


@both_wires
def test_async_interrupted_after_commit_raises(mock: MockServer, tls: bool) -> None:
    mock.script("a", {"stream": {"replay": "openai/streams/chat_text_stop_with_usage.sse", "cut_after_events": 3}})
    r = Router(providers=[mock.provider(n, tls=tls) for n in ("a", "b")],
               root_certificates=mock.ca_pem)

    async def main() -> int:
        n = 0
        stream = await r.achat_completions(STREAMING)
        with pytest.raises(StreamInterruptedError):
            async for _ in stream:
                n += 1
        return n

    assert asyncio.run(main()) >= 1
    assert mock.received("b") == []


def test_stream_all_failed(mock: MockServer) -> None:
    mock.script("a", {"status": 500})
    with pytest.raises(AllProvidersFailedError):
        list(Router(providers=[mock.provider("a")]).chat_completions(STREAMING))


def slow_stream() -> dict[str, Any]:
    return {"stream": {"events": [f'data: {{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{{"index":0,"delta":{{"content":"w{i} "}},"finish_reason":null}}]}}\n\n' for i in range(100)], "chunk_gap_ms": 100}}


def test_breaking_out_and_closing_cancels(mock: MockServer) -> None:
    r = Router(providers=[mock.provider("a")])
    mock.script("a", slow_stream())
    with r.chat_completions(STREAMING) as stream:
        for _ in stream:
            break
    assert mock.disconnected("a")
    mock.reset()
    mock.script("a", slow_stream())
    stream = r.chat_completions(STREAMING)
    next(stream)
    stream.close()
    stream.close()
    assert mock.disconnected("a")
    with pytest.raises(StopIteration):
        next(stream)


def test_garbage_collected_stream_cancels(mock: MockServer) -> None:
    r = Router(providers=[mock.provider("a")])
    mock.script("a", slow_stream())
    stream = r.chat_completions(STREAMING)
    next(stream)
    del stream
    gc.collect()
    assert mock.disconnected("a")
    assert mock.wait_for(lambda: r._in_flight() == (0, 0, 0))


@both_wires
def test_async_break_and_aclose_cancel(mock: MockServer, tls: bool) -> None:
    r = Router(providers=[mock.provider("a", tls=tls)], root_certificates=mock.ca_pem)

    async def main() -> None:
        mock.script("a", slow_stream())
        async with await r.achat_completions(STREAMING) as stream:
            async for _ in stream:
                break
        assert mock.disconnected("a")
        mock.reset()
        mock.script("a", slow_stream())
        stream = await r.achat_completions(STREAMING)
        await stream.__anext__()
        await stream.aclose()
        assert mock.disconnected("a")

    asyncio.run(main())


@both_wires
def test_cancelling_a_task_reading_a_stream_cancels(mock: MockServer, tls: bool) -> None:
    r = Router(providers=[mock.provider("a", tls=tls)], root_certificates=mock.ca_pem)
    mock.script("a", slow_stream())

    async def reader() -> None:
        async for _ in await r.achat_completions(STREAMING):
            pass

    async def main() -> None:
        task = asyncio.create_task(reader())
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        del task
        gc.collect()

    asyncio.run(main())
    assert mock.disconnected("a")


def test_a_stream_started_on_one_thread_reads_on_another_while_the_first_is_busy(mock: MockServer) -> None:
    # A sync stream has a driver of its own. Another thread reading it drives it there, even
    # while the thread that started it waits on a call of its own.
    r = Router(providers=[mock.provider("a")])
    slow = Router(providers=[mock.provider("slow")])
    mock.script("slow", {"delay_ms": 1500})
    for _ in range(2):
        r.chat_completions(request())
    stream = r.chat_completions(STREAMING)
    chunks: list[dict[str, Any]] = []
    read_at: list[float] = []

    def read() -> None:
        chunks.extend(stream)
        read_at.append(time.monotonic())

    reader = threading.Thread(target=read)
    reader.start()
    slow.chat_completions(request())  # this thread blocks on its own driver meanwhile
    returned_at = time.monotonic()
    reader.join(timeout=10)
    assert len(chunks) > 1 and stream.route is not None and stream.route.provider == "a"
    assert read_at and read_at[0] < returned_at - 0.5
    assert mock.wait_for(lambda: r._in_flight() == (0, 0, 0))


def test_a_sync_stream_sends_its_request_before_it_is_read(mock: MockServer) -> None:
    r = Router(providers=[mock.provider("a")])
    for _ in range(3):  # with a pooled connection
        r.chat_completions(request())
    stream = r.chat_completions(STREAMING)
    assert mock.wait_for(lambda: len(mock.received("a")) == 4, timeout=2)
    assert len(list(stream)) > 1


def test_a_stream_outlives_the_thread_that_started_it(mock: MockServer) -> None:
    # A producer thread starts the stream and ends; the consumer reads it.
    r = Router(providers=[mock.provider("a")])
    handed_over: list[Any] = []

    def produce() -> None:
        for _ in range(2):
            r.chat_completions(request())
        handed_over.append(r.chat_completions(STREAMING))

    producer = threading.Thread(target=produce)
    producer.start()
    producer.join()
    assert len([chunk for chunk in handed_over.pop()]) > 1
    assert mock.wait_for(lambda: r._in_flight() == (0, 0, 0))
