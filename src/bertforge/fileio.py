"""Files in and out: atomic writes (D5), text input with one rule for bad bytes, output paths checked
before the work.

- Writes go to a temporary file in the same folder, fsync, then rename: a crash mid-write leaves the
  previous file intact, never a half-written one.
- Text input is read strictly in one encoding (UTF-8 unless the user says otherwise; a UTF-8 BOM is
  skipped): a byte that is not valid there is refused with the file, line and byte offset
  (`open_text`, `read_text`, `decode_text`), never replaced or smuggled through as a surrogate.
- `check_output_file` / `check_output_dir` refuse an output path that cannot be written (a folder
  where a file goes or the reverse, a read-only or impossible place, an extension the writer does not
  produce) without creating anything, so a command fails before it works, not after.
"""
from __future__ import annotations

import codecs
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Optional

from bertforge.errors import BertforgeError


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed over `path` (os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        # mkstemp makes 0600 files; give the result the mode any tool would: the replaced file's, else
        # 0666 minus the user's umask (0644 with the usual 022).
        os.chmod(tmp_path, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def current_umask() -> int:
    """The process's umask, read without changing it where Linux tells it (/proc), else set and restored."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON to `path` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


# ---- text input -------------------------------------------------------------------------------------

def _utf8_sig(encoding: str) -> str:
    """UTF-8 input skips a byte-order mark (Windows editors write one)."""
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def bad_bytes_error(source: str, data_or_path: bytes | str | os.PathLike, encoding: str = "utf-8"
                    ) -> BertforgeError:
    """The error for text that is not valid `encoding`: where the first bad byte is (line, offset)."""
    dec = codecs.getincrementaldecoder(_utf8_sig(encoding))()
    offset, line, bad = 0, 1, None
    chunks = [data_or_path] if isinstance(data_or_path, bytes) else _chunks(Path(data_or_path))
    for chunk in chunks:
        pending = len(dec.getstate()[0])
        try:
            dec.decode(chunk)
        except UnicodeDecodeError as e:
            at = max(e.start - pending, 0)
            bad, offset, line = chunk[at], offset + at, line + chunk[:at].count(b"\n")
            break
        offset, line = offset + len(chunk), line + chunk.count(b"\n")
    what = (f"byte 0x{bad:02x} at offset {offset} (line {line})" if bad is not None
            else f"it ends inside a character (offset {offset - len(dec.getstate()[0])}, line {line})")
    return BertforgeError(f"{source} is not valid {codecs.lookup(encoding).name} text: {what}; convert it "
                          f"(e.g. iconv -f latin1 -t utf-8) or pass --encoding where the command has it")


def _chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk


@contextmanager
def open_text(path: str | os.PathLike, encoding: str = "utf-8", newline: Optional[str] = None) -> Iterator[IO[str]]:
    """`open(path)` for reading text strictly in `encoding`; a bad byte anywhere in the `with` block
    becomes a `BertforgeError` naming the file, the line and the byte offset."""
    with open(path, encoding=_utf8_sig(encoding), newline=newline) as f:
        try:
            yield f
        except UnicodeDecodeError:
            raise bad_bytes_error(str(path), path, encoding) from None


def read_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """The whole text of a file (see `open_text`)."""
    if Path(path).is_dir():
        raise BertforgeError(f"{path} is a folder: give a text file")
    with open_text(path, encoding) as f:
        return f.read()


def decode_text(data: bytes, source: str = "<stdin>", encoding: str = "utf-8") -> str:
    """Bytes (e.g. stdin's) as text (see `open_text`)."""
    try:
        return data.decode(_utf8_sig(encoding))
    except UnicodeDecodeError:
        raise bad_bytes_error(source, data, encoding) from None


# ---- output paths -----------------------------------------------------------------------------------

def _writable_place(path: Path, flag: str) -> None:
    """The nearest existing folder above `path` must be a folder we can write in (nothing is created)."""
    parent = path.parent
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise BertforgeError(f"{flag} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BertforgeError(f"{flag} {path}: cannot write in {parent} (permission denied)")


def check_output_file(path: str | os.PathLike, suffixes: Optional[Sequence[str]] = None, flag: str = "--out") -> Path:
    """Refuse, before any work, an output file that could not be written: a folder there, a file in the
    way of its folder, no permission, or an extension not in `suffixes` (e.g. (".png", ".svg"))."""
    path = Path(path)
    if path.is_dir():
        raise BertforgeError(f"{flag} {path} is a folder: give a file name")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise BertforgeError(f"{flag} {path}: cannot write {path.suffix or 'a file without extension'} here; "
                             f"use one of {', '.join(suffixes)}")
    if os.path.lexists(path) and not os.access(path, os.W_OK):
        raise BertforgeError(f"{flag} {path}: the file is read-only")
    _writable_place(path, flag)
    return path


def check_output_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Refuse, before any work, an output folder that could not be made or written (see `check_output_file`)."""
    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        raise BertforgeError(f"{flag} {path} is a file, not a folder: choose another output folder")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise BertforgeError(f"{flag} {path}: cannot write in this folder (permission denied)")
        return path
    _writable_place(path, flag)
    return path


def read_stdin(encoding: str = "utf-8") -> str:
    """All of stdin as text, decoded strictly (see `open_text`); a text stream without bytes (a test's
    StringIO) is taken as it is."""
    import sys

    buffer = getattr(sys.stdin, "buffer", None)
    return decode_text(buffer.read(), "<stdin>", encoding) if buffer is not None else sys.stdin.read()
