"""`kbert demo` under load and attack, on loopback: symlinks out of the export,
idle and slow sockets (plain and TLS), more connections than slots, 200
concurrent downloads, the gzipped WebAssembly served coded or decompressed. Each case starts the server as `kbert demo` does (port 0,
127.0.0.1) and talks to it as a browser or an attacker would. Bounded: ~15 s.
"""

import gzip
import http.client
import io
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import zlib

import pytest

from kbert.demo.server import WEB_DIR, accepts_gzip, gunzip_chunks, make_server

MODEL_BYTES = 1 << 20  # the fake .tflite: big enough that 200 downloads overlap


def write_export(root, name="toy"):
    out = root / name
    (out / "tflite").mkdir(parents=True)
    (out / "model_card.json").write_text('{"task": "classify", "seq_len": 8}')
    (out / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    (out / "labels.txt").write_text("neg\npos\n")
    (out / "tflite" / "model_float32.tflite").write_bytes(os.urandom(MODEL_BYTES))
    return out


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return write_export(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    """A self-signed certificate for localhost / 127.0.0.1: (certfile, keyfile)."""
    folder = tmp_path_factory.mktemp("tls")
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    try:
        make_cert_with_cryptography(certfile, keyfile)
    except ImportError:
        if subprocess.run(["openssl", "version"], capture_output=True).returncode != 0:
            pytest.skip("neither the cryptography package nor the openssl CLI to make a certificate")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", str(keyfile), "-out",
                        str(certfile), "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True)
    return str(certfile), str(keyfile)


def make_cert_with_cryptography(certfile, keyfile):
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=2)).add_extension(san, critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))


class Running:
    """`kbert demo` on 127.0.0.1, a free port, in a thread."""

    def __init__(self, export_dir, **options):
        self.server, self.info = make_server(str(export_dir), "127.0.0.1", 0, **options)
        self.port = self.server.server_address[1]
        self.tls = options.get("certfile")
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def get(self, path, timeout=10):
        """(status, body) of one GET on a fresh connection."""
        if self.tls:
            context = ssl.create_default_context(cafile=self.tls)
            connection = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=context)
        else:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def request(self, path, headers=None, method="GET", connection=None):
        """(status, headers, body) of one request sending exactly `headers` (http.client
        adds no Accept-Encoding of its own), on `connection` or a fresh one."""
        fresh = connection is None
        connection = connection or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.putrequest(method, path, skip_accept_encoding=True)
            for key, value in (headers or {}).items():
                connection.putheader(key, value)
            connection.endheaders()
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            if fresh:
                connection.close()

    def idle_sockets(self, n):
        return [socket.create_connection(("127.0.0.1", self.port), timeout=10) for _ in range(n)]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def closed_after(sock, limit):
    """Seconds until the server closes `sock` (EOF or reset), or None after `limit`."""
    start = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(4096):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    except socket.timeout:
        return None
    return time.monotonic() - start


def test_symlinks_out_of_the_export_are_not_served(tmp_path):
    export_dir = write_export(tmp_path / "exports")
    secret = tmp_path / "secret.txt"
    secret.write_text("root:$6$hash:19000::::::\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "model_float32.tflite").write_text("not yours")
    tflite = export_dir / "tflite"
    # `ln -s /etc/shadow EXP/tflite/model_float16.tflite`, and a link that stays inside.
    os.symlink(secret, tflite / "model_float16.tflite")
    os.symlink("model_float32.tflite", tflite / "model_dynamic.tflite")
    os.symlink(secret, export_dir / "labels.txt.tmp")
    os.replace(export_dir / "labels.txt.tmp", export_dir / "labels.txt")
    with Running(export_dir) as demo:
        assert demo.info["modes"] == ["dynamic", "float32"]  # the escaping link is not even offered
        assert demo.get("/export/tflite/model_float16.tflite")[0] == 404
        assert demo.get("/export/labels.txt")[0] == 404
        status, body = demo.get("/export/tflite/model_dynamic.tflite")
        assert status == 200 and body == (tflite / "model_float32.tflite").read_bytes()
        # Checked at each request: a file swapped for a link after start is refused too.
        (tflite / "model_float32.tflite").rename(tmp_path / "model.bak")
        os.symlink(secret, tflite / "model_float32.tflite")
        assert demo.get("/export/tflite/model_float32.tflite")[0] == 404
        # So is a linked folder, and a FIFO (which would hang a plain open()).
        os.unlink(tflite / "model_float32.tflite")
        tflite.rename(tmp_path / "tflite.bak")
        os.symlink(outside, tflite)
        assert demo.get("/export/tflite/model_float32.tflite")[0] == 404
        os.unlink(tflite)
        tflite.mkdir()
        os.mkfifo(tflite / "model_float32.tflite")
        start = time.monotonic()
        assert demo.get("/export/tflite/model_float32.tflite", timeout=5)[0] == 404
        assert time.monotonic() - start < 2
        assert demo.get("/export/vocab.txt")[0] == 200


def test_idle_plain_sockets_do_not_block_requests(export):
    with Running(export) as demo:
        idle = demo.idle_sockets(50)
        try:
            start = time.monotonic()
            status, body = demo.get("/export/tflite/model_float32.tflite")
            took = time.monotonic() - start
            print(f"\nhttp GET of the 1 MB .tflite with 50 idle sockets open: {took * 1000:.0f} ms")
            assert status == 200 and len(body) == MODEL_BYTES
            assert took < 2
        finally:
            for s in idle:
                s.close()


def test_idle_tls_sockets_do_not_block_https(export, cert):
    """Before: the TLS handshake ran on the accepting thread without a timeout, so
    one connection that never sent a ClientHello stopped every https client."""
    certfile, keyfile = cert
    with Running(export, certfile=certfile, keyfile=keyfile) as demo:
        idle = demo.idle_sockets(50)
        try:
            start = time.monotonic()
            results = [demo.get(path, timeout=5) for path in ("/", "/export/tflite/model_float32.tflite")]
            took = time.monotonic() - start
            print(f"\nhttps GET of / and the .tflite with 50 idle TCP sockets open: {took * 1000:.0f} ms")
            assert [status for status, _ in results] == [200, 200] and len(results[1][1]) == MODEL_BYTES
            assert took < 2
        finally:
            for s in idle:
                s.close()


def test_slow_tls_client_and_idle_keep_alive_are_dropped(export, cert):
    certfile, keyfile = cert
    with Running(export, certfile=certfile, keyfile=keyfile, timeout=1.0) as demo:
        silent = demo.idle_sockets(1)[0]  # connects, never says hello
        dropped = closed_after(silent, limit=5)
        silent.close()
        print(f"\nslow TLS client (no ClientHello) dropped after {dropped:.2f} s (timeout 1 s)")
        assert dropped is not None and 0.8 < dropped < 3
        # One that trickles its hello a byte at a time, each within the silence timeout.
        trickle = demo.idle_sockets(1)[0]
        start, dropped = time.monotonic(), None
        try:
            for byte in b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40):
                trickle.sendall(bytes([byte]))
                time.sleep(0.25)
        except (BrokenPipeError, ConnectionResetError):
            dropped = time.monotonic() - start
        if dropped is None:
            dropped = closed_after(trickle, limit=0.1)
        trickle.close()
        print(f"TLS client trickling its hello (a byte / 0.25 s) dropped after {dropped:.2f} s")
        assert dropped is not None and 0.8 < dropped < 3
        # A client that completes the handshake but never sends a request.
        raw = demo.idle_sockets(1)[0]
        tls = ssl.create_default_context(cafile=certfile).wrap_socket(raw, server_hostname="localhost")
        dropped = closed_after(tls, limit=5)
        tls.close()
        assert dropped is not None and 0.8 < dropped < 3
    with Running(export, timeout=1.0) as demo:
        # Keep-alive: one request answered, then the idle connection is closed.
        sock = demo.idle_sockets(1)[0]
        sock.sendall(b"GET /export/vocab.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        start = time.monotonic()
        sock.settimeout(5)
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        sock.close()
        assert data.startswith(b"HTTP/1.1 200") and b"[MASK]" in data
        assert 0.8 < time.monotonic() - start < 3


def test_connections_beyond_the_limit_wait_then_get_503(export):
    with Running(export, max_connections=4, queue_timeout=0.3) as demo:
        idle = demo.idle_sockets(4)
        start = time.monotonic()
        status, _ = demo.get("/export/vocab.txt", timeout=5)
        took = time.monotonic() - start
        assert status == 503 and 0.25 < took < 2
        for s in idle:
            s.close()
        time.sleep(0.1)  # the freed slots' threads finish
        assert demo.get("/export/vocab.txt", timeout=5)[0] == 200
        # A connection that waited in the queue is served once a slot frees up.
        idle = demo.idle_sockets(4)
        threading.Timer(0.1, lambda: [s.close() for s in idle]).start()
        assert demo.get("/export/vocab.txt", timeout=5)[0] == 200


def test_200_concurrent_downloads_all_succeed(export):
    expected = (export / "tflite" / "model_float32.tflite").read_bytes()
    with Running(export) as demo:  # default limits: 64 connections at once, the rest queue
        results = [None] * 200
        barrier = threading.Barrier(len(results))

        def download(i):
            barrier.wait()
            start = time.monotonic()
            try:
                status, body = demo.get("/export/tflite/model_float32.tflite", timeout=20)
                results[i] = (status == 200 and body == expected, time.monotonic() - start)
            except OSError as e:
                results[i] = (e, time.monotonic() - start)

        threads = [threading.Thread(target=download, args=(i,)) for i in range(len(results))]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        total = time.monotonic() - start
    failed = [r for r in results if r is None or r[0] is not True]
    slowest = max(r[1] for r in results if r)
    print(f"\n200 concurrent downloads of a {MODEL_BYTES >> 20} MB .tflite: all done in {total:.2f} s, "
          f"slowest {slowest:.2f} s")
    assert not failed, failed[:3]
    assert total < 20


def test_cli_listens_on_loopback_by_default(export):
    """`kbert demo EXP` prints a 127.0.0.1 URL and cannot be reached from the LAN."""
    from kbert.demo.server import lan_address

    child = subprocess.Popen([sys.executable, "-m", "kbert.cli", "demo", str(export), "--port", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = child.stdout.readline()
        second = child.stdout.readline()
        assert " at http://127.0.0.1:" in first, first
        assert "--host 0.0.0.0" in second, second
        port = int(first.rsplit(":", 1)[1].strip().rstrip("/"))
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        lan = lan_address()
        if lan and not lan.startswith("127."):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((lan, port), timeout=5).close()
    finally:
        child.terminate()
        child.wait(10)


def test_wasm_is_served_gzipped_or_plain_as_the_client_asks(export):
    """The package ships X.wasm.gz; a request for X.wasm gets it gzip-coded when
    Accept-Encoding allows, else decompressed, with the right Content-Length both ways."""
    with open(os.path.join(WEB_DIR, "litert", "wasm", "litert_wasm_internal.wasm.gz"), "rb") as f:
        stored = f.read()
    original = gzip.decompress(stored)
    assert original[:4] == b"\0asm" and len(stored) < len(original) / 2
    path = "/litert/wasm/litert_wasm_internal.wasm"
    with Running(export) as demo:
        # One keep-alive connection for all: a wrong Content-Length would break the next response.
        connection = http.client.HTTPConnection("127.0.0.1", demo.port, timeout=10)
        try:
            for accept in ("gzip, deflate, br, zstd", "br;q=1, gzip;q=0.5", "*"):
                status, headers, body = demo.request(path, {"Accept-Encoding": accept}, connection=connection)
                assert status == 200 and headers["Content-Encoding"] == "gzip", accept
                assert headers["Content-Type"] == "application/wasm" and headers["Vary"] == "Accept-Encoding"
                assert int(headers["Content-Length"]) == len(body) == len(stored)
                assert gzip.decompress(body) == original
            for accept in (None, "identity", "gzip;q=0, br", "deflate"):
                status, headers, body = demo.request(path, {"Accept-Encoding": accept} if accept else {},
                                                     connection=connection)
                assert status == 200 and "Content-Encoding" not in headers, accept
                assert headers["Content-Type"] == "application/wasm" and headers["Vary"] == "Accept-Encoding"
                assert int(headers["Content-Length"]) == len(body) == len(original)
                assert body == original, accept
            status, headers, body = demo.request(path, method="HEAD", connection=connection)
            assert status == 200 and body == b"" and int(headers["Content-Length"]) == len(original)
            status, headers, _ = demo.request(path, {"If-Modified-Since": headers["Last-Modified"]},
                                              connection=connection)
            assert status == 304
        finally:
            connection.close()
        # The gzipped file itself is no URL of its own.
        assert demo.request(path + ".gz")[0] == 404


def write_web(root, wasm):
    """A minimal web folder whose runtime is `wasm`, gzipped."""
    web = root / "web"
    for name in ("index.html", "litert/core/index.js", "litert/wasm-utils/index.js"):
        (web / name).parent.mkdir(parents=True, exist_ok=True)
        (web / name).write_text(f"// {name}\n")
    (web / "litert" / "wasm").mkdir()
    (web / "litert" / "wasm" / "litert_wasm_internal.wasm.gz").write_bytes(gzip.compress(wasm, mtime=0))
    return web


def test_gzipped_files_keep_the_servers_hardening(tmp_path):
    """Symlinks out of the web folder are refused for .gz files too; a damaged .gz is
    an error, not a wrong length; a .gz replaced while serving is re-measured."""
    export_dir = write_export(tmp_path / "exports")
    wasm = b"\0asm" + os.urandom(300_000)
    web = write_web(tmp_path, wasm)
    folder = web / "litert" / "wasm"
    secret = tmp_path / "secret.wasm.gz"
    secret.write_bytes(gzip.compress(b"not yours"))
    os.symlink(secret, folder / "leak.wasm.gz")
    (folder / "cut.wasm.gz").write_bytes(gzip.compress(wasm)[:-100])
    plain = {"Accept-Encoding": "identity"}
    with Running(export_dir, web_dir=str(web)) as demo:
        status, headers, body = demo.request("/litert/wasm/litert_wasm_internal.wasm", plain)
        assert status == 200 and body == wasm and int(headers["Content-Length"]) == len(wasm)
        for headers in (plain, {"Accept-Encoding": "gzip"}):
            assert demo.request("/litert/wasm/leak.wasm", headers)[0] == 404
        assert demo.request("/litert/wasm/cut.wasm", plain)[0] == 500
        # Replaced by a new build (a rename, as `update_litert.py` does): the new length and bytes.
        newer = b"\0asm" + os.urandom(123_456)
        (folder / "new.tmp").write_bytes(gzip.compress(newer))
        os.replace(folder / "new.tmp", folder / "litert_wasm_internal.wasm.gz")
        status, headers, body = demo.request("/litert/wasm/litert_wasm_internal.wasm", plain)
        assert status == 200 and body == newer and int(headers["Content-Length"]) == len(newer)
        # Swapped for a link out of the folder after start: refused at request time.
        os.replace(folder / "litert_wasm_internal.wasm.gz", tmp_path / "moved.wasm.gz")
        os.symlink(secret, folder / "litert_wasm_internal.wasm.gz")
        for headers in (plain, {"Accept-Encoding": "gzip"}):
            assert demo.request("/litert/wasm/litert_wasm_internal.wasm", headers)[0] == 404


@pytest.mark.parametrize("accept, expected", [
    ("gzip", True), ("gzip, deflate, br, zstd", True), ("GZIP;q=0.5", True), ("x-gzip", True),
    ("*", True), ("br, *;q=0.1", True), (None, False), ("", False), ("identity", False), ("deflate, br", False),
    ("gzip;q=0", False), ("gzip;q=0.000, *", False), ("*;q=0", False), ("gzip;q=bogus", False),
])
def test_accept_encoding(accept, expected):
    assert accepts_gzip(accept) is expected


def test_gunzip_chunks_streams_every_member_and_rejects_damage():
    data = os.urandom(5000) + bytes(200_000)
    two_members = gzip.compress(data[:3000]) + gzip.compress(data[3000:])
    for stored in (gzip.compress(data), two_members):
        chunks = list(gunzip_chunks(io.BytesIO(stored), chunk=4096))
        assert b"".join(chunks) == data and max(map(len, chunks)) <= 4096
    for damaged in (b"", b"not gzip", gzip.compress(data)[:-4], gzip.compress(data)[:500],
                    gzip.compress(data) + b"junk"):
        with pytest.raises(zlib.error):
            b"".join(gunzip_chunks(io.BytesIO(damaged), chunk=4096))
