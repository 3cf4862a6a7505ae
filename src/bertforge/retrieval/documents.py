"""Find and read the documents of a folder: .txt/.md/.rst as text, .html with its markup blanked, .pdf
through pypdf (the optional `bertforge[pdf]` extra).

Nothing a folder holds makes indexing fail: a file that cannot be read (no permission, binary, not
UTF-8, over the size limit, a PDF without a text layer, ...) raises `Skip` with a one-line reason that
says what to do, and the walker steps over symlink loops and hidden folders (`.git`, the index itself).

Offsets: a document's text is the file as `open(path, encoding="utf-8-sig").read()` gives it
(universal newlines: CRLF and CR read as LF), so `passage.start/end` index that string. HTML keeps the
same length and lines as its source (see `html_to_text`), so line numbers point into the .html file.
"""
from __future__ import annotations

import hashlib
import html
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

__all__ = ["KINDS", "SourceFile", "Skip", "html_to_text", "read_document", "walk_folder"]

# extension -> how the file is read
KINDS = {".txt": "text", ".text": "text", ".md": "text", ".markdown": "text", ".rst": "text",
         ".html": "html", ".htm": "html", ".pdf": "pdf"}
PDF_HINT = "reading PDFs needs pypdf: pip install 'bertforge[pdf]'"


class Skip(Exception):
    """A file that is not indexed; str(exception) is the one-line reason (with the fix when there is one)."""


@dataclass(frozen=True)
class SourceFile:
    """A document found in the folder, with the stat that decides whether it changed since the last index."""

    path: Path  # absolute
    rel: str  # relative to the folder, '/'-separated: the name passages carry
    size: int
    mtime_ns: int

    @property
    def kind(self) -> str:
        return KINDS[self.path.suffix.lower()]


def walk_folder(folder: Path, exclude: Iterable[Path] = ()) -> tuple[list[SourceFile], list[tuple[str, str]]]:
    """The supported files under `folder` in path order, and the (path, reason) of what was skipped.

    Symlinks are followed once: a folder reached twice (a symlink loop, or two links to one folder) and
    a file reached twice are skipped, the first path in sorted order kept. Names starting with '.' are
    not walked (like `ls`: .git, .venv, the default index)."""
    folder = Path(folder)
    excluded = {os.path.realpath(p) for p in exclude}
    files: list[SourceFile] = []
    skipped: list[tuple[str, str]] = []
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: dict[tuple[int, int], str] = {}

    def visit(d: Path) -> None:
        rel_d = d.relative_to(folder).as_posix()
        st = d.stat()
        if (st.st_dev, st.st_ino) in seen_dirs:
            skipped.append((rel_d, "folder already indexed through another path (symlink loop?), skipped"))
            return
        seen_dirs.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as e:
            skipped.append((rel_d, f"cannot list folder ({e.strerror or e})"))
            return
        for entry in entries:
            path = Path(entry.path)
            rel = path.relative_to(folder).as_posix()
            if entry.name.startswith(".") or os.path.realpath(path) in excluded:
                continue
            try:
                est = path.stat()  # follows symlinks
            except OSError as e:  # ELOOP (a link to itself), a dangling link
                skipped.append((rel, f"cannot open ({e.strerror or e}): broken symlink or symlink loop?"))
                continue
            if entry.is_dir():
                visit(path)
            elif path.suffix.lower() in KINDS and entry.is_file():  # other types: not documents, not warned
                key = (est.st_dev, est.st_ino)
                if key in seen_files:
                    skipped.append((rel, f"same file as {seen_files[key]}, skipped"))
                    continue
                seen_files[key] = rel
                files.append(SourceFile(path=path, rel=rel, size=est.st_size, mtime_ns=est.st_mtime_ns))

    visit(folder)
    return files, skipped


def read_bytes(source: SourceFile, max_bytes: int) -> bytes:
    """The file's bytes, or Skip when it is over the limit or cannot be read."""
    if source.size > max_bytes:
        raise Skip(f"{source.size / 1e6:.1f} MB is over the {max_bytes / 1e6:g} MB limit: split it, or raise "
                   "the limit (--max-file-mb / max_file_mb)")
    try:
        return source.path.read_bytes()
    except PermissionError:
        raise Skip("permission denied: make it readable (chmod +r) to index it") from None
    except OSError as e:
        raise Skip(f"cannot read ({e.strerror or e})") from None


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_text(data: bytes) -> str:
    """UTF-8 (a BOM allowed) or BOM-marked UTF-16 text with universal newlines; Skip for anything else."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise Skip("bad UTF-16 text: convert it to UTF-8 (iconv -f UTF-16 -t UTF-8)") from None
    else:
        if b"\x00" in data[:8192]:
            raise Skip("binary file (NUL bytes), not text")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise Skip(f"not UTF-8 text (bad byte 0x{data[e.start]:02x} at byte {e.start}): convert it, "
                       "e.g. iconv -f LATIN1 -t UTF-8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


_HTML_BLANK = re.compile(r"<!--.*?-->|<(script|style|template)\b.*?</\1\s*>|<[^>]*>", re.S | re.I)
_HTML_ENTITY = re.compile(r"&(#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")


def html_to_text(markup: str) -> str:
    """The visible text of an HTML page, **same length and same lines as the source**: tags, comments,
    scripts and styles become spaces (their newlines kept), an entity becomes its character padded with
    spaces. So offsets and line numbers of a passage point into the .html file itself.

        html_to_text('<p>AT&amp;T</p>')  == '   AT&    T    '
    """
    def blank(m: re.Match) -> str:
        return re.sub(r"[^\n]", " ", m.group(0))

    def entity(m: re.Match) -> str:
        char = html.unescape(m.group(0))
        return m.group(0) if len(char) > len(m.group(0)) else char.ljust(len(m.group(0)))

    return _HTML_ENTITY.sub(entity, _HTML_BLANK.sub(blank, markup))


def pdf_to_text(path: Path) -> str:
    """The text layer of a PDF, pages joined by form feeds ('\\f'); Skip for encrypted or broken files."""
    try:
        import pypdf
    except ImportError:
        raise Skip(PDF_HINT) from None
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # pypdf logs every odd object of a messy file
    try:
        reader = pypdf.PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise Skip("encrypted PDF: save an unencrypted copy to index it")
        pages = [page.extract_text() or "" for page in reader.pages]
    except Skip:
        raise
    except Exception as e:  # a third-party parser on a broken file can raise anything; one line, no traceback
        raise Skip(f"unreadable PDF ({type(e).__name__}: {str(e)[:80]})") from None
    text = "\f".join(pages).replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise Skip("PDF without a text layer (scanned?): run OCR first, e.g. ocrmypdf in.pdf out.pdf")
    return text


def read_document(source: SourceFile, data: Optional[bytes] = None) -> str:
    """The text of a document (see the module docstring); Skip when it has none."""
    if source.kind == "pdf":
        text = pdf_to_text(source.path)
    else:
        text = decode_text(data if data is not None else source.path.read_bytes())
        if source.kind == "html":
            text = html_to_text(text)
    if not text.strip():
        raise Skip("empty file")
    return text
