"""The web demo (kbert/demo/web, tests in mobile_demo/web/test): JS tokenizer vs
kbert's, the page in headless chromium vs Python ai_edge_litert on a tiny export,
the vendored LiteRT.js runtime, and the `kbert demo` server's routes and errors
(its behaviour under load and attack: tests/reliability/test_demo_server.py).

The browser test needs node, `npm ci --prefix mobile_demo/web` (playwright-core) and
Debian's chromium (/usr/bin/chromium, or KBERT_DEMO_CHROMIUM); the tests that need
them skip with the reason otherwise. The server tests need none of them.
"""

import gzip
import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner

from conftest import REPO
from training.test_finetune import encoder_dir, sentiment_rows, write_tsv  # noqa: F401

WEB = os.path.join(REPO, "mobile_demo", "web")
NODE_MODULES = os.path.join(WEB, "node_modules")
PACKAGE_WEB = os.path.join(REPO, "kbert", "demo", "web")
CHROMIUM = os.environ.get("KBERT_DEMO_CHROMIUM", "/usr/bin/chromium")
SENTENCES = [
    "the movie was very good",
    "awful plot and a dull film",
    "Great, NICE film!",
    "the film was bad but the plot was fine",
    "",
]


def need_node(*packages):
    if shutil.which("node") is None:
        pytest.skip("node is not installed (the web demo's tests run with node >= 18)")
    for package in packages:
        if not os.path.isdir(os.path.join(NODE_MODULES, package)):
            pytest.skip(f"{package} is not installed: run `npm ci --prefix mobile_demo/web`")


def node_test(script, env=None, timeout=180):
    return subprocess.run(["node", "--test", script], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_js_tokenizer_matches_golden_ids():
    need_node()
    result = node_test(os.path.join(WEB, "test", "tokenizer.test.mjs"), timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    golden = json.load(open(os.path.join(REPO, "mobile_demo", "shared", "golden_tokens.json"), encoding="utf-8"))
    n = len(golden["cases"])
    assert f"tokenizer agreement: {n}/{n} golden cases" in result.stdout


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory, encoder_dir):  # noqa: F811
    from kbert.export import export
    from kbert.training.finetune import finetune

    directory = tmp_path_factory.mktemp("web")
    train = write_tsv(directory / "train.tsv", sentiment_rows(256, 0))
    dev = write_tsv(directory / "dev.tsv", sentiment_rows(64, 1))
    # No eval file: the last (most confident) epoch is kept, not the first perfect one.
    finetune("classify", encoder_dir, train, directory / "model", epochs=6, batch_size=16, lr=3e-3,
             seq_len=16, progress=False)
    out = directory / "tiny_sentiment"
    export(str(directory / "model"), out, formats=["tflite"], quantize=["float32"], eval=dev, latency_runs=1,
           progress=lambda m: None)
    return str(out)


def load_reference_module():
    spec = importlib.util.spec_from_file_location("web_reference", os.path.join(WEB, "test", "reference.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_browser_matches_python_litert(tiny_export, tmp_path):
    need_node("playwright-core")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no chromium at {CHROMIUM}: apt-get install chromium (or set KBERT_DEMO_CHROMIUM)")
    pytest.importorskip("ai_edge_litert")
    ref = load_reference_module().reference(tiny_export, SENTENCES, "float32")
    assert max(abs(p[0] - p[1]) for p in ref["probs"]) > 0.1  # a model that tells texts apart
    ref_path, result_path, shot = tmp_path / "ref.json", tmp_path / "result.json", tmp_path / "phone.png"
    ref_path.write_text(json.dumps(ref), encoding="utf-8")
    result = node_test(os.path.join(WEB, "test", "browser.test.mjs"), env={
        "KBERT_DEMO_EXPORT": tiny_export, "KBERT_DEMO_REFERENCE": str(ref_path),
        "KBERT_DEMO_SCREENSHOT": str(shot), "KBERT_DEMO_RESULT": str(result_path),
        "KBERT_DEMO_PYTHON": sys.executable, "KBERT_DEMO_CHROMIUM": CHROMIUM, "KBERT_DEMO_BENCH_RUNS": "5",
    })
    output = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, output
    figures = json.loads(result_path.read_text())
    assert [t["text"] for t in figures["texts"]] == SENTENCES, output
    assert figures["maxProbDiff"] is not None and figures["maxProbDiff"] <= 1e-5, output
    assert figures["info"]["seqLen"] == 16 and figures["info"]["labels"] == ["neg", "pos"]
    # Headless chromium on localhost is cross-origin isolated: the vendored threaded build loads.
    assert figures["info"]["runtime"] == "wasm, threads"
    assert figures["offline"] is True  # reloaded and classified with the server stopped
    # search.html (the embedders' page) sends a classifier export back to index.html.
    assert re.search(r"^ok \d+ - search\.html sends a classifier export", result.stdout, re.M), output
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (390 * 3, 844 * 3)  # phone viewport @3x


# --- The vendored LiteRT.js runtime (kbert/demo/web/litert) ---

def test_vendored_litert_is_what_the_page_loads():
    """The wheel ships every WebAssembly build the loader can pick for this page
    (not JSPI: app.js never asks for it), at the version package-lock.json pins."""
    litert = os.path.join(PACKAGE_WEB, "litert")
    with open(os.path.join(litert, "core", "index.js"), encoding="utf-8") as f:
        builds = set(re.findall(r'var WASM_JS_\w*FILE_NAME = "([\w.]+)"', f.read()))
    assert "litert_wasm_internal.js" in builds and "litert_wasm_compat_internal.js" in builds
    for name in builds - {"litert_wasm_jspi_internal.js"}:
        assert os.path.getsize(os.path.join(litert, "wasm", name)) > 1000, name
        # The WebAssembly ships gzipped (no file in git over 5 MB); `kbert demo` serves it at .wasm.
        gz = os.path.join(litert, "wasm", name[:-3] + ".wasm.gz")
        with gzip.open(gz, "rb") as f:
            assert f.read(4) == b"\0asm", gz
        assert not os.path.exists(gz[:-3]), gz[:-3]
    assert not os.path.exists(os.path.join(litert, "wasm", "litert_wasm_jspi_internal.wasm.gz"))
    for folder, _, names in os.walk(litert):
        for name in names:
            assert os.path.getsize(os.path.join(folder, name)) < 5_000_000, name
    with open(os.path.join(litert, "LICENSE"), encoding="utf-8") as f:
        assert "Apache License" in f.read(500)
    with open(os.path.join(WEB, "package-lock.json"), encoding="utf-8") as f:
        version = json.load(f)["packages"]["node_modules/@litertjs/core"]["version"]
    with open(os.path.join(litert, "README.md"), encoding="utf-8") as f:
        assert f"`@litertjs/core` {version} " in f.read()
    if os.path.isdir(os.path.join(NODE_MODULES, "@litertjs", "core")):
        # Byte for byte what `npm ci` installs (update_litert.py refreshes the copy).
        result = subprocess.run([sys.executable, os.path.join(WEB, "update_litert.py"), "--check"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


# --- `kbert demo`: the server's routes and errors (no node or browser needed) ---

def fake_web(tmp_path, with_runtime=True):
    web = tmp_path / "web"
    web.mkdir()
    for name in ("index.html", "app.js", "manifest.webmanifest", "sw.js"):
        (web / name).write_text(f"// {name}\n")
    if with_runtime:
        for folder, name in (("core", "index.js"), ("wasm-utils", "index.js"),
                             ("wasm", "litert_wasm_internal.wasm")):
            path = web / "litert" / folder
            path.mkdir(parents=True)
            (path / name).write_bytes(b"\0asm")
    return web


def fake_export(tmp_path, modes=("float32", "dynamic")):
    out = tmp_path / "exports" / "toy"
    (out / "tflite").mkdir(parents=True)
    (out / "model_card.json").write_text('{"task": "classify", "seq_len": 8, "lowercase": true}')
    (out / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    (out / "labels.txt").write_text("neg\npos\n")
    (out / "report.json").write_text("{}")
    for mode in modes:
        (out / "tflite" / f"model_{mode}.tflite").write_bytes(b"TFL3" + bytes(8))
    return out


def serve(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_demo_server_routes_and_mime_types(tmp_path):
    from kbert.demo.server import make_server

    server, info = make_server(str(fake_export(tmp_path)), "127.0.0.1", 0, web_dir=str(fake_web(tmp_path)))
    base = serve(server)

    def get(path):
        with urllib.request.urlopen(base + path, timeout=10) as r:
            return r.headers, r.read()

    try:
        assert info["modes"] == ["dynamic", "float32"] and info["mode"] == "float32"
        expect = {"/": "text/html", "/app.js": "text/javascript", "/manifest.webmanifest": "application/manifest+json",
                  "/litert/wasm/litert_wasm_internal.wasm": "application/wasm",
                  "/litert/core/index.js": "text/javascript", "/litert/wasm-utils/index.js": "text/javascript",
                  "/export/vocab.txt": "text/plain", "/export/model_card.json": "application/json",
                  "/export/tflite/model_dynamic.tflite": "application/octet-stream", "/demo.json": "application/json"}
        for path, ctype in expect.items():
            headers, body = get(path)
            assert headers["Content-Type"].startswith(ctype), path
            assert body, path
        headers, body = get("/demo.json")
        assert json.loads(body)["modes"] == ["dynamic", "float32"]
        assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        # Only the demo's files: nothing else of the export or the disk.
        for path in ("/export/report.json", "/../setup.cfg", "/export/../vocab.txt", "/node_modules/x",
                     "/export/tflite/model_int8.tflite", "/litert/../../exports/toy/vocab.txt"):
            with pytest.raises(urllib.error.HTTPError) as e:
                get(path)
            assert e.value.code == 404, path
        # Revalidation answers 304 for an unchanged file.
        headers, _ = get("/export/vocab.txt")
        request = urllib.request.Request(base + "/export/vocab.txt",
                                         headers={"If-Modified-Since": headers["Last-Modified"]})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(request, timeout=10)
        assert e.value.code == 304
    finally:
        server.shutdown()
        server.server_close()


def test_demo_modes_follow_the_model_card(tmp_path):
    from kbert.demo.server import make_server

    export = fake_export(tmp_path, modes=("int8", "dynamic", "float16"))
    card = {"task": "classify", "quantization": {"tflite_float16": "", "tflite_dynamic": "", "tflite_int8": ""}}
    (export / "model_card.json").write_text(json.dumps(card))
    server, info = make_server(str(export), "127.0.0.1", 0, web_dir=str(fake_web(tmp_path)))
    server.server_close()
    assert info == {"name": "toy", "modes": ["float16", "dynamic", "int8"], "mode": "float16"}


def test_demo_serves_the_packaged_page_and_runtime(tmp_path):
    """The page and the LiteRT.js files it loads come from the kbert package."""
    from kbert.demo.server import make_server

    server, _ = make_server(str(fake_export(tmp_path)), "127.0.0.1", 0)
    base = serve(server)
    try:
        for path in ("/", "/app.js", "/tokenizer.js", "/sw.js", "/icon-192.png", "/litert/core/index.js",
                     "/litert/wasm-utils/index.js", "/litert/wasm/litert_wasm_internal.js",
                     "/litert/wasm/litert_wasm_threaded_internal.wasm",
                     "/litert/wasm/litert_wasm_compat_internal.wasm"):
            with urllib.request.urlopen(base + path, timeout=10) as r:
                body = r.read()
            name = "index.html" if path == "/" else path[1:]
            # urllib asks for the identity coding: a .wasm comes decompressed from its .wasm.gz.
            opener = gzip.open if name.endswith(".wasm") else open
            with opener(os.path.join(PACKAGE_WEB, name + (".gz" if name.endswith(".wasm") else "")), "rb") as f:
                assert body == f.read(), path
        # Every file the service worker caches at install is served.
        with open(os.path.join(PACKAGE_WEB, "sw.js"), encoding="utf-8") as f:
            shell = re.search(r"const SHELL = \[(.*?)\];", f.read(), re.S).group(1)
        for name in re.findall(r"'([^']+)'", shell):
            with urllib.request.urlopen(f"{base}/{name.lstrip('./')}", timeout=10) as r:
                assert r.status == 200, name
    finally:
        server.shutdown()
        server.server_close()


def test_demo_command_errors(tmp_path, monkeypatch):
    import kbert.demo.server
    from kbert.cli import main

    def run(*args):
        return CliRunner().invoke(main, ["demo", *args])

    assert "demo" in main.commands
    cases = [
        ([str(tmp_path / "missing")], "no such export directory"),
        ([str(fake_export(tmp_path / "a", modes=()))], "no tflite/model_<mode>.tflite"),
        ([str(fake_export(tmp_path / "b", modes=("dynamic",))), "--mode", "int8"],
         "no tflite/model_int8.tflite (available: dynamic)"),
        ([str(fake_export(tmp_path / "c")), "--keyfile", str(tmp_path / "a" / "exports" / "toy" / "vocab.txt")],
         "--keyfile needs --certfile"),
        ([str(fake_export(tmp_path / "d")), "--certfile", str(tmp_path / "d" / "exports" / "toy" / "vocab.txt")],
         "vocab.txt: cannot load the certificate"),
    ]
    for args, message in cases:
        result = run(*args)
        assert result.exit_code == 2, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    # A damaged installation says so instead of serving a page that cannot load.
    monkeypatch.setattr(kbert.demo.server, "WEB_DIR", str(fake_web(tmp_path, with_runtime=False)))
    result = run(str(fake_export(tmp_path / "e")))
    assert result.exit_code == 2 and "litert/core/index.js: missing" in result.output, result.output
    assert "reinstall kbert" in result.output


def test_demo_help_says_how_to_reach_a_phone():
    from kbert.cli import main

    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0
    assert "default: 127.0.0.1" in result.output and "--host 0.0.0.0" in result.output
