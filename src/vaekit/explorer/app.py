"""The explorer's web face: a FastAPI app over one :class:`~vaekit.explorer.session.Explorer`, and serving it.

FastAPI and uvicorn (the ``explore`` extra) are imported inside :func:`create_app` and :func:`serve` only, so
importing this module (or ``vaekit --help``) needs neither. The app serves one page (``static/index.html``,
read once from the package) and a JSON API; no route takes a file path, and every request body is a pydantic
model with bounds (unknown fields refused), so a bad request is a 4xx with a one-line ``detail`` and the server
goes on serving. Request bodies are capped at :data:`MAX_BODY` bytes; on a loopback address only loopback
``Host`` headers are accepted (see :class:`Guard`).
"""

import socket
from importlib.resources import files
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from ..errors import UsageError
from .session import MAX_STEPS, Z_LIMIT, BadRequest, Explorer

#: the largest request body accepted (bytes); a latent code of 4096 numbers is about 90 KB of JSON
MAX_BODY = 256 * 1024
#: the most latent values / attribute values a request may carry (TrainConfig's latent_dim is at most 4096)
MAX_LEN = 4096
LOOPBACK = ("127.0.0.1", "localhost", "::1")
INSTALL = "pip install 'vaekit[explore]'"

ZValue = Annotated[float, Field(allow_inf_nan=False, ge=-Z_LIMIT, le=Z_LIMIT)]
Coordinate = Annotated[float, Field(allow_inf_nan=False, ge=-1e6, le=1e6)]
Attribute = Annotated[float, Field(allow_inf_nan=False, ge=-1e12, le=1e12)]


class Condition(BaseModel):
    """The condition of a conditional run: a label index, or attribute values in the data's units."""

    model_config = ConfigDict(extra="forbid")
    label: Optional[int] = Field(None, ge=0, le=1_000_000)
    attributes: Optional[list[Attribute]] = Field(None, min_length=1, max_length=MAX_LEN)


class DecodeRequest(Condition):
    """Decode a latent code ``z``, or the code at a map ``point`` (exactly one of them)."""

    z: Optional[list[ZValue]] = Field(None, min_length=1, max_length=MAX_LEN)
    point: Optional[list[Coordinate]] = Field(None, min_length=2, max_length=2)


class TraverseRequest(Condition):
    """Sweep latent dimension ``dim`` over ±``span`` around ``z`` in ``steps`` points."""

    z: list[ZValue] = Field(..., min_length=1, max_length=MAX_LEN)
    dim: int = Field(..., ge=0, lt=MAX_LEN)
    steps: int = Field(9, ge=2, le=MAX_STEPS)
    span: float = Field(3.0, gt=0, le=10, allow_inf_nan=False)


class InterpolateRequest(Condition):
    """The path between the posterior means of examples ``a`` and ``b``."""

    a: int = Field(..., ge=0, le=10_000_000)
    b: int = Field(..., ge=0, le=10_000_000)
    steps: int = Field(8, ge=2, le=MAX_STEPS)
    method: Literal["linear", "spherical"] = "linear"


def require_packages() -> None:
    """A one-line UsageError (exit 2) naming the extra when FastAPI or uvicorn cannot be imported."""
    missing = []
    for name in ("fastapi", "uvicorn"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise UsageError(f"vaekit explore needs {' and '.join(missing)}, which are not installed: {INSTALL}")


def index_html() -> str:
    """The page, read from the installed package (package data, no path from a request)."""
    return files("vaekit.explorer").joinpath("static", "index.html").read_text(encoding="utf-8")


def _validation_detail(err: Any) -> str:
    """pydantic's errors as one line: ``field: message; …``."""
    parts = []
    for e in err.errors():
        loc = list(e.get("loc", ()))
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        where = ".".join(str(p) for p in loc)
        parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg", "invalid")))
    return "; ".join(parts)[:500] or "invalid request"


def host_name(header: str) -> str:
    """The host of a Host header without its port: ``[::1]:8000`` → ``::1``, ``localhost:8000`` → ``localhost``."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """ASGI middleware in front of the app: on a loopback address, only loopback Host headers (400 otherwise:
    a page elsewhere cannot reach the explorer by DNS rebinding); request bodies over ``limit`` bytes are
    refused with 413 (by Content-Length, and while reading a body sent without one) before anything parses
    them. The body is read here, at most ``limit`` bytes of it, and handed on in one piece."""

    def __init__(self, app: Any, loopback_only: bool = True, limit: int = MAX_BODY):
        self.app, self.loopback_only, self.limit = app, loopback_only, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.loopback_only and host_name(headers.get(b"host", b"").decode("latin-1")) not in LOOPBACK:
            return await _refuse(send, 400, "the explorer answers requests to 127.0.0.1 or localhost only")
        too_large = f"the request body is over {self.limit} bytes"
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await _refuse(send, 413, too_large)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                return await _refuse(send, 413, too_large)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _refuse(send: Any, status: int, detail: str) -> None:
    import json

    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(explorer: Explorer, host: str = "127.0.0.1") -> Any:
    """The FastAPI app serving ``explorer``'s run (and nothing else). ``host`` is the address it is bound to:
    on a loopback address only loopback Host headers are accepted."""
    require_packages()
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse

    page = index_html()
    app = FastAPI(title="vaekit explore", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(Guard, loopback_only=host in LOOPBACK)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(err)}, status_code=422)

    @app.exception_handler(BadRequest)
    @app.exception_handler(UsageError)
    async def bad(_request: Request, err: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=400)

    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers={**headers, "Content-Security-Policy":
                                           "default-src 'self'; img-src 'self' data:; script-src 'unsafe-inline'; "
                                           "style-src 'unsafe-inline'"})

    @app.get("/api/info")
    def info() -> dict:
        return explorer.info()

    @app.get("/api/points")
    def points() -> dict:
        return explorer.points()

    @app.get("/api/example/{index}")
    def example(index: int) -> dict:
        return explorer.example(index)

    @app.post("/api/decode")
    def decode(req: DecodeRequest) -> dict:
        if (req.z is None) == (req.point is None):
            raise BadRequest("give exactly one of z (a latent code) or point (map coordinates)")
        nearest = None
        if req.z is not None:
            z = explorer.check_z(req.z)
        else:
            z, nearest = explorer.z_at(req.point)
        c = explorer.condition(req.label, req.attributes, example=nearest)
        return {"z": [float(v) for v in z[0]], "nearest": nearest, **explorer.decode(z, c)}

    @app.post("/api/traverse")
    def traverse(req: TraverseRequest) -> dict:
        z = explorer.check_z(req.z)
        return explorer.traverse(z, req.dim, req.steps, req.span, explorer.condition(req.label, req.attributes))

    @app.post("/api/interpolate")
    def interpolate(req: InterpolateRequest) -> dict:
        a = explorer.check_index(req.a, "a: example")
        c = explorer.condition(req.label, req.attributes, example=a)
        return explorer.interpolate(a, req.b, req.steps, req.method, c)

    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: any free port); a one-line UsageError when the address
    cannot be used (port in use, unknown host)."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise UsageError(f"--host {host!r} is not an address of this machine ({err.strerror}); "
                         "use 127.0.0.1 (the default) or an interface's address") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(64)
    except OSError as err:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port} ({err.strerror or err}); choose another --port "
                         "(or --port 0 for any free one)") from None
    return sock


def url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def server(app: Any, log_level: str = "warning") -> Any:
    """A uvicorn server for ``app`` (start it with ``.run(sockets=[sock])``; stop it with ``should_exit``)."""
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off"))
