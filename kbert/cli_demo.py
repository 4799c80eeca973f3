"""`kbert demo EXPORT_DIR`: serve the web demo (mobile_demo/web) for an export.

A phone on the same network opens the printed URL and classifies text on the
device with LiteRT.js; nothing but static files leaves this machine. URL layout:

    /                    the PWA (mobile_demo/web: index.html, app.js, tokenizer.js, sw.js, ...)
    /demo.json           the export's name, its TFLite modes and the default one
    /export/...          model_card.json, vocab.txt, labels.txt, tflite/model_<mode>.tflite
    /litert/core/...     @litertjs/core's ES module (from mobile_demo/web/node_modules)
    /litert/wasm-utils/  its one dependency
    /litert/wasm/...     the LiteRT WebAssembly runtime (no CDN: the demo works offline)
"""

import json
import mimetypes
import os
import shutil
import socket
import sys
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import click

from kbert.errors import KbertError
from kbert.export.tflite import MODES

WEB_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mobile_demo", "web")
EXPORT_FILES = ("model_card.json", "vocab.txt", "labels.txt", "report.md")
TYPES = {
    ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8", ".json": "application/json; charset=utf-8",
    ".webmanifest": "application/manifest+json; charset=utf-8", ".wasm": "application/wasm",
    ".tflite": "application/octet-stream", ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
    ".css": "text/css; charset=utf-8", ".map": "application/json; charset=utf-8",
}


def demo_routes(export_dir, web_dir=None):
    """URL path -> file, for every file the demo serves, and the export's TFLite modes.
    Raises KbertError when the web files, their node_modules or the export's TFLite
    models are missing."""
    web_dir = web_dir or WEB_DIR
    if not os.path.isfile(os.path.join(web_dir, "index.html")):
        raise KbertError(f"{web_dir}: the web demo is not there (it ships in the kbert repository's "
                         "mobile_demo/web)")
    modules = os.path.join(web_dir, "node_modules", "@litertjs")
    packages = {"core": os.path.join(modules, "core", "dist"),
                "wasm-utils": os.path.join(modules, "wasm-utils", "dist"),
                "wasm": os.path.join(modules, "core", "wasm")}
    if not all(os.path.isdir(p) for p in packages.values()):
        shown = os.path.relpath(web_dir)
        if shown.startswith(".."):
            shown = web_dir
        raise KbertError(f"{os.path.join(shown, 'node_modules')}: LiteRT.js is not installed: run "
                         f"`npm ci --prefix {shown}` first")
    if not os.path.isdir(export_dir):
        raise KbertError(f"{export_dir}: no such export directory (make one with `kbert export`)")
    modes = [m for m in MODES if os.path.isfile(os.path.join(export_dir, "tflite", f"model_{m}.tflite"))]
    if not modes:
        raise KbertError(f"{export_dir}: no tflite/model_<mode>.tflite files: export with "
                         "`kbert export MODEL_DIR --format tflite --out EXPORT_DIR`")
    for name in ("model_card.json", "vocab.txt"):
        if not os.path.isfile(os.path.join(export_dir, name)):
            raise KbertError(f"{export_dir}: {name} is missing; is this a `kbert export` directory?")

    routes = {}
    for name in sorted(os.listdir(web_dir)):
        path = os.path.join(web_dir, name)
        if os.path.isfile(path) and not name.startswith(".") and os.path.splitext(name)[1] in TYPES:
            routes["/" + name] = path
    routes["/"] = os.path.join(web_dir, "index.html")
    for prefix, folder in packages.items():
        for name in os.listdir(folder):
            if os.path.isfile(os.path.join(folder, name)):
                routes[f"/litert/{prefix}/{name}"] = os.path.join(folder, name)
    for name in EXPORT_FILES:
        if os.path.isfile(os.path.join(export_dir, name)):
            routes["/export/" + name] = os.path.join(export_dir, name)
    for mode in modes:
        routes[f"/export/tflite/model_{mode}.tflite"] = os.path.join(export_dir, "tflite", f"model_{mode}.tflite")
    return routes, modes


def _handler(routes, info, verbose=False):
    body_info = json.dumps(info).encode("utf-8")

    class Handler(BaseHTTPRequestHandler):
        server_version = "kbert-demo"
        protocol_version = "HTTP/1.1"  # keep-alive: the page fetches a dozen files

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
            if path not in routes:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            file = routes[path]
            try:
                f = open(file, "rb")
            except OSError:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            with f:
                stat = os.fstat(f.fileno())
                modified = int(stat.st_mtime)
                since = self.headers.get("If-Modified-Since")
                if since and _parse_date(since) == modified:
                    self._send(HTTPStatus.NOT_MODIFIED, path)
                    return
                ext = os.path.splitext(file)[1]
                ctype = TYPES.get(ext) or mimetypes.guess_type(file)[0] or "application/octet-stream"
                self._send(HTTPStatus.OK, path, ctype, stat.st_size, formatdate(modified, usegmt=True))
                if send_body:
                    shutil.copyfileobj(f, self.wfile, 1 << 20)

        def _send(self, status, path, ctype=None, length=None, last_modified=None):
            self.send_response(status)
            if ctype:
                self.send_header("Content-Type", ctype)
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


def lan_address():
    """This machine's address on the local network (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
    except OSError:
        return None


def make_server(export_dir, host="0.0.0.0", port=8000, mode=None, verbose=False, web_dir=None):
    """A ThreadingHTTPServer serving the demo for EXPORT_DIR (not started).

    Returns (server, info) where info is what /demo.json tells the page."""
    routes, modes = demo_routes(export_dir, web_dir)
    if mode is None:
        mode = "float32" if "float32" in modes else modes[0]
    elif mode not in modes:
        raise KbertError(f"{export_dir}: no tflite/model_{mode}.tflite (available: {', '.join(modes)})")
    info = {"name": os.path.basename(os.path.normpath(os.path.abspath(export_dir))), "modes": modes,
            "mode": mode}
    try:
        server = ThreadingHTTPServer((host, port), _handler(routes, info, verbose))
    except OSError as e:
        raise KbertError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    server.daemon_threads = True
    return server, info


def demo_urls(server, host, scheme="http"):
    port = server.server_address[1]
    if host in ("0.0.0.0", "", "::"):
        urls = [f"{scheme}://localhost:{port}/"]
        lan = lan_address()
        if lan:
            urls.append(f"{scheme}://{lan}:{port}/")
        return urls
    return [f"{scheme}://{host}:{port}/"]


@click.command("demo")
@click.argument("export_dir", type=click.Path(file_okay=False))
@click.option("--host", default="0.0.0.0", show_default=True,
              help="Address to listen on; 0.0.0.0 lets phones on the LAN connect.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0: any free port).")
@click.option("--mode", type=click.Choice(MODES),
              help="TFLite model the page loads first (default: float32 if exported, else the first there).")
@click.option("--certfile", type=click.Path(dir_okay=False, exists=True),
              help="TLS certificate (PEM): serve https, which phones need for offline use (service worker).")
@click.option("--keyfile", type=click.Path(dir_okay=False, exists=True), help="TLS private key (PEM).")
@click.option("--verbose", is_flag=True, help="Log every request.")
def demo(export_dir, host, port, mode, certfile, keyfile, verbose):
    """Serve the web demo for EXPORT_DIR so a phone's browser classifies text on
    the device (LiteRT.js, no server-side inference).

    Needs LiteRT.js installed once: npm ci --prefix mobile_demo/web.

    Example: kbert demo exports/sst2, then open the printed LAN URL on a phone.
    """
    if keyfile and not certfile:
        raise KbertError("--keyfile needs --certfile")
    server, info = make_server(export_dir, host, port, mode, verbose)
    scheme = "http"
    if certfile:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(certfile, keyfile)
        except (ssl.SSLError, OSError) as e:
            server.server_close()
            raise KbertError(f"{certfile}: cannot load the certificate: {e}") from None
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    urls = demo_urls(server, host, scheme)
    click.echo(f"kbert demo: {info['name']} ({', '.join(info['modes'])}; default {info['mode']}) at "
               + "  ".join(urls))
    if scheme == "http" and len(urls) > 1:
        click.echo("open the LAN address on a phone on the same network; offline use (install to home "
                   "screen) needs https (--certfile/--keyfile) or localhost. Ctrl-C stops.")
    else:
        click.echo("Ctrl-C stops.")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


COMMANDS = [demo]
