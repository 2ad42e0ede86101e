"""aiohttp's connection pool, made to drop a kept-alive connection that got unrequested bytes.

aiohttp closes a connection whose reply came with extra bytes in the same read, but a
connection that receives bytes while it sits idle in the pool (a server that wrote one
reply too many, late) is handed to the next request as it is, and that request reads the
stale reply as its own (seen here). :class:`StrictReuseConnector` checks, at the moment
a pooled connection is taken, whether anything arrived on it since its last reply --
bytes aiohttp has buffered already, or bytes still waiting in the kernel (a non-blocking
``MSG_PEEK`` on a duplicate of the socket: the loop may not have read them yet) -- and
closes it if so. Bytes that arrive after the request is sent cannot be told apart from
its reply in HTTP/1.1; that window is as short as a connection's reuse.

:func:`retire` is the other half: aiohttp pools a connection again as soon as a reply's
body ends, before the client has judged the reply, so a stream that ended without its
final event (llama-cpp-python's server does that when it fails mid-reply, then closes the
connection a moment later) would be reused and the next request lost with it.

This is the only place that relies on aiohttp internals (``TCPConnector._get``,
``ResponseHandler.should_close`` being true when unread bytes are buffered,
``ResponseHandler.force_close`` and ``ClientResponse._protocol``);
:func:`check_aiohttp_hooks` fails loudly when a new aiohttp changes them, and the tests
call it.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler

__all__ = ["StrictReuseConnector", "check_aiohttp_hooks", "retire"]


class StrictReuseConnector(aiohttp.TCPConnector):
    """A TCPConnector that never reuses a connection with unrequested bytes buffered."""

    async def _get(self, key: Any, traces: Any) -> Any:
        while True:
            connection = await super()._get(key, traces)
            if connection is None:
                return None
            protocol = connection.protocol
            if protocol is None or not (protocol.should_close or _bytes_waiting(protocol)):
                return connection
            connection.close()  # bytes (or an error, or the peer's close) came while idle


def retire(response: aiohttp.ClientResponse) -> None:
    """Never reuse the connection ``response`` came on, even if it is back in the pool.

    Marked, not closed: a connection still attached closes when it is released, and one
    in the pool is closed by :meth:`StrictReuseConnector._get` when it is next taken. The
    protocol is the one ``ClientResponse.start`` keeps (``_protocol``): when the body ends
    in the same read as the headers, the connection is pooled before ``post`` returns.
    """
    protocol = getattr(response, "_protocol", None)
    if isinstance(protocol, ResponseHandler):
        protocol.force_close()


def _bytes_waiting(protocol: ResponseHandler) -> bool:
    """Whether the kernel holds unread bytes (or an EOF) for ``protocol``'s socket."""
    transport = protocol.transport
    if not isinstance(transport, asyncio.Transport):
        return False
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    # A socket object over the same descriptor (asyncio's wrapper has no recv), detached
    # before it could close it: one recv syscall, where a dup() would cost three.
    peek = socket.socket(sock.family, sock.type, sock.proto, sock.fileno())
    try:
        peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True  # a reset or a broken socket: not reusable either
    finally:
        peek.detach()
    return True  # a byte, or b"" (the peer closed)


def check_aiohttp_hooks() -> None:
    """Raise RuntimeError if the aiohttp internals this module overrides have changed."""
    params = list(inspect.signature(aiohttp.TCPConnector._get).parameters)
    if params != ["self", "key", "traces"]:
        raise RuntimeError(
            f"aiohttp {aiohttp.__version__}: TCPConnector._get(self, key, traces) changed "
            f"to {params}; update dspex_actors/lm/_connector.py"
        )
    if not isinstance(inspect.getattr_static(ResponseHandler, "should_close"), property):
        raise RuntimeError(
            f"aiohttp {aiohttp.__version__}: ResponseHandler.should_close is no longer a "
            "property; update dspex_actors/lm/_connector.py"
        )
    if "self._protocol = " not in inspect.getsource(aiohttp.ClientResponse.start):
        raise RuntimeError(
            f"aiohttp {aiohttp.__version__}: ClientResponse.start() no longer keeps "
            "_protocol; update dspex_actors/lm/_connector.py"
        )
    if not callable(getattr(ResponseHandler, "force_close", None)):
        raise RuntimeError(
            f"aiohttp {aiohttp.__version__}: ResponseHandler.force_close() is gone; "
            "update dspex_actors/lm/_connector.py"
        )
