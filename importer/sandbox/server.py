"""Running the sandbox for real: uvicorn on loopback, one announcement line, a port file, clean stops."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import tempfile
import threading
from collections.abc import Generator
from pathlib import Path

import uvicorn

from importer.sandbox.app import create_app
from importer.sandbox.config import SandboxConfig

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# What uvicorn logs when an app returns mid-response, which is exactly how the drop faults work.
_DROP_LOG_MESSAGE = "ASGI callable returned without completing response."


def serve(config: SandboxConfig) -> None:
    """Serve until SIGINT or SIGTERM. Prints `sandbox listening on http://HOST:PORT` once it is listening."""
    uvicorn_config = uvicorn.Config(
        create_app(config),
        host=config.host,
        port=config.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    # After uvicorn.Config, which sets up uvicorn's logging.
    logging.getLogger("uvicorn.error").addFilter(_hide_intended_drops)
    server = _SandboxServer(uvicorn_config, config.port_file)
    try:
        server.run()
    finally:
        if config.port_file is not None and server.announced:
            config.port_file.unlink(missing_ok=True)


class _SandboxServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, port_file: Path | None) -> None:
        super().__init__(config)
        self._port_file = port_file
        self.announced = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started:
            return
        # With port 0 the OS picks the port; only the bound socket knows it.
        port = int(self.servers[0].sockets[0].getsockname()[1])
        if self._port_file is not None:
            _write_atomically(self._port_file, f"{port}\n")
        print(f"sandbox listening on http://{self.config.host}:{port}", flush=True)
        self.announced = True

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Uvicorn re-raises the caught signal after shutting down, which turns a normal stop into a
        # KeyboardInterrupt traceback or a death by SIGTERM; the sandbox just returns instead.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so a reader never sees half a port number."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def _hide_intended_drops(record: logging.LogRecord) -> bool:
    return record.getMessage() != _DROP_LOG_MESSAGE
