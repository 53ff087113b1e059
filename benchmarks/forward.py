"""A small TCP forwarder for the two-host tests: `python -m benchmarks.forward
LISTEN_HOST:PORT=TARGET_HOST:PORT ...` listens on each address and copies bytes both ways
to its target. It prints "ready" once every address is bound, and stops on SIGTERM.

The root namespace runs one bound to the veth's host-side addresses (PostgreSQL, Redis,
RabbitMQ and the kube-apiservers listen on 127.0.0.1 only); a "host" namespace runs one on
its own loopback for the kube-apiservers, whose URLs and certificates name 127.0.0.1.
A connection closed on one side is closed on the other, so a killed worker's broker
connection ends at RabbitMQ too (its unacknowledged messages are redelivered). It stops
when the process that started it is gone."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _handler(target: tuple[str, int]) -> object:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return handle


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def main(routes: list[str]) -> None:
    servers = []
    for route in routes:
        listen, _, target = route.partition("=")
        host, port = _address(listen)
        handler = _handler(_address(target))
        servers.append(await asyncio.start_server(handler, host, port, reuse_address=True))  # type: ignore[arg-type]
    print("ready", flush=True)  # noqa: T201 (the parent waits for it)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    parent = os.getppid()
    while not stop.is_set():  # also ends with the run that started it (killed, crashed)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1)
        if os.getppid() != parent:
            break
    for server in servers:
        server.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
