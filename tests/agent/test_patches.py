"""The patch safety policy: good diffs parse to their changed lines, hostile ones are refused."""

from __future__ import annotations

import pytest

from agent.errors import PatchError
from agent.patches import PatchPolicy, check_patch, check_path

GOOD = (
    "diff --git a/calc/ops.py b/calc/ops.py\n"
    "index f905fb9..717f7ed 100644\n"
    "--- a/calc/ops.py\n"
    "+++ b/calc/ops.py\n"
    "@@ -1,5 +1,6 @@\n"
    " def add(a, b):\n"
    "-    return a - b\n"
    "+    total = a + b\n"
    "+    return total\n"
    " \n"
    " \n"
    " def mul(a, b):\n"
)


def _file(path: str, body: str = "@@ -1 +1 @@\n-a\n+b\n", header: str = "") -> str:
    return f"diff --git a/{path} b/{path}\n{header}--- a/{path}\n+++ b/{path}\n{body}"


# (name, diff, words the one-line reason must contain)
HOSTILE: list[tuple[str, str, str]] = [
    ("traversal", _file("../outside.py"), "'..'"),
    ("deep-traversal", _file("pkg/../../etc/passwd"), "'..'"),
    ("absolute", "--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-a\n+b\n", "a/ or b/"),
    (
        "absolute-git",
        "diff --git a//etc/x b//etc/x\n--- a//etc/x\n+++ b//etc/x\n@@ -1 +1 @@\n-a\n+b\n",
        "absolute",
    ),
    ("git-hooks", _file(".git/hooks/pre-commit"), ".git"),
    ("git-config", _file(".git/config"), ".git"),
    ("nested-git", _file("vendor/.git/config"), ".git"),
    ("gitmodules", _file(".gitmodules"), ".gitmodules"),
    ("selfheal-store", _file(".selfheal/selfheal.db"), ".selfheal"),
    (
        "symlink-new",
        "diff --git a/link b/link\nnew file mode 120000\nindex 0000000..1111111\n--- /dev/null\n"
        "+++ b/link\n@@ -0,0 +1 @@\n+/etc/passwd\n\\ No newline at end of file\n",
        "symbolic link",
    ),
    (
        "submodule",
        "diff --git a/sub b/sub\nnew file mode 160000\nindex 0000000..1111111\n--- /dev/null\n"
        "+++ b/sub\n@@ -0,0 +1 @@\n+Subproject commit 1111111111111111111111111111111111111111\n",
        "submodule",
    ),
    (
        "mode-change",
        "diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n",
        "mode change",
    ),
    (
        "binary",
        "diff --git a/img.png b/img.png\nindex 1111111..2222222 100644\n"
        "GIT binary patch\nliteral 3\nKcmZ?wfB^sk0RR91\n",
        "not unified diff syntax",
    ),
    (
        "binary-files-differ",
        "diff --git a/a.bin b/a.bin\nindex 1111111..2222222 100644\n"
        "Binary files a/a.bin and b/a.bin differ\n",
        "not unified diff",
    ),
    ("nul-bytes", _file("x.py", "@@ -1 +1 @@\n-a\n+b\x00\n"), "NUL"),
    ("crlf", _file("x.py", "@@ -1 +1 @@\r\n-a\r\n+b\r\n"), "carriage return"),
    (
        "crlf-hidden-line",
        _file("x.py", "@@ -1 +1 @@\n-a\n+b\rimport os; os.system('x')\n"),
        "carriage return",
    ),
    ("ed-script", "1,3c\nimport os\n.\nw\n", "not unified diff syntax"),
    (
        "ed-style-diff",
        "2c2\n<     return a - b\n---\n>     return a + b\n",
        "not unified diff syntax",
    ),
    ("garbage", "this is not a patch at all\n", "not unified diff syntax"),
    ("empty", "\n\n", "empty"),
    ("headers-only", "--- a/x.py\n+++ b/x.py\n", "no hunks"),
    (
        "quoted-name",
        'diff --git "a/x\\ty.py" "b/x\\ty.py"\n'
        '--- "a/x\\ty.py"\n+++ "b/x\\ty.py"\n@@ -1 +1 @@\n-a\n+b\n',
        "quoted",
    ),
    (
        "control-char-name",
        "--- a/x\x1b[2J.py\n+++ b/x\x1b[2J.py\n@@ -1 +1 @@\n-a\n+b\n",
        "control characters",
    ),
    ("trailing-junk", GOOD + "rm -rf /\n", "outside any hunk"),
    ("miscounted-hunk", _file("x.py", "@@ -1,3 +1,3 @@\n-a\n+b\n"), "ends inside a hunk"),
    ("hunk-overflow", _file("x.py", "@@ -1 +1 @@\n-a\n+b\n+c\n"), "outside any hunk"),
    (
        "huge",
        _file(
            "x.py",
            "@@ -1 +1,5000 @@\n-a\n" + "+" + "x" * 60 + "\n" * 1 + ("+" + "y" * 60 + "\n") * 4999,
        ),
        "bytes, over the limit",
    ),
    (
        "rename-escape",
        "diff --git a/x.py b/x.py\nsimilarity index 100%\nrename from x.py\nrename to ../x.py\n",
        "'..'",
    ),
    ("backslash", _file("pkg\\..\\evil.py"), "backslash"),
    ("windows-drive", "--- a/C:/x.py\n+++ b/C:/x.py\n@@ -1 +1 @@\n-a\n+b\n", "absolute"),
    (
        "duplicate-file",
        GOOD + GOOD.split("\n", 1)[1].join(["diff --git a/calc/ops.py b/calc/ops.py\n", ""]),
        "appears twice",
    ),
    (
        "exec-new-file",
        "diff --git a/x.sh b/x.sh\nnew file mode 100755\nindex 0000000..1111111\n"
        "--- /dev/null\n+++ b/x.sh\n@@ -0,0 +1 @@\n+echo hi\n",
        "executable",
    ),
]


@pytest.mark.parametrize(("name", "diff", "reason"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_patch_is_refused_with_one_reason(name: str, diff: str, reason: str) -> None:
    with pytest.raises(PatchError) as info:
        check_patch(diff, PatchPolicy(max_bytes=100_000))
    message = str(info.value)
    assert reason in message
    assert "\n" not in message


def test_the_corpus_is_large_enough() -> None:
    assert len(HOSTILE) >= 15


def test_good_patch_yields_changed_lines_on_both_sides() -> None:
    checked = check_patch(GOOD)
    (change,) = checked.files
    assert change.path == change.source_path == "calc/ops.py"
    assert change.removed == (2,)
    assert change.added == (2, 3)
    assert checked.hunks == 1
    assert checked.paths == ("calc/ops.py",)


def test_pure_insertion_records_its_neighbours_as_anchors() -> None:
    diff = _file("m.py", "@@ -2,2 +2,3 @@\n x = 1\n+y = 2\n z = 3\n")
    (change,) = check_patch(diff).files
    assert change.removed == ()
    assert change.anchors == (2, 3)
    assert change.base_lines == frozenset({2, 3})


def test_limits_on_files_and_hunks() -> None:
    two = _file("a.py") + _file("b.py")
    with pytest.raises(PatchError, match="touches 2 files, over the limit of 1"):
        check_patch(two, PatchPolicy(max_files=1))
    hunks = _file("a.py", "@@ -1 +1 @@\n-a\n+b\n@@ -5 +5 @@\n-c\n+d\n")
    with pytest.raises(PatchError, match="2 hunks, over the limit of 1"):
        check_patch(hunks, PatchPolicy(max_hunks=1))


def test_allow_list_keeps_patches_inside_the_allowed_paths() -> None:
    policy = PatchPolicy(allow_paths=("src/", "docs/*.md"))
    check_patch(_file("src/pkg/m.py"), policy)
    check_patch(_file("docs/guide.md"), policy)
    with pytest.raises(PatchError, match="outside the allowed paths"):
        check_patch(_file("setup.py"), policy)
    with pytest.raises(PatchError, match="outside the allowed paths"):
        check_patch(_file("srcx/m.py"), policy)


def test_symlinks_of_the_base_tree_cannot_be_edited_or_written_through() -> None:
    with pytest.raises(PatchError, match="goes through symlink vendor"):
        check_patch(_file("vendor/x.py"), symlinks={"vendor"})
    with pytest.raises(PatchError, match="is a symbolic link"):
        check_patch(_file("link.py"), symlinks={"link.py"})


def test_new_and_deleted_regular_files_are_allowed() -> None:
    new = (
        "diff --git a/n.py b/n.py\nnew file mode 100644\nindex 0000000..1111111\n"
        "--- /dev/null\n+++ b/n.py\n@@ -0,0 +1 @@\n+x = 1\n"
    )
    (change,) = check_patch(new).files
    assert (change.path, change.source_path, change.added) == ("n.py", "", (1,))
    gone = (
        "diff --git a/o.py b/o.py\ndeleted file mode 100644\nindex 1111111..0000000\n"
        "--- a/o.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-x = 1\n"
    )
    (change,) = check_patch(gone).files
    assert (change.path, change.source_path, change.removed) == ("", "o.py", (1,))


@pytest.mark.parametrize("path", ["", "a//b.py", "./a.py", "~/x.py", "'x.py'"])
def test_check_path_refuses_odd_names(path: str) -> None:
    with pytest.raises(PatchError):
        check_path(path)
