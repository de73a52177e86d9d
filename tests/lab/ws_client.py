"""A real WebSocket client (``websockets``) for the lab: open each URL, echo one message, close.

Usage: ``python ws_client.py [--cafile CA] URL...``; exit status 0 when every URL worked.
"""

from __future__ import annotations

import asyncio
import ssl
import sys

from websockets.asyncio.client import connect


async def one(url: str, cafile: str | None) -> None:
    ctx = ssl.create_default_context(cafile=cafile) if url.startswith("wss:") else None
    headers = {"Authorization": "Bearer hlx_lab_runner_token"}
    async with connect(url, ssl=ctx, additional_headers=headers, open_timeout=10, proxy=None) as ws:
        await ws.send('{"type":"ping"}')
        await asyncio.wait_for(ws.recv(), 10)


async def main(argv: list[str]) -> int:
    cafile = None
    if argv[:1] == ["--cafile"]:
        cafile, argv = argv[1], argv[2:]
    for url in argv:
        await one(url, cafile)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
