"""An emulator inside the client's process: its ASGI app as the client's httpx2 transport, with no socket
and no port. The adapters' unit tests and the in-process bench rows run this way; a few end-to-end tests
keep the real socket (servers.common.transports.serving).

A real connection that breaks mid-answer surfaces as an httpx2 transport error; ASGITransport would hand
the app's own exception to the caller instead, so `InProcess` turns the break an emulator makes on purpose
(hooks.DroppedResponse) into the RemoteProtocolError a socket gives.
"""

from __future__ import annotations

import httpx2
from starlette.types import ASGIApp


class InProcess(httpx2.AsyncBaseTransport):
    def __init__(self, app: ASGIApp) -> None:
        self._asgi = httpx2.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            return await self._asgi.handle_async_request(request)
        except ConnectionAbortedError as exc:
            raise httpx2.RemoteProtocolError(
                f"peer closed connection without sending complete message body ({exc})", request=request
            ) from None
