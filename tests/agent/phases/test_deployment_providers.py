"""Provider selection and the command lines and URLs the providers use (pure parts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.phases.deployment.providers import (
    DeliveryError,
    GitHubCLI,
    GitHubREST,
    GitLabCLI,
    PullRequestSpec,
    choose_provider,
    repository_from_url,
)
from tests.agent.phases.delivery_kit import config

SPEC = PullRequestSpec(title="t", body="b", head="selfheal/x-1", base="main")


@pytest.mark.parametrize(
    ("url", "repo"),
    [
        ("git@github.com:acme/app.git", "acme/app"),
        ("https://github.com/acme/app", "acme/app"),
        ("ssh://git@ghe.example/acme/app.git", "acme/app"),
        ("/srv/git/app.git", ""),
        ("file:///srv/git/app.git", ""),
        ("", ""),
    ],
)
def test_repository_from_remote_url(url: str, repo: str) -> None:
    assert repository_from_url(url) == repo


def test_cli_command_lines() -> None:
    assert GitHubCLI().argv(SPEC) == [
        "gh",
        "pr",
        "create",
        "--base",
        "main",
        "--head",
        "selfheal/x-1",
        "--title",
        "t",
        "--body-file",
        "-",
    ]
    assert GitLabCLI().argv(SPEC)[:7] == [
        "glab",
        "mr",
        "create",
        "--source-branch",
        "selfheal/x-1",
        "--target-branch",
        "main",
    ]


def test_rest_request_shape() -> None:
    req = GitHubREST("https://ghe.example/api/v3/", "acme/app", "tok").request(SPEC)
    assert req.full_url == "https://ghe.example/api/v3/repos/acme/app/pulls"
    assert req.get_method() == "POST" and req.get_header("Authorization") == "Bearer tok"


def test_choice_needs_a_token_and_a_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("SELFHEAL_GITHUB_TOKEN", "GITHUB_TOKEN", "GH_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    cfg = config(tmp_path, pr_provider="github")
    with pytest.raises(DeliveryError, match="needs a token"):
        choose_provider(cfg, "https://github.com/acme/app")
    monkeypatch.setenv("GH_TOKEN", "t")
    with pytest.raises(DeliveryError, match="set github_repo"):
        choose_provider(cfg, "/srv/git/app.git")
    chosen = choose_provider(cfg, "git@github.com:acme/app.git")
    assert isinstance(chosen, GitHubREST) and chosen.repository == "acme/app"
    assert isinstance(choose_provider(config(tmp_path, pr_provider="glab"), ""), GitLabCLI)
