"""The model-backed generator against a small local OpenAI-compatible server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.phases.fix.llm import ModelGenerator, apply_diff, extract_diff, prompt, request
from tests.agent.phases.fix_kit import work

SOURCE = "def area(w, h):\n    return w + h\n"
REPLY = (
    "Here is the fix:\n```diff\n--- a/shapes.py\n+++ b/shapes.py\n@@ -1,2 +1,2 @@\n"
    " def area(w, h):\n-    return w + h\n+    return w * h\n```\n"
)


class _Chat(BaseHTTPRequestHandler):
    requests: list[dict[str, object]] = []
    reply = REPLY

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, **body})
        data = json.dumps(
            {"choices": [{"message": {"role": "assistant", "content": type(self).reply}}]}
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Chat.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Chat)
    thread = threading.Thread(target=httpd.serve_forever, name="fake-llm", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_request_posts_a_chat_completion_and_returns_the_text(server: str) -> None:
    w = work({"shapes.py": SOURCE}, (("shapes.py", 2),))
    text = request(server, "tiny-model", prompt(w), timeout_s=5)
    assert text == REPLY
    (sent,) = _Chat.requests
    assert sent["path"] == "/v1/chat/completions" and sent["model"] == "tiny-model"
    messages = sent["messages"]
    assert isinstance(messages, list) and "return w + h" in messages[-1]["content"]


def test_the_reply_becomes_an_ordinary_candidate(server: str) -> None:
    w = work({"shapes.py": SOURCE}, (("shapes.py", 2),))
    reply = request(server, "m", prompt(w), timeout_s=5)
    from dataclasses import replace

    (cand,) = ModelGenerator().propose(replace(w, llm_reply=reply))
    assert cand.strategy == "llm" and cand.edits == {"shapes.py": SOURCE.replace("+ h", "* h")}


def test_unreachable_server_gives_no_reply() -> None:
    assert request("http://127.0.0.1:9/v1", "m", "hi", timeout_s=1) == ""


def test_garbage_and_non_matching_diffs_give_no_candidate() -> None:
    assert extract_diff("I cannot help with that.") == ""
    wrong = REPLY.replace("return w + h", "return w - h")
    assert apply_diff({"shapes.py": SOURCE}, extract_diff(wrong)) is None
    assert list(ModelGenerator().propose(work({"shapes.py": SOURCE}, llm_reply="no diff"))) == []
