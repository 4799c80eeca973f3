"""The web server behind `kbert demo EXPORT_DIR`: the PWA of kbert/demo/web and the
files of one export, nothing else. Standard library only (no TensorFlow).

URL layout:

    /                    the PWA (web/: index.html, app.js, page.js, tokenizer.js, sw.js, ...)
    /demo.json           the export's name, its TFLite modes and the default one
    /export/...          model_card.json, vocab.txt, labels.txt, report.md, tflite/model_<mode>.tflite
    /litert/core/...     LiteRT.js's ES module, /litert/wasm-utils/ its one dependency
    /litert/wasm/...     the LiteRT WebAssembly runtime (vendored in web/litert: no CDN, no npm)

A web file stored gzipped, `X.wasm.gz`, is served at `X.wasm` (the package ships the
~9 MB WebAssembly builds that way): as stored with `Content-Encoding: gzip` to a
client whose Accept-Encoding allows gzip, else decompressed on the fly. A plain
`X.wasm` beside it wins.

What a client cannot do:
- make the server read outside the export and web folders: only the listed files
  are served, and only when they are regular files whose real path (symlinks
  resolved, at request time) lies inside their folder;
- hold the server with idle or slow sockets: the TLS handshake runs in the
  connection's own thread and must finish within the timeout, every connection
  has a silence timeout (request, keep-alive, a stalled download), and at most
  `max_connections` are
  served at once; a connection beyond waits up to `queue_timeout` for a free slot
  and is then refused (503 over http, closed over https).
"""

import json
import os
import select
import socket
import stat
import sys
import threading
import time
import zlib
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from kbert.errors import KbertError

WEB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")
DEFAULT_HOST = "127.0.0.1"  # loopback: a LAN is opted into with host="0.0.0.0"
DEFAULT_PORT = 8000
DEFAULT_MODE = "float32"
TIMEOUT = 10.0  # seconds a connection may stay silent
MAX_CONNECTIONS = 64  # a page opens up to ~6; dozens of phones fit
QUEUE_TIMEOUT = 2.0  # seconds a connection beyond MAX_CONNECTIONS waits for a slot
EXPORT_FILES = ("model_card.json", "vocab.txt", "labels.txt", "report.md")
TYPES = {
    ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8", ".json": "application/json; charset=utf-8",
    ".webmanifest": "application/manifest+json; charset=utf-8", ".wasm": "application/wasm",
    ".tflite": "application/octet-stream", ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
    ".css": "text/css; charset=utf-8", ".map": "application/json; charset=utf-8",
}
# The files `kbert demo` cannot start without (a runtime file may ship gzipped).
WEB_NEEDED = ("index.html", "litert/core/index.js", "litert/wasm-utils/index.js",
              "litert/wasm/litert_wasm_internal.wasm.gz")
CHUNK = 1 << 20
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\n"
         b"Connection: close\r\n\r\n")


def open_inside(root, path):
    """Open `path` for binary reading if it is a regular file whose real path lies
    inside the folder `root` (a real path); None otherwise.

    Symlinks inside `root` are followed; one leading out of it is refused.
    """
    real = os.path.realpath(path)
    try:
        if os.path.commonpath([root, real]) != root:
            return None
        # O_NONBLOCK: a FIFO planted under a served name must not hang the thread.
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
    except OSError:
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def _is_servable(root, path):
    f = open_inside(root, path)
    if f is None:
        return False
    f.close()
    return True


def export_modes(export_dir):
    """The TFLite modes of an export with a servable tflite/model_<mode>.tflite, in
    the order of its model card's `quantization` (the export's own order)."""
    root = os.path.realpath(export_dir)
    folder = os.path.join(export_dir, "tflite")
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = [n[len("model_"):-len(".tflite")] for n in names
             if n.startswith("model_") and n.endswith(".tflite") and len(n) > len("model_.tflite")
             and _is_servable(root, os.path.join(folder, n))]
    order = []
    try:
        with open(os.path.join(export_dir, "model_card.json"), encoding="utf-8") as f:
            quantization = json.load(f).get("quantization")
        if isinstance(quantization, dict):
            order = [k[len("tflite_"):] for k in quantization if k.startswith("tflite_")]
    except (OSError, ValueError, AttributeError):
        pass
    return sorted(found, key=lambda m: (order.index(m) if m in order else len(order), m))


def demo_routes(export_dir, web_dir=None):
    """URL path -> (root, file) for every file the demo serves, and the export's TFLite modes.

    A web file `X.gz` is routed at `X` (served gzip-coded or decompressed).

    Args:
        export_dir: a `kbert export` directory with `tflite/model_<mode>.tflite`.
        web_dir: the PWA's folder (default: the one shipped in this package).

    Raises:
        KbertError: the export or its TFLite models are missing, or the web files
            are incomplete.
    """
    web_dir = web_dir or WEB_DIR
    web_root = os.path.realpath(web_dir)
    routes = {}
    for folder, dirs, files in os.walk(web_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        for name in sorted(files):
            path = os.path.join(folder, name)
            served = name.removesuffix(".gz")
            if served.startswith(".") or os.path.splitext(served)[1] not in TYPES \
                    or not _is_servable(web_root, path):
                continue
            url = "/" + os.path.relpath(os.path.join(folder, served), web_dir).replace(os.sep, "/")
            if served == name:
                routes[url] = (web_root, path)
            else:
                routes.setdefault(url, (web_root, path))  # a plain copy beside it wins
    for needed in WEB_NEEDED:
        if "/" + needed.removesuffix(".gz") not in routes:
            raise KbertError(f"{os.path.join(web_dir, needed)}: missing: the kbert package's demo files are "
                             "incomplete (reinstall kbert)")
    routes["/"] = routes["/index.html"]
    if not os.path.isdir(export_dir):
        raise KbertError(f"{export_dir}: no such export directory (make one with `kbert export`)")
    export_root = os.path.realpath(export_dir)
    for name in ("model_card.json", "vocab.txt"):
        if not _is_servable(export_root, os.path.join(export_dir, name)):
            raise KbertError(f"{export_dir}: {name} is missing; is this a `kbert export` directory?")
    modes = export_modes(export_dir)
    if not modes:
        raise KbertError(f"{export_dir}: no tflite/model_<mode>.tflite files: export with "
                         "`kbert export MODEL_DIR --format tflite --out EXPORT_DIR`")
    for name in EXPORT_FILES:
        if _is_servable(export_root, os.path.join(export_dir, name)):
            routes["/export/" + name] = (export_root, os.path.join(export_dir, name))
    for mode in modes:
        routes[f"/export/tflite/model_{mode}.tflite"] = (export_root,
                                                         os.path.join(export_dir, "tflite", f"model_{mode}.tflite"))
    return routes, modes


def accepts_gzip(accept_encoding):
    """Whether an Accept-Encoding header value lets the response be gzip-coded
    (`gzip`, `x-gzip` or `*` with a q-value above 0; no header: no)."""
    q_gzip = q_any = None
    for item in (accept_encoding or "").split(","):
        coding, *params = item.split(";")
        coding, q = coding.strip().lower(), 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        if coding in ("gzip", "x-gzip"):
            q_gzip = max(q, q_gzip or 0.0)
        elif coding == "*":
            q_any = q
    q = q_gzip if q_gzip is not None else q_any
    return q is not None and q > 0


def gunzip_chunks(f, chunk=CHUNK):
    """The decompressed bytes of the gzip file `f` (every member), at most `chunk`
    at a time: no whole decompressed copy is held.

    Raises:
        zlib.error: `f` is not gzip or is cut short.
    """
    decompressor, started, ended = zlib.decompressobj(16 + zlib.MAX_WBITS), False, False
    while data := f.read(chunk):
        started = True
        while data:
            out = decompressor.decompress(data, chunk)
            if out:
                yield out
            if decompressor.eof:  # a member ends; another may follow
                data, decompressor = decompressor.unused_data, zlib.decompressobj(16 + zlib.MAX_WBITS)
                started, ended = bool(data), True
            else:
                data = decompressor.unconsumed_tail
    tail = decompressor.flush()
    if tail:
        yield tail
    if not (decompressor.eof or ended and not started):  # no member, or the last cut short
        raise zlib.error("truncated gzip file")


def _handler(routes, info, silence_timeout, verbose=False):
    body_info = json.dumps(info).encode("utf-8")
    # Decompressed sizes of the gzipped web files (for Content-Length), measured once
    # per version of the file: path -> ((device, inode, size, mtime), size).
    gunzipped_sizes = {}

    class Handler(BaseHTTPRequestHandler):
        server_version = "kbert-demo"
        protocol_version = "HTTP/1.1"  # keep-alive: the page fetches a dozen files
        # Silence timeout of every read and write: a keep-alive socket left idle, a
        # request sent byte by byte too slowly or a download no longer read is dropped.
        timeout = silence_timeout

        def do_GET(self):
            self._serve(send_body=True)

        def do_HEAD(self):
            self._serve(send_body=False)

        def _serve(self, send_body):
            path = unquote(urlsplit(self.path).path)
            if path == "/demo.json":
                self._send(HTTPStatus.OK, path, TYPES[".json"], len(body_info))
                if send_body:
                    self.wfile.write(body_info)
                return
            route = routes.get(path)
            f = open_inside(*route) if route else None
            if f is None:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            with f:
                size = os.fstat(f.fileno())
                modified = int(size.st_mtime)
                gzipped = route[1].endswith(".gz")
                since = self.headers.get("If-Modified-Since")
                if since and _parse_date(since) == modified:
                    self._send(HTTPStatus.NOT_MODIFIED, path, vary=gzipped)
                    return
                last_modified = formatdate(modified, usegmt=True)
                ctype = TYPES.get(os.path.splitext(route[1].removesuffix(".gz"))[1], "application/octet-stream")
                if not gzipped:
                    self._send(HTTPStatus.OK, path, ctype, size.st_size, last_modified)
                    if send_body:
                        self._copy(f, size.st_size)
                elif accepts_gzip(self.headers.get("Accept-Encoding")):
                    self._send(HTTPStatus.OK, path, ctype, size.st_size, last_modified, "gzip", vary=True)
                    if send_body:
                        self._copy(f, size.st_size)
                else:
                    length = self._gunzipped_size(f, route[1], size)
                    if length is None:
                        self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR, "damaged gzip file")
                        return
                    self._send(HTTPStatus.OK, path, ctype, length, last_modified, vary=True)
                    if send_body:
                        self._copy_gunzipped(f, length)

        def _gunzipped_size(self, f, name, st):
            version = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            known = gunzipped_sizes.get(name)
            if known and known[0] == version:
                return known[1]
            try:
                length = sum(len(chunk) for chunk in gunzip_chunks(f))
                f.seek(0)
            except (zlib.error, OSError) as e:
                if verbose:
                    sys.stderr.write(f"kbert demo: {name}: {e}\n")
                return None
            gunzipped_sizes[name] = (version, length)
            return length

        def _copy_gunzipped(self, f, length):
            # Streamed through zlib, at most the length announced (as `_copy`).
            try:
                for chunk in gunzip_chunks(f):
                    chunk = chunk[:length]
                    self.wfile.write(chunk)
                    length -= len(chunk)
                    if not length:
                        break
            except zlib.error:
                pass
            if length:
                self.close_connection = True

        def _copy(self, f, length):
            # At most the size announced: a file growing while served must not break HTTP framing.
            while length > 0:
                chunk = f.read(min(length, 1 << 20))
                if not chunk:
                    break
                self.wfile.write(chunk)
                length -= len(chunk)
            if length:
                self.close_connection = True

        def _send(self, status, path, ctype=None, length=None, last_modified=None, encoding=None, vary=False):
            self.send_response(status)
            if ctype:
                self.send_header("Content-Type", ctype)
            if encoding:
                self.send_header("Content-Encoding", encoding)
            if vary:  # the bytes depend on Accept-Encoding: caches must key on it
                self.send_header("Vary", "Accept-Encoding")
            if length is not None:
                self.send_header("Content-Length", str(length))
            # Always revalidate: a re-export under the same name must not be served stale.
            self.send_header("Cache-Control", "no-cache")
            if last_modified:
                self.send_header("Last-Modified", last_modified)
            # Cross-origin isolation lets LiteRT.js use threads where the page is a
            # secure context (localhost, https).
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
            self.send_header("Cross-Origin-Resource-Policy", "same-origin")
            if path == "/sw.js":
                self.send_header("Service-Worker-Allowed", "/")
            self.end_headers()

        def log_message(self, format, *args):
            if verbose:
                sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return Handler


def _parse_date(value):
    try:
        return int(parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class DemoServer(ThreadingHTTPServer):
    """A thread per connection, at most `max_connections` at once, TLS handshakes
    off the accepting thread and within `timeout`, every connection with a
    silence timeout.

    Args:
        address: (host, port) to listen on; an IPv6 host listens on IPv6.
        handler: the request handler class.
        tls: an `ssl.SSLContext` for https, or None for http.
        timeout: seconds a connection may stay silent; also the most a TLS
            handshake may take.
        max_connections: connections served at once.
        queue_timeout: seconds a connection beyond `max_connections` waits for a
            free slot before it is refused.
        verbose: log dropped connections on stderr.
    """

    daemon_threads = True
    request_queue_size = 256  # a burst of connects waits in the kernel, not in SYN retries

    def __init__(self, address, handler, tls=None, timeout=TIMEOUT, max_connections=MAX_CONNECTIONS,
                 queue_timeout=QUEUE_TIMEOUT, verbose=False):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.tls = tls
        self.scheme = "https" if tls is not None else "http"
        self.connection_timeout = timeout
        self.queue_timeout = queue_timeout
        self.verbose = verbose
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        # On the accepting thread: never read or handshake here, only wait for a slot.
        if not self._slots.acquire(timeout=self.queue_timeout):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            self.shutdown_request(request)
            raise

    def process_request_thread(self, request, client_address):
        try:
            if self.tls is not None:
                request = self.tls.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
                self._handshake(request)
            request.settimeout(self.connection_timeout)
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def _handshake(self, tls_socket):
        # One deadline for the whole handshake: a client trickling its hello byte
        # by byte is dropped as surely as a silent one.
        import ssl

        deadline = time.monotonic() + self.connection_timeout
        tls_socket.setblocking(False)
        while True:
            try:
                tls_socket.do_handshake()
                return
            except ssl.SSLWantReadError:
                wait = ([tls_socket], [])
            except ssl.SSLWantWriteError:
                wait = ([], [tls_socket])
            left = deadline - time.monotonic()
            if left <= 0 or not any(select.select(*wait, [], left)[:2]):
                raise TimeoutError("TLS handshake timed out")

    def _refuse(self, request):
        try:
            request.setblocking(False)
            if self.tls is None:
                request.send(_BUSY)
            request.recv(1 << 16)  # unread bytes would turn the close into a reset before the 503 is read
        except OSError:
            pass
        if self.verbose:
            sys.stderr.write("kbert demo: all connections busy: refused one\n")
        self.shutdown_request(request)

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        if isinstance(error, OSError):  # timeouts, resets, TLS failures: the client's doing
            if self.verbose:
                sys.stderr.write(f"kbert demo: {client_address[0]}: connection dropped: {error}\n")
            return
        super().handle_error(request, client_address)


def _tls_context(certfile, keyfile):
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (ssl.SSLError, OSError) as e:
        raise KbertError(f"{certfile}: cannot load the certificate: {e}") from None
    return context


def make_server(export_dir, host=DEFAULT_HOST, port=DEFAULT_PORT, mode=None, certfile=None, keyfile=None,
                verbose=False, web_dir=None, timeout=TIMEOUT, max_connections=MAX_CONNECTIONS,
                queue_timeout=QUEUE_TIMEOUT):
    """A `DemoServer` for `export_dir`, listening but not started (call `serve_forever()`).

    Args:
        export_dir: a `kbert export` directory with `tflite/model_<mode>.tflite`.
        host: address to listen on; the default is loopback only, `"0.0.0.0"`
            lets phones on the LAN connect.
        port: port, 0 for any free one.
        mode: the TFLite model the page loads first (default: float32 when
            exported, else the first mode there).
        certfile, keyfile: PEM certificate and key to serve https.
        verbose: log every request on stderr.
        web_dir: the PWA's folder (default: the one shipped in this package).
        timeout, max_connections, queue_timeout: see `DemoServer`.

    Returns:
        (server, info) where info is what /demo.json tells the page.

    Examples:

    >>> server, info = make_server("exports/sst2", port=0)  # doctest: +SKIP
    >>> threading.Thread(target=server.serve_forever, daemon=True).start()  # doctest: +SKIP
    """
    if keyfile and not certfile:
        raise KbertError("--keyfile needs --certfile")
    routes, modes = demo_routes(export_dir, web_dir)
    if mode is None:
        mode = DEFAULT_MODE if DEFAULT_MODE in modes else modes[0]
    elif mode not in modes:
        raise KbertError(f"{export_dir}: no tflite/model_{mode}.tflite (available: {', '.join(modes)})")
    tls = _tls_context(certfile, keyfile) if certfile else None
    info = {"name": os.path.basename(os.path.normpath(os.path.abspath(export_dir))), "modes": modes, "mode": mode}
    handler = _handler(routes, info, timeout, verbose)
    try:
        server = DemoServer((host, port), handler, tls, timeout, max_connections, queue_timeout, verbose)
    except OSError as e:
        raise KbertError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return server, info


def lan_address():
    """This machine's address on the local network (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
    except OSError:
        return None


def is_wildcard(host):
    return host in ("0.0.0.0", "", "::")


def is_loopback(host):
    return host in ("localhost", "::1") or host.startswith("127.")


def demo_urls(server):
    """The URLs to open: loopback's, plus the LAN's when listening on every interface."""
    host, port = server.server_address[:2]
    scheme = server.scheme
    if is_wildcard(host):
        urls = [f"{scheme}://localhost:{port}/"]
        lan = lan_address()
        if lan:
            urls.append(f"{scheme}://{lan}:{port}/")
        return urls
    return [f"{scheme}://[{host}]:{port}/" if ":" in host else f"{scheme}://{host}:{port}/"]
