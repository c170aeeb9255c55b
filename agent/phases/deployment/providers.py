"""Pull/merge request providers behind one Protocol: GitHub CLI, GitHub REST API, GitLab CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent.config import Config
from agent.errors import SelfHealError

TOKEN_ENV = ("SELFHEAL_GITHUB_TOKEN", "GITHUB_TOKEN", "GH_TOKEN")


class DeliveryError(SelfHealError):
    """A proposal could not be pushed or opened with the provider."""


@dataclass(frozen=True)
class PullRequestSpec:
    title: str
    body: str
    head: str  # the proposal branch
    base: str  # the target branch


@dataclass(frozen=True)
class PullRequest:
    number: int | None
    url: str
    provider: str


class Provider(Protocol):
    @property
    def name(self) -> str: ...

    def open(self, repo: Path, spec: PullRequestSpec) -> PullRequest: ...


def _number(url: str) -> int | None:
    match = re.search(r"/(?:pull|merge_requests)/(\d+)", url)
    return int(match.group(1)) if match else None


def _run_cli(repo: Path, argv: list[str], stdin: str | None, timeout: float) -> str:
    try:
        proc = subprocess.run(
            argv,
            cwd=repo,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DeliveryError(f"{argv[0]} failed to run: {exc}") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        last = detail[-1] if detail else f"exit {proc.returncode}"
        raise DeliveryError(f"{' '.join(argv[:3])} failed: {last}")
    return proc.stdout


@dataclass(frozen=True)
class GitHubCLI:
    """`gh pr create`, authenticated however the user set gh up."""

    executable: str = "gh"
    timeout: float = 120.0
    name: str = "gh"

    def argv(self, spec: PullRequestSpec) -> list[str]:
        return [
            self.executable,
            "pr",
            "create",
            "--base",
            spec.base,
            "--head",
            spec.head,
            "--title",
            spec.title,
            "--body-file",
            "-",
        ]

    def open(self, repo: Path, spec: PullRequestSpec) -> PullRequest:
        out = _run_cli(repo, self.argv(spec), spec.body, self.timeout)
        url = next((w for w in out.split() if w.startswith("http")), out.strip())
        return PullRequest(_number(url), url, self.name)


@dataclass(frozen=True)
class GitLabCLI:
    """`glab mr create`, authenticated however the user set glab up."""

    executable: str = "glab"
    timeout: float = 120.0
    name: str = "glab"

    def argv(self, spec: PullRequestSpec) -> list[str]:
        return [
            self.executable,
            "mr",
            "create",
            "--source-branch",
            spec.head,
            "--target-branch",
            spec.base,
            "--title",
            spec.title,
            "--description",
            spec.body,
            "--yes",
        ]

    def open(self, repo: Path, spec: PullRequestSpec) -> PullRequest:
        out = _run_cli(repo, self.argv(spec), None, self.timeout)
        url = next((w for w in out.split() if w.startswith("http")), out.strip())
        return PullRequest(_number(url), url, self.name)


@dataclass(frozen=True)
class GitHubREST:
    """POST /repos/{owner}/{repo}/pulls at a configurable base URL (GitHub or Enterprise)."""

    api_url: str
    repository: str  # owner/name
    token: str
    timeout: float = 30.0
    name: str = "github"

    def request(self, spec: PullRequestSpec) -> urllib.request.Request:
        body = {"title": spec.title, "head": spec.head, "base": spec.base, "body": spec.body}
        return urllib.request.Request(
            f"{self.api_url.rstrip('/')}/repos/{self.repository}/pulls",
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "User-Agent": "pytest-selfheal",
                "X-GitHub-Api-Version": "2022-11-28",
            },
        )

    def open(self, repo: Path, spec: PullRequestSpec) -> PullRequest:
        try:
            with urllib.request.urlopen(self.request(spec), timeout=self.timeout) as resp:
                data = json.loads(resp.read().decode() or "{}")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:200]
            raise DeliveryError(f"GitHub API {exc.code} at {exc.url}: {detail}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise DeliveryError(f"GitHub API at {self.api_url} failed: {exc}") from None
        number = data.get("number") if isinstance(data, dict) else None
        url = data.get("html_url", "") if isinstance(data, dict) else ""
        return PullRequest(number if isinstance(number, int) else None, str(url), self.name)


def repository_from_url(url: str) -> str:
    """`owner/name` from an https/ssh or scp-like remote URL; '' for a local path."""
    url = url.strip()
    scp = re.fullmatch(r"[^@/\s]+@[^:/\s]+:(.+)", url)
    if scp:
        path = scp.group(1)
    elif "://" in url and not url.startswith("file://"):
        path = urllib.parse.urlparse(url).path
    else:
        return ""
    parts = [p for p in path.removesuffix("/").removesuffix(".git").split("/") if p]
    return "/".join(parts[-2:]) if len(parts) >= 2 else ""


def github_token() -> str:
    return next((os.environ[k] for k in TOKEN_ENV if os.environ.get(k)), "")


def choose_provider(config: Config, remote_url: str) -> Provider:
    """The configured provider, or for `auto`: glab for GitLab remotes, gh when installed,
    else the REST API when a token is set."""
    choice = config.pr_provider
    if choice == "auto":
        if "gitlab" in remote_url and shutil.which("glab"):
            choice = "glab"
        elif shutil.which("gh"):
            choice = "gh"
        elif github_token():
            choice = "github"
        else:
            raise DeliveryError(
                "no pull-request provider: install gh or glab, or set GITHUB_TOKEN "
                "(pr_provider in [tool.selfheal])"
            )
    if choice == "gh":
        return GitHubCLI()
    if choice == "glab":
        return GitLabCLI()
    return _rest(config, remote_url)


def _rest(config: Config, remote_url: str) -> GitHubREST:
    token = github_token()
    if not token:
        raise DeliveryError(f"pr_provider=github needs a token in one of {', '.join(TOKEN_ENV)}")
    repository = config.github_repo or repository_from_url(remote_url)
    if not repository:
        raise DeliveryError(
            f"cannot tell owner/name from remote URL {remote_url!r}; set github_repo"
        )
    return GitHubREST(config.github_api_url, repository, token)
