"""The aiohttp session a provider's calls share, one per event loop.

A session holds the keep-alive connections; it belongs to the loop that opened it, so each
loop (the worker's, or a short `asyncio.run`) gets its own, closed by `close()` when that
loop's work is done.
"""

from __future__ import annotations

import asyncio
import weakref

import aiohttp

# Connections kept open per session at most (sends and read receipts in flight at once).
CONNECTION_LIMIT = 256

_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = weakref.WeakKeyDictionary()


def session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    current = _sessions.get(loop)
    if current is None or current.closed:
        current = _sessions[loop] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CONNECTION_LIMIT), raise_for_status=False, trust_env=True
        )
    return current


async def close() -> None:
    """Close the running loop's session (its kept connections)."""
    current = _sessions.pop(asyncio.get_running_loop(), None)
    if current is not None and not current.closed:
        await current.close()
