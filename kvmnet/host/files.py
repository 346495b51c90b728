"""Private files in kvmnet's state dir: trusted only when kvmnet's user owns them, reached without
following a symlink, and written atomically (a reader, or a crash, sees the old content or the
new, never half of it).

kvmnet runs root's undo steps from these files, so a directory or file that another user could
have written is refused (UnsafeState, exit 2) before anything is read from it or changed in it.
Every access goes through a directory fd opened with O_NOFOLLOW, then `dir_fd=` relative to it,
so a symlink swapped in between a check and a use is never followed. Standard library only:
QEMU's hook reads the state dir on every guest start.
"""

from __future__ import annotations

import os
import stat

from ..errors import InputError, KvmnetError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
MAX_READ = 64 << 20  # a record of 1000 taps and forwards is well under 1 MiB


class UnsafeState(InputError):
    """A state dir, or something in it, that another user could have written: refused."""


class StateUnreadable(KvmnetError):
    """The state dir exists but this user may not read it (an unprivileged read-only verb)."""

    exit_code = 1


def _trusted_owner(uid: int) -> bool:
    return uid in (os.geteuid(), 0)


def _refuse(path: str, why: str) -> UnsafeState:
    return UnsafeState(f"{path}: {why}; kvmnet runs what its state dir records as root, so it trusts only "
                       f"a state dir (and files in it) owned by root or you, not writable by group or others, "
                       f"and no symlinks; refusing to use it (fix it, or pass another --state-dir)")


def check_private(st: os.stat_result, path: str, kind: str) -> None:
    """Raise UnsafeState unless `st` is a `kind` ("dir" or "file") owned by root or this user
    and writable by nobody else."""
    is_kind = stat.S_ISDIR if kind == "dir" else stat.S_ISREG
    if not is_kind(st.st_mode):
        raise _refuse(path, f"not a {'directory' if kind == 'dir' else 'regular file'}")
    if not _trusted_owner(st.st_uid):
        raise _refuse(path, f"owned by uid {st.st_uid}")
    if st.st_mode & 0o022:
        raise _refuse(path, f"writable by group or others (mode {stat.S_IMODE(st.st_mode):o})")


def _check_ancestors(real: str) -> None:
    """Every directory above the state dir must be owned by root or this user and, if others
    may write it, sticky (/tmp): otherwise someone could rename the state dir away under us."""
    path = real
    while True:
        st = os.stat(path)
        if not _trusted_owner(st.st_uid):
            raise _refuse(path, f"owned by uid {st.st_uid} (a directory above the state dir)")
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            raise _refuse(path, "writable by group or others and not sticky (a directory above the state dir)")
        if path == "/":
            return
        path = os.path.dirname(path)


def _check_links(parent: str) -> None:
    """A symlink on the way to the state dir (/var/run -> /run) is followed by every later use of
    the path as a string (dnsmasq's --conf-file, its conf's paths): it must be root's or this
    user's, in a directory only they could rename it in, or its owner could point it elsewhere
    between kvmnet's write and dnsmasq's read. So must every link its target passes through, as
    the kernel resolves them. (The directories it leads to: _check_ancestors.)"""
    path, todo, hops = "/", [p for p in parent.split("/") if p], 0
    while todo:
        link = os.path.join(path, todo.pop(0))
        try:
            st = os.lstat(link)
        except FileNotFoundError:
            return  # (made later, 0700, by this user)
        except NotADirectoryError:
            raise _refuse(path, "not a directory (above the state dir)") from None
        if not stat.S_ISLNK(st.st_mode):
            path = os.path.normpath(link)  # no link in it: ".." is textual here, as for the kernel
            continue
        hops += 1
        if hops > 40:  # the kernel's own limit (ELOOP)
            raise _refuse(parent, "too many levels of symlinks (above the state dir)")
        if not _trusted_owner(st.st_uid):
            raise _refuse(link, f"a symlink owned by uid {st.st_uid} (above the state dir)")
        holder = os.stat(path)
        if not _trusted_owner(holder.st_uid) or holder.st_mode & 0o022 and not holder.st_mode & stat.S_ISVTX:
            raise _refuse(link, "a symlink in a directory others may write (above the state dir)")
        target = os.readlink(link)
        todo[:0] = [p for p in target.split("/") if p]
        if target.startswith("/"):
            path = "/"


def _open_child_dir(parent_fd: int, name: str, path: str, create: bool) -> int | None:
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        if not create:
            return None
        try:
            os.mkdir(name, 0o700, dir_fd=parent_fd)
        except FileExistsError:
            pass
        return _open_child_dir(parent_fd, name, path, False)
    except NotADirectoryError:
        raise _refuse(path, "a symlink or not a directory") from None
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: the last component is a symlink
            raise _refuse(path, "a symlink") from None
        raise
    try:
        check_private(os.fstat(fd), path, "dir")
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_dir(path: str, create: bool = False) -> int | None:
    """An fd on directory `path` after checking it and every directory above it; None if it is
    missing (created 0700 first with `create`). The caller closes the fd."""
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    if not name:
        raise _refuse(path, "the root directory cannot be a state dir")
    real_parent = os.path.realpath(parent)  # root's symlinks above it (/var/run -> /run) are fine
    try:
        _check_links(parent)
        _check_ancestors(real_parent)
        parent_fd = os.open(real_parent, _DIR_FLAGS)
    except FileNotFoundError:
        if not create:
            return None
        os.makedirs(parent, mode=0o700, exist_ok=True)
        return open_dir(path, create)
    except PermissionError as exc:
        raise unreadable(path, exc) from None
    try:
        return _open_child_dir(parent_fd, name, path, create)
    except PermissionError as exc:
        raise unreadable(path, exc) from None
    finally:
        os.close(parent_fd)


def unreadable(path: str, exc: OSError) -> StateUnreadable:
    try:
        uid = os.stat(path).st_uid
        owner = "root" if uid == 0 else f"uid {uid}"
    except OSError:
        owner = "another user"
    return StateUnreadable(f"cannot read kvmnet's state: {path}: {exc.strerror or exc} (it belongs to {owner}); "
                           "run kvmnet as that user (sudo kvmnet ...), or pass a --state-dir you own")


def read_at(dir_fd: int, name: str, path: str, raw: bool = False) -> str | bytes | None:
    """The text (`raw`: the bytes) of file `name` in the checked directory `dir_fd` (None if missing)."""
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except PermissionError as exc:
        raise unreadable(path, exc) from None
    except OSError as exc:
        if exc.errno == 40:
            raise _refuse(path, "a symlink") from None
        raise
    with os.fdopen(fd, "rb") as f:
        check_private(os.fstat(fd), path, "file")
        data = f.read(MAX_READ + 1)
    if len(data) > MAX_READ:
        raise _refuse(path, f"larger than {MAX_READ} bytes")
    return data if raw else data.decode("utf-8", "replace")


def read_private(path: str, raw: bool = False) -> str | bytes | None:
    """The text (`raw`: the bytes) of a file in a checked directory (None if it or its
    directory is missing)."""
    dir_fd = open_dir(os.path.dirname(path) or ".")
    if dir_fd is None:
        return None
    try:
        return read_at(dir_fd, os.path.basename(path), path, raw)
    finally:
        os.close(dir_fd)


def write_private(path: str, text: str | bytes, durable: bool = False) -> None:
    """Write `text` (or bytes) to `path` as mode 0600 through a temp file and a rename, in a checked
    directory (created 0700 if missing); `durable` fsyncs first (the state record, which must
    survive a power cut before the step it covers runs)."""
    dir_fd = open_dir(os.path.dirname(path) or ".", create=True)
    name = os.path.basename(path)
    tmp = f"{name}.tmp.{os.getpid()}"
    try:
        try:
            os.unlink(tmp, dir_fd=dir_fd)  # our own pid's leftover (a recycled pid)
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=dir_fd)
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        if durable:
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def unlink_private(path: str) -> None:
    """Remove a file (never what a symlinked directory points at); fine if it is missing."""
    dir_fd = open_dir(os.path.dirname(path) or ".")
    if dir_fd is None:
        return
    try:
        os.unlink(os.path.basename(path), dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    finally:
        os.close(dir_fd)


def is_temp_name(name: str) -> bool:
    """`NAME.tmp.PID` (or `NAME.tmpPID`): what a writer killed mid-write leaves."""
    base, sep, pid = name.rpartition(".tmp")
    pid = pid[1:] if pid.startswith(".") else pid
    return bool(base and sep and pid.isdigit())


def remove_empty_dir(root: str, name: str) -> None:
    """Remove directory `name` of the checked directory `root` if it is empty; leave it (and a
    missing one) alone otherwise."""
    root_fd = open_dir(root)
    if root_fd is None:
        return
    try:
        os.rmdir(name, dir_fd=root_fd)
    except OSError:
        pass  # not empty, or already gone
    finally:
        os.close(root_fd)
