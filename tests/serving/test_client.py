"""TF Serving REST requests and responses: builders, formatter, `kbert serve-request`.

No TensorFlow and no model here: the formatter is fed numpy arrays, and the
server is a stub HTTP handler.
"""

import http.server
import json
import math
import shlex
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import REPO
from kbert.cli import main
from kbert.errors import ConfigError, DataError
from kbert.serving.client import (ServingError, body_json, curl_command, ids_request, post, predict_request,
                                  predict_url, serving_response)
from kbert.serving.client import latest_version


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_predict_request_both_forms_and_pairs():
    assert predict_request(["a gripping film", "dull"]) == {
        "signature_name": "serving_default", "instances": [{"text": "a gripping film"}, {"text": "dull"}]}
    assert predict_request(["a gripping film", "dull"], form="inputs") == {
        "signature_name": "serving_default", "inputs": {"text": ["a gripping film", "dull"]}}
    body = predict_request(["Who won?"], ["Ann won."], form="instances")
    assert body["instances"] == [{"text": "Who won?", "text_pair": "Ann won."}]
    body = predict_request(["Who won?"], ["Ann won."], form="inputs")
    assert body["inputs"] == {"text": ["Who won?"], "text_pair": ["Ann won."]}
    with pytest.raises(DataError, match="2 texts but 1 text pairs"):
        predict_request(["a", "b"], ["c"])
    with pytest.raises(DataError, match="single string"):
        predict_request("a gripping film")
    with pytest.raises(DataError, match="no text"):
        predict_request([])
    with pytest.raises(ConfigError, match="form"):
        predict_request(["a"], form="rows")


def test_ids_request_pads_to_seq_len():
    body = ids_request([[2, 17, 3], np.array([2, 9, 8, 3])], seq_len=6)
    assert body["signature_name"] == "ids"
    assert body["instances"][0] == {"token_ids": [2, 17, 3, 0, 0, 0], "segment_ids": [0] * 6,
                                    "padding_mask": [1, 1, 1, 0, 0, 0]}
    columns = ids_request([[2, 17, 3], [2, 9, 8, 3]], segment_ids=[[0, 0, 0], [0, 0, 1, 1]], seq_len=5,
                          form="inputs")["inputs"]
    assert columns["segment_ids"] == [[0, 0, 0, 0, 0], [0, 0, 1, 1, 0]]
    assert columns["padding_mask"][1] == [1, 1, 1, 1, 0]
    with pytest.raises(DataError, match="row 0: 4 ids, expected at most 3"):
        ids_request([[2, 5, 6, 3]], seq_len=3)
    with pytest.raises(DataError, match="expected integers"):
        ids_request([[2, 1.5, 3]], seq_len=4)
    with pytest.raises(DataError, match="padding_mask: rows must have the lengths"):
        ids_request([[2, 3]], padding_mask=[[1]], seq_len=4)


def test_url_curl_and_body_json():
    assert predict_url("http://host:8501/", "sst2") == "http://host:8501/v1/models/sst2:predict"
    assert predict_url("http://h:8501", "sst2", 3) == "http://h:8501/v1/models/sst2/versions/3:predict"
    assert predict_url("http://h/v1/models/x:predict", "ignored") == "http://h/v1/models/x:predict"
    body = predict_request(["it's \"fine\" é"])
    words = shlex.split(curl_command("http://h:8501/v1/models/m:predict", body))
    assert words[:4] == ["curl", "-s", "-X", "POST"] and json.loads(words[words.index("-d") + 1]) == body
    text = body_json(ids_request([[2, 3]], seq_len=4, form="inputs"))
    assert json.loads(text)["inputs"]["token_ids"] == [[2, 3, 0, 0]]
    assert '      [2, 3, 0, 0]\n' in text  # one row a line


def test_serving_response_row_format():
    outputs = {"logits": np.array([[-0.5, 0.25], [1.0, np.nan]], np.float32),
               "labels": np.array([b"pos", "n\u00e9g\n".encode()], dtype=object),
               "label_ids": np.array([1, 0], np.int32)}
    text = serving_response(outputs, "instances")
    rows = json.loads(text)["predictions"]
    assert [sorted(r) for r in rows] == [["label_ids", "labels", "logits"]] * 2
    assert rows[0] == {"label_ids": 1, "labels": "pos", "logits": [-0.5, 0.25]}
    assert rows[1]["labels"] == "n\u00e9g\n" and rows[1]["logits"][0] == 1.0 and math.isnan(rows[1]["logits"][1])
    assert "NaN" in text and "n\u00e9g" in text  # unquoted NaN, UTF-8 kept as TF Serving writes them
    # One output: TF Serving drops its name; float32 in the fewest round-trip digits.
    one = serving_response({"logits": np.array([[0.1, 2.0], [3e-5, 1e6]], np.float32)})
    assert json.loads(one) == {"predictions": [[0.1, 2.0], [3e-5, 1e6]]}
    assert "0.1," in one and "0.10000000149" not in one
    with pytest.raises(ConfigError, match="same batch size"):
        serving_response({"a": np.zeros([2, 3]), "b": np.zeros([3])})


def test_serving_response_columnar_format_and_numbers():
    text = serving_response({"score": np.array([0.3, -np.inf], np.float32),
                             "token_bytes": np.array([b"\xff\x00"], dtype=object)}, "inputs")
    assert json.loads(text) == {"outputs": {"score": [0.3, -math.inf], "token_bytes": [{"b64": "/wA="}]}}
    assert "-Infinity" in text
    # float32 values keep exactly their float32 value; float64 ones their float64 value.
    single = json.loads(serving_response({"x": np.array([1 / 3], np.float32)}, "inputs"))["outputs"][0]
    assert np.float32(single) == np.float32(1 / 3) and len(repr(single)) < 12
    assert json.loads(serving_response({"x": np.array([1 / 3])}, "inputs"))["outputs"][0] == 1 / 3
    assert json.loads(serving_response({"ok": np.array([True])}, "inputs")) == {"outputs": [True]}


def test_cli_prints_request_json_and_curl():
    result = run("serve-request", "--text", "a gripping film", "--text", "dull", "--form", "inputs")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == predict_request(["a gripping film", "dull"], form="inputs")
    result = run("serve-request", "--text", "q", "--text-pair", "ctx", "--export", "exports/sst2/", "--curl")
    assert result.exit_code == 0, result.output
    words = shlex.split(result.output)
    assert "http://localhost:8501/v1/models/sst2:predict" in words
    assert json.loads(words[-1])["instances"] == [{"text": "q", "text_pair": "ctx"}]
    result = run("serve-request", "--text", "a", "--text", "b", "--text-pair", "c")
    assert result.exit_code == 2 and "one pair per text" in result.output


def test_cli_reads_texts_and_pairs_from_file(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("\ufeffWho won?\tAnn won the race.\n\nWhere?\tIn Oslo.\n", encoding="utf-8")
    result = run("serve-request", "--file", str(path))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["instances"] == [{"text": "Who won?", "text_pair": "Ann won the race."},
                                                      {"text": "Where?", "text_pair": "In Oslo."}]


@pytest.mark.parametrize("content, message", [
    (None, "texts.txt: file not found"),
    (b"", "texts.txt: file is empty"),
    (b"fine\n\xff\xfe bad\n", "texts.txt:2: not valid UTF-8"),
    (b"\n  \n", "texts.txt: only blank lines"),
    (b"a\tb\nno pair here\n", "texts.txt:2: no tab, unlike line 1"),
])
def test_cli_bad_file_is_one_line_exit_2(tmp_path, content, message):
    path = tmp_path / "texts.txt"
    if content is not None:
        path.write_bytes(content)
    result = run("serve-request", "--file", str(path))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output


class _Stub(http.server.BaseHTTPRequestHandler):
    """TF Serving's answers: a prediction, or its JSON error with HTTP 400."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/v1/models/sst2:predict":
            status, answer = 200, {"predictions": [{"labels": "pos", "text_seen": r["text"]}
                                                   for r in body["instances"]]}
        else:
            status, answer = 400, {"error": "Servable not found for request: Latest(nope)"}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_post_to_a_server_and_its_errors():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        result = run("serve-request", "--text", "good film", "--url", base, "--model", "sst2")
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == {"predictions": [{"labels": "pos", "text_seen": "good film"}]}
        with pytest.raises(ServingError, match="HTTP 400: Servable not found"):
            post(predict_url(base, "nope"), predict_request(["x"]))
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run("serve-request", "--text", "x", "--url", f"http://127.0.0.1:{port}", "--timeout", "5")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the model server" in lines[0]


def testlatest_version_is_picked_like_tf_serving(tmp_path):
    for version in ("1", "2", "10"):
        (tmp_path / "serving" / version).mkdir(parents=True)
        (tmp_path / "serving" / version / "saved_model.pb").write_bytes(b"")
    (tmp_path / "serving" / "11").mkdir()  # an unfinished version
    assert latest_version(tmp_path) == str(tmp_path / "serving" / "10")
    assert latest_version(tmp_path / "serving" / "2") == str(tmp_path / "serving" / "2")
    with pytest.raises(DataError, match="no SavedModel"):
        latest_version(tmp_path / "serving" / "11")


def test_request_builder_needs_no_tensorflow():
    script = ("import sys, kbert.serving.client, kbert.cli; "
              "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr


def test_cli_local_answers_like_tf_serving(tmp_path):
    """--local runs a SavedModel signature in-process (a stand-in model here:
    kbert's exports are covered by test_export.py)."""
    tf = pytest.importorskip("tensorflow")

    class Toy(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            n = tf.strings.length(text)
            return {"labels": tf.where(n > 3, "long", "short"), "score": tf.cast(n, tf.float32) / 4}

    toy = Toy()
    tf.saved_model.save(toy, str(tmp_path / "toy" / "serving" / "3"), signatures={"serving_default": toy.serve})
    result = run("serve-request", "--text", "good film", "--text", "ok", "--local", str(tmp_path / "toy"))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"predictions": [{"labels": "long", "score": 2.25},
                                                         {"labels": "short", "score": 0.5}]}
    result = run("serve-request", "--text", "ok", "--form", "inputs", "--local", str(tmp_path / "toy"))
    assert result.output.startswith('{\n    "outputs": {\n        "labels": [\n            "short"')
    result = run("serve-request", "--text", "q", "--text-pair", "c", "--local", str(tmp_path / "toy"))
    assert result.exit_code == 2 and "has unknown ['text_pair']" in result.output
