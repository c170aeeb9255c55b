"""An optional model-backed generator for an OpenAI-compatible chat endpoint (off by default).

The request is made by the loadDiagnosis beat (it is I/O); this module builds the prompt, sends
it, and turns the reply's unified diff (read with unidiff) into an ordinary candidate.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator

from agent.phases.diagnosis.recommend import LLM
from agent.phases.fix.base import Candidate, FixWork
from agent.phases.fix.edits import replace_block
from agent.records import FixType

_FENCE = re.compile(r"```(?:diff|patch)?\s*\n(.*?)```", re.DOTALL)
MAX_CONTEXT_CHARS = 12_000


def prompt(work: FixWork) -> str:
    files = sorted({f for f, _ in work.suspicious[:5]} | {f.file for f in work.frames[-1:]})
    parts = [
        f"A regression was detected: {work.anomaly.description}",
        f"Failing/slow tests: {', '.join(work.anomaly.tests) or work.anomaly.subject}",
    ]
    if work.exception:
        parts.append(f"Exception: {work.exception}")
    if work.suspicious:
        top = ", ".join(f"{f}:{n}" for f, n in work.suspicious[:5])
        parts.append(f"Most suspicious lines (Ochiai): {top}")
    for file in files:
        text = work.sources.get(file, "")
        parts.append(f"--- {file} ---\n{text[:MAX_CONTEXT_CHARS]}")
    parts.append(
        "Reply with one minimal unified diff (git format, paths a/ and b/) that fixes the code; "
        "do not change tests."
    )
    return "\n\n".join(parts)


def request(url: str, model: str, text: str, timeout_s: float) -> str:
    """POST one chat completion and return the reply text; '' on any transport problem."""
    endpoint = url.rstrip("/")
    if not endpoint.endswith("/chat/completions"):
        endpoint += "/chat/completions"
    body = json.dumps(
        {
            "model": model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": "You repair Python code with minimal diffs."},
                {"role": "user", "content": text},
            ],
        }
    ).encode("utf-8")
    req = urllib.request.Request(
        endpoint, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=max(timeout_s, 1.0)) as resp:
            data = json.loads(resp.read().decode("utf-8"))
        content = data["choices"][0]["message"]["content"]
    except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError):
        return ""
    return content if isinstance(content, str) else ""


def extract_diff(reply: str) -> str:
    """The diff in a reply: the first fenced block that looks like one, else the bare text."""
    for block in _FENCE.findall(reply):
        if "@@" in block:
            return str(block)
    return reply if "@@" in reply else ""


def apply_diff(sources: dict[str, str], diff: str) -> dict[str, str | None] | None:
    """Apply a unified diff to in-memory texts by content (offsets tolerated); None if it does
    not fit or does not parse."""
    from unidiff.errors import UnidiffParseError
    from unidiff.patch import PatchSet

    try:
        patch = PatchSet(diff)
    except UnidiffParseError:
        return None
    texts: dict[str, str | None] = {}
    for pfile in patch:
        path = pfile.path
        if pfile.is_removed_file:
            texts[path] = None
            continue
        current = texts.get(path, sources.get(path, "" if pfile.is_added_file else None))
        if current is None:
            return None
        for hunk in pfile:
            old = [ln.value for ln in hunk if ln.is_context or ln.is_removed]
            new = [ln.value for ln in hunk if ln.is_context or ln.is_added]
            done = replace_block(current, old, new, hunk.source_start)
            if done is None:
                return None
            current = done[0]
        texts[path] = current
    return texts or None


class ModelGenerator:
    """Turns the model's reply (fetched by loadDiagnosis) into a candidate."""

    name = LLM
    fix_type = FixType.CODE

    def propose(self, work: FixWork) -> Iterator[Candidate]:
        diff = extract_diff(work.llm_reply)
        if not diff:
            return
        texts = apply_diff(dict(work.sources), diff)
        if texts:
            yield Candidate(self.name, self.fix_type, "model-written patch", texts, 0)
