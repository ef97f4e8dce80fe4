"""`--fix` handles files as a careful editor does: symlinks, read-only files, mode, owner and hard
links kept, the file's line endings, indentation and encoding followed, no lost update when two runs
fix one file at once, and never a partly written file."""

import fcntl
import os
import stat
import threading
import time
from pathlib import Path

import pytest
from test_fix import MU403_MODEL, TIED, _finding

from mulint.fix import annotate, plan_fixes
from mulint.fix.files import CHANGED, READ_ONLY, read_only

ATTENTION = """import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, d_model=64, n_head=4):
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(d_model, 3 * d_model)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, c // self.n_head).transpose(1, 3).unbind(2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return y.transpose(1, 2).flatten(2)
"""
SDPA_LINE = 14
OPTIMIZER_LINE = 13  # in TIED
HIDDEN = [
    {
        "names": ["mid.weight"],
        "lr_exponent": 0.0,
        "uses": [{"role": "hidden", "multiplier": 0.0, "target": -1.0, "k": 1}],
    }
]


def attention_finding(path, shift=0):
    return _finding(
        path,
        "MU201",
        {"kind": "attention-scale", "line": SDPA_LINE + shift, "form": "sdpa-default", "base_head_dim": 16},
        "safe",
    )


def optimizer_finding(path, shift=0):
    """MU301 on TIED's AdamW: inserts a table, a helper with a multi-line docstring, a wrapped call."""
    return _finding(
        path,
        "MU301",
        {
            "kind": "optimizer-lr",
            "line": OPTIMIZER_LINE + shift,
            "family": "adam",
            "cls": "AdamW",
            "base_width": 32,
            "width_knob": "width",
            "target": f"{path}:LM",
            "params": HIDDEN,
            "role": "hidden",
        },
    )


CASES = {"attention": (ATTENTION, attention_finding), "optimizer": (TIED.replace("Adam(", "AdamW("), optimizer_finding)}


def fix_file(path, make_finding):
    """Plan and write one finding's fix; the result, which must have fixed it."""
    finding = make_finding(path)
    result = plan_fixes([finding], unsafe=True)
    assert result.fixed == [finding], result.declined
    result.write()
    return result


def fixed_bytes(tmp_path, case):
    """What the fix makes of the plain (LF, 4-space) file."""
    source, make_finding = CASES[case]
    path = tmp_path / f"plain_{case}.py"
    path.write_text(source)
    fix_file(path, make_finding)
    return path.read_bytes()


def leftovers(directory, *names):
    return sorted(p.name for p in directory.iterdir() if p.name not in names)


# --- where and how the file is written -------------------------------------------------------------


def test_symlink_edits_the_target_and_stays_a_link(tmp_path):
    real = tmp_path / "src" / "model.py"
    real.parent.mkdir()
    real.write_text(ATTENTION)
    link = tmp_path / "model.py"
    link.symlink_to(real)
    result = plan_fixes([attention_finding(link)], unsafe=False, allowed={link})
    assert result.write() == [str(link)]
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert "scale=math.sqrt(16) / q.size(-1)" in real.read_text()
    assert leftovers(real.parent, "model.py") == []


def test_read_only_is_judged_by_the_mode_bits_as_well(tmp_path):
    """root may write anything; a file without a write bit is still read-only for mulint, as for an editor."""
    path = tmp_path / "model.py"
    path.write_text("x = 1\n")
    for mode, expected in ((0o644, False), (0o444, True), (0o400, True), (0o200, False)):
        path.chmod(mode)
        assert read_only(path) is expected, oct(mode)


def test_read_only_file_is_not_rewritten(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(ATTENTION)
    path.chmod(0o444)
    finding = attention_finding(path)
    result = plan_fixes([finding], unsafe=False)
    assert result.remaining == [finding] and result.declined[id(finding)] == READ_ONLY
    annotate([finding], result.declined)
    assert finding.message == "m (not fixed: the file is read-only)" and finding.fix is None
    assert result.write() == [] and path.read_text() == ATTENTION


def test_file_made_read_only_after_planning_keeps_its_finding(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(ATTENTION)
    finding = attention_finding(path)
    result = plan_fixes([finding], unsafe=False)
    path.chmod(0o444)
    assert result.write() == [] and path.read_text() == ATTENTION
    assert result.fixed == [] and result.remaining == [finding]
    assert finding.message.endswith("(not fixed: the file is read-only)")


def xattrs_supported(path) -> bool:
    try:
        os.setxattr(path, "user.probe", b"")
        os.removexattr(path, "user.probe")
    except (AttributeError, OSError):
        return False
    return True


def test_mode_owner_and_attributes_are_kept(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(ATTENTION)
    path.chmod(0o640)
    if os.geteuid() == 0:
        os.chown(path, 4242, 4343)
    attributes = xattrs_supported(path)
    if attributes:
        os.setxattr(path, "user.origin", b"kept")  # where an ACL or a security label would live
    before = path.stat()
    fix_file(path, attention_finding)
    after = path.stat()
    assert "scale=math.sqrt(16)" in path.read_text()
    assert not attributes or os.getxattr(path, "user.origin") == b"kept"
    assert stat.S_IMODE(after.st_mode) == 0o640
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert os.geteuid() != 0 or (after.st_uid, after.st_gid) == (4242, 4343)


def test_hard_links_stay_one_file(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(ATTENTION)
    other = tmp_path / "also_model.py"
    os.link(path, other)
    fix_file(path, attention_finding)
    assert os.path.samefile(path, other) and path.stat().st_nlink == 2
    assert "scale=math.sqrt(16)" in other.read_text()
    assert leftovers(tmp_path, "model.py", "also_model.py") == []  # no temporary or backup file left


def test_the_file_is_replaced_whole(tmp_path):
    """A reader that opened the file before the fix reads the whole old text; the name then holds the
    whole new text: there is no moment with a partly written file."""
    path = tmp_path / "model.py"
    path.write_text(ATTENTION)
    with open(path, "rb") as reader:
        fix_file(path, attention_finding)
        assert reader.read() == ATTENTION.encode()
    assert "scale=math.sqrt(16)" in path.read_text() and leftovers(tmp_path, "model.py") == []


# --- the file's own conventions --------------------------------------------------------------------


def indent_with_tabs(data: bytes) -> bytes:
    lines = []
    for line in data.split(b"\n"):
        spaces = len(line) - len(line.lstrip(b" "))
        lines.append(b"\t" * (spaces // 4) + line[spaces - spaces % 4 :])
    return b"\n".join(lines)


CONVENTIONS = {
    "crlf": lambda data: data.replace(b"\n", b"\r\n"),
    "cr": lambda data: data.replace(b"\n", b"\r"),
    "tabs": indent_with_tabs,
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
def test_inserted_code_follows_the_files_conventions(tmp_path, case, convention):
    """Byte for byte what the fix makes of the plain file, in the file's line ends or indentation
    (the optimizer fix inserts a table, a helper with a multi-line docstring and a wrapped call)."""
    source, make_finding = CASES[case]
    convert = CONVENTIONS[convention]
    path = tmp_path / "model.py"
    path.write_bytes(convert(source.encode()))
    fix_file(path, make_finding)
    data = path.read_bytes()
    assert data == convert(fixed_bytes(tmp_path, case))
    compile(data, str(path), "exec")


def test_a_wrapped_argument_aligns_with_spaces_after_the_tabs(tmp_path):
    long_call = "y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=True)"
    path = tmp_path / "model.py"
    path.write_text(
        indent_with_tabs(
            ATTENTION.replace("y = F.scaled_dot_product_attention(q, k, v, is_causal=True)", long_call).encode()
        ).decode()
    )
    fix_file(path, attention_finding)
    lines = path.read_text().split("\n")
    at = next(i for i, line in enumerate(lines) if "scaled_dot_product_attention(" in line)
    first_argument = lines[at].index("(") + 1
    assert lines[at + 1] == "\t\t" + " " * (first_argument - 2) + "scale=math.sqrt(16) / q.size(-1))"


@pytest.mark.parametrize("case", sorted(CASES))
def test_ascii_file_gets_ascii_comments(tmp_path, case):
    source, make_finding = CASES[case]
    path = tmp_path / "model.py"
    path.write_bytes(b"# coding: ascii\n" + source.encode())
    fix_file(path, lambda p: make_finding(p, shift=1))
    data = path.read_bytes()
    text = data.decode("ascii")  # still pure ASCII
    assert "# muP: " in text and data != b"# coding: ascii\n" + source.encode()
    compile(data, str(path), "exec")


def test_a_file_libcst_would_not_give_back_unchanged_is_left_alone(tmp_path):
    path = tmp_path / "model.py"
    data = ATTENTION.encode() + b"\n\r"  # mixed line ends at the end: libcst would drop the CR
    path.write_bytes(data)
    finding = attention_finding(path)
    result = plan_fixes([finding], unsafe=False)
    assert "does not survive parsing unchanged" in result.declined[id(finding)]
    assert result.write() == [] and path.read_bytes() == data


# --- two runs at once ------------------------------------------------------------------------------


def test_two_runs_at_once_apply_the_fix_once(tmp_path):
    """Both runs planned from the original text; they write at the same time."""
    path = tmp_path / "model.py"
    path.write_text(ATTENTION)
    runs = [plan_fixes([attention_finding(path)], unsafe=False) for _ in range(2)]
    start = threading.Barrier(2)
    written = []

    def write(result):
        start.wait()
        written.append(result.write())

    threads = [threading.Thread(target=write, args=(r,)) for r in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(written) == [[], [str(path)]]
    assert path.read_bytes() == fixed_bytes(tmp_path, "attention")
    assert all(len(r.fixed) == 1 for r in runs)  # the second found the file already fixed


@pytest.mark.slow
def test_two_processes_at_once_apply_the_fix_once(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(ATTENTION)
    runs = [plan_fixes([attention_finding(path)], unsafe=False) for _ in range(2)]
    go = tmp_path / "go"

    def child():
        while not go.exists():  # both start writing together
            time.sleep(0.001)
        return runs[0].write()

    written = []
    written.append(forked(child, meanwhile=lambda: (go.touch(), written.append(runs[1].write()))))
    assert sorted(written) == [[], [str(path)]]
    assert path.read_bytes() == fixed_bytes(tmp_path, "attention")


def test_a_run_waits_for_the_lock_and_then_sees_the_other_change(tmp_path):
    """While another process holds the file's lock it changes the file; the waiting run re-reads it
    after the lock is released and keeps its finding instead of overwriting that change."""
    path = tmp_path / "model.py"
    path.write_text(ATTENTION)
    finding = attention_finding(path)
    result = plan_fixes([finding], unsafe=False)
    edited = ATTENTION.replace("n_head=4", "n_head=8")
    holder = os.open(path, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    thread = threading.Thread(target=result.write)
    thread.start()
    time.sleep(0.2)
    assert thread.is_alive()  # waiting for the lock
    path.write_text(edited)
    os.close(holder)
    thread.join(timeout=10)
    assert path.read_text() == edited
    assert result.fixed == [] and result.remaining == [finding] and result.declined[id(finding)] == CHANGED
    assert finding.message.endswith(f"(not fixed: {CHANGED})")


def test_a_lock_held_too_long_leaves_the_file_alone(tmp_path, monkeypatch):
    from mulint.fix import files

    monkeypatch.setattr(files, "LOCK_WAIT", 0.1)
    path = tmp_path / "model.py"
    path.write_text(ATTENTION)
    finding = attention_finding(path)
    result = plan_fixes([finding], unsafe=False)
    holder = os.open(path, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        assert result.write() == []
    finally:
        os.close(holder)
    assert path.read_text() == ATTENTION and finding.message.endswith(f"(not fixed: {files.LOCKED})")


def test_runs_waiting_on_a_replaced_file_lock_the_new_one(tmp_path):
    """Two runs wait on the lock of the same file; the first replaces the file (a new inode); the second
    must not write from its lock on the old one, and finds the fix already made."""
    path = tmp_path / "model.py"
    path.write_text(ATTENTION)
    runs = [plan_fixes([attention_finding(path)], unsafe=False) for _ in range(2)]
    holder = os.open(path, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    written = []
    threads = [threading.Thread(target=lambda r=r: written.append(r.write())) for r in runs]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    os.close(holder)
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(written) == [[], [str(path)]]  # one wrote, the other found its fix made
    assert path.read_bytes() == fixed_bytes(tmp_path, "attention")
    assert leftovers(tmp_path, "model.py", "plain_attention.py") == []


def test_a_file_removed_since_planning_keeps_its_finding(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(ATTENTION)
    finding = attention_finding(path)
    result = plan_fixes([finding], unsafe=False)
    path.unlink()
    assert result.write() == [] and not path.exists() and result.declined[id(finding)] == CHANGED


# --- through the command line ----------------------------------------------------------------------


@pytest.mark.slow
def test_check_fix_through_a_symlink_and_on_a_read_only_file(tmp_path, mulint):
    source = MU403_MODEL.format(bias="")
    locked = tmp_path / "locked.py"
    locked.write_text(source)
    locked.chmod(0o444)
    real = tmp_path / "src" / "lm.py"
    real.parent.mkdir()
    real.write_text(source)
    link = tmp_path / "lm.py"
    link.symlink_to(real)
    code, out, _ = mulint("check", str(locked), str(link), "--select", "MU403", "--fix")
    assert code == 1 and "(not fixed: the file is read-only)" in out and "(1 fixed, 1 remaining)" in out, out
    assert locked.read_text() == source
    assert link.is_symlink() and "MuSharedReadout(self.emb.weight, bias=False)" in real.read_text()


# --- as a normal user ------------------------------------------------------------------------------


def forked(work, uid: int | None = None, meanwhile=lambda: None):
    """`work()` in a forked child process, as `uid` when given (the interpreter under /root is out of
    that user's reach, so no new interpreter is started), while this process runs `meanwhile()`; the
    child's result, sent back as JSON."""
    import json

    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        code = 1
        try:
            os.close(read)
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            os.write(write, json.dumps(work()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    meanwhile()
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(data)


def fix_as_user(paths):
    results = []
    for path in paths:
        finding = attention_finding(path)
        result = plan_fixes([finding], unsafe=False)
        result.write()
        results.append([read_only(path), result.declined.get(id(finding))])
    return results


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_as_a_normal_user(tmp_path):
    """What os.access says for a normal user decides too; a file whose directory takes no new file, or
    whose group the user cannot give a new file, is written in place with its owner and mode."""
    import shutil
    import tempfile

    user = 65534
    top = Path(tempfile.mkdtemp(dir="/tmp"))  # pytest's own directory is root's alone
    top.chmod(0o755)
    closed, shared = top / "closed", top / "shared"
    closed.mkdir(mode=0o755)  # root's: no new file for the user
    shared.mkdir()
    shared.chmod(0o777)
    files = {
        "others.py": (closed, 0, 0o644),
        "in_closed.py": (closed, user, 0o644),
        "foreign_group.py": (shared, user, 0o664),
    }
    (tmp_path / "model.py").write_text(ATTENTION)
    fix_file(tmp_path / "model.py", attention_finding)  # loads, as root, what a fix imports lazily
    try:
        for name, (directory, owner, mode) in files.items():
            path = directory / name
            path.write_text(ATTENTION)
            os.chown(path, owner, 0)  # group root: the user cannot give it to a new file
            path.chmod(mode)
        results = forked(lambda: fix_as_user([d / n for n, (d, _, _) in files.items()]), user)
        assert results == [[True, READ_ONLY], [False, None], [False, None]]
        assert (closed / "others.py").read_text() == ATTENTION
        for name in ("in_closed.py", "foreign_group.py"):
            directory, owner, mode = files[name]
            info = (directory / name).stat()
            assert "scale=math.sqrt(16)" in (directory / name).read_text()
            assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (owner, 0, mode)
        assert leftovers(closed, "others.py", "in_closed.py") == [] and leftovers(shared, "foreign_group.py") == []
    finally:
        shutil.rmtree(top)
