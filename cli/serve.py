"""`scratchgpt serve`: the parser and the run function. Starlette and uvicorn load only here (the `serve` extra)."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from ..core.bounds import real, whole
from ..core.errors import ScratchGPTError
from ..serve.security import Limits
from .common import Parser
from .flags import add_threads_flag

INSTALL_HINT = "scratchgpt serve needs its web stack: pip install 'scratchgpt[serve]' (Starlette and uvicorn)"
SHUTDOWN_SECONDS = 3  # after SIGTERM or Ctrl-C, how long the streams in flight get to end before the server exits


def serve_parser() -> Parser:
    p = Parser(prog="scratchgpt serve", description="Serve models over HTTP: OpenAI's API at /v1, ollama's at /api.")
    a = p.add_argument
    a(
        "models",
        nargs="*",
        metavar="MODEL",
        help="checkpoints to serve, each by its file's stem (default: the shipped char model)",
    )
    a("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    a("--port", type=whole(1, 65_535), default=8000, help="port (default 8000)")
    a("--api-key", default=None, help="require this key as 'Authorization: Bearer KEY' or 'x-api-key: KEY'")
    a("--parallel", type=whole(1, 256), default=8, help="requests decoded together, per model (default 8)")
    a(
        "--max-queue",
        type=whole(0, 100_000),
        default=32,
        help="requests waiting beyond --parallel; past it, 503 with Retry-After (default 32)",
    )
    a(
        "--cors-origin",
        default=None,
        help="let pages from this origin call the API (default: only the server's own page may)",
    )
    a(
        "--request-timeout",
        type=real(0.1, 3600),
        default=None,
        metavar="SECONDS",
        help="a request's header, and then its body, must each arrive within this (default 10 and 30)",
    )
    a(
        "--max-connections",
        type=whole(1, 100_000),
        default=100,
        help="open connections; a request past them gets 503 (default 100)",
    )
    a(
        "--speakers",
        nargs=2,
        metavar=("USER", "ASSISTANT"),
        default=None,
        help="names chat messages are spoken under (default USER and ASSISTANT)",
    )
    a("--device", default="auto", help="auto, cpu, cuda or mps")
    add_threads_flag(p, decoding=True)
    a("--debug", action="store_true", help="show tracebacks")
    return p


def limits_of(args) -> Limits:
    """The Limits the flags ask for: --request-timeout sets the header's and the body's deadlines alike."""
    timeout = args.request_timeout
    chosen = Limits(max_connections=args.max_connections)
    if timeout is None:
        return chosen
    return dataclasses.replace(chosen, header_seconds=timeout, body_seconds=timeout)


def open_host_warning(host: str) -> str:
    return f"warning: serving on {host} without --api-key: anyone who can reach this port can use the model"


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port before anything says the server is up: a port in use is one line."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port a stopped server left is free again
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ScratchGPTError(
                f"port {port} on {host} is in use (another scratchgpt serve?); pick another with --port N"
            ) from None
        raise ScratchGPTError(f"cannot listen on {host}:{port} ({e.strerror or e}); check --host and --port") from None
    return sock


def model_name(path: Path, taken: dict) -> str:
    name, n = path.stem, 2
    while name in taken:
        name, n = f"{path.stem}-{n}", n + 1
    return name


def load_models(models, args) -> None:
    """Open each checkpoint and start its engine thread (run on a thread of its own: /health says 503 meanwhile)."""
    from ..model.checkpoint import shipped_checkpoint
    from ..model.device import pick_device
    from ..model.engine import Engine
    from ..model.interop import open_model
    from ..model.threads import choose_decode_threads
    from ..serve.batch import BatchEngine
    from ..serve.common import DEFAULT_SPEAKERS, ServedModel

    try:
        for source in args.models or [shipped_checkpoint("char")]:
            ckpt, _ = open_model(Path(source).expanduser(), device=pick_device(args.device))
            if not hasattr(ckpt.model, "decode_step"):
                raise ScratchGPTError(f"{source} is a bigram baseline; serve a GPT checkpoint")
            choose_decode_threads(Engine(ckpt.model), args.threads)
            engine = BatchEngine(ckpt.model, ckpt.tokenizer, parallel=args.parallel, max_queue=args.max_queue)
            engine.start()
            speakers = tuple(args.speakers) if args.speakers else DEFAULT_SPEAKERS
            models.add(ServedModel(name := model_name(Path(source), models.by_name), engine, speakers))
            print(f'serving {source} as "model": "{name}"', file=sys.stderr)
        models.ready = True
    except ScratchGPTError as e:
        models.failure = str(e)
        print(f"error: {e}", file=sys.stderr)


def cmd_serve(argv: Sequence[str]) -> int:
    args = serve_parser().parse_args(argv)
    try:
        import uvicorn

        from ..serve.app import build_app
        from ..serve.common import Models
        from ..serve.security import is_loopback_address
        from ..serve.server import server_config
    except ImportError:
        raise ScratchGPTError(INSTALL_HINT) from None
    for source in args.models:
        if not Path(source).expanduser().exists():
            raise ScratchGPTError(f"{source} does not exist; pass a .safetensors checkpoint")
    loopback = is_loopback_address(args.host)
    if not loopback and not args.api_key:
        print(open_host_warning(args.host), file=sys.stderr)
    models = Models()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        threading.Thread(target=load_models, args=(models, args), daemon=True).start()
        yield
        models.stop()

    limits = limits_of(args)
    app = build_app(
        models, api_key=args.api_key, loopback=loopback, cors_origin=args.cors_origin, lifespan=lifespan, limits=limits
    )
    config = server_config(
        app, limits, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=SHUTDOWN_SECONDS
    )

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:  # end the streams in flight first, with an error event each;
            models.stop(timeout=0)  # from now on a new request is a 503 "shutting down" at once
            super().handle_exit(sig, frame)

    sock = listening_socket(args.host, args.port)
    print(
        f"scratchgpt serve: http://{args.host}:{args.port} (the page at /, OpenAI /v1, ollama /api); Ctrl-C stops",
        file=sys.stderr,
    )
    try:
        Server(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0
