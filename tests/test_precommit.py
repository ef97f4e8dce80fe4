"""The published hook, proven with pre-commit itself on a throwaway git repository."""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from conftest import EXAMPLES, ROOT

# git and pre-commit in subprocesses
pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("git") is None, reason="needs git")]


def run(cmd, cwd, env=None, check=True):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def user_repo(tmp_path_factory):
    """A user's repository using the `mulint` hook from this project at its current commit."""
    rev = run(["git", "rev-parse", "HEAD"], ROOT).stdout.strip()
    if run(["git", "status", "--porcelain", "--untracked-files=no"], ROOT).stdout.strip():
        pytest.skip("the hook is installed from a commit: commit the working tree first")
    repo = tmp_path_factory.mktemp("user")
    run(["git", "init", "-q"], repo)
    (repo / ".pre-commit-config.yaml").write_text(
        textwrap.dedent(f"""
        repos:
          - repo: {ROOT}
            rev: {rev}
            hooks:
              - id: mulint
                additional_dependencies: ["torch=={_torch_version()}"]
    """)
    )
    (repo / "util.py").write_text("def add(a, b):\n    return a + b\n")
    (repo / "model.py").write_text((EXAMPLES / "nanogpt_sp.py").read_text())
    marker = repo / "TRAINED"
    (repo / "train.py").write_text(
        textwrap.dedent(f"""
        import torch
        from model import GPT, GPTConfig

        open({str(marker)!r}, "w").write("the training script ran")
        model = GPT(GPTConfig())
        optimizer = model.configure_optimizers(0.1, 6e-4, (0.9, 0.95), "cpu")
        for step in range(3):
            for group in optimizer.param_groups:
                group["lr"] = 6e-4 * (step + 1) / 3
    """)
    )
    run(["git", "add", "-A"], repo)
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path_factory.mktemp("pre-commit-home"))}
    return repo, env, marker


def _torch_version():
    import torch

    return torch.__version__.split("+")[0]


def pre_commit(repo, env, *files):
    return run([sys.executable, "-m", "pre_commit", "run", "mulint", "--files", *files], repo, env, check=False)


def test_clean_utility_file_passes(user_repo):
    repo, env, marker = user_repo
    result = pre_commit(repo, env, "util.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Passed" in result.stdout


def test_sp_model_fails_with_mu_codes(user_repo):
    repo, env, marker = user_repo
    result = pre_commit(repo, env, "model.py")
    assert result.returncode == 1
    for code in ("MU101", "MU102", "MU201", "MU301"):
        assert code in result.stdout, result.stdout
    assert "model.py:" in result.stdout


def test_training_script_is_linted_but_never_executed(user_repo):
    repo, env, marker = user_repo
    result = pre_commit(repo, env, "train.py")
    assert result.returncode == 1 and "MU303" in result.stdout, result.stdout
    assert not marker.exists()
