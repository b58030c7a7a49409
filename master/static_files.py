"""The chat page's static files, read once and served from memory by exact name."""

from __future__ import annotations

from pathlib import Path

from quart import Response

STATIC_DIR = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".txt": "text/plain; charset=utf-8"}


def load_static(directory: Path = STATIC_DIR) -> dict[str, tuple[bytes, str]]:
    """Every static file, read once: served from memory (no file handle per request, none left
    open by a client that goes away mid-response)."""
    files = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.suffix in CONTENT_TYPES:
            files[path.relative_to(directory).as_posix()] = (path.read_bytes(), CONTENT_TYPES[path.suffix])
    return files


class StaticFiles:
    """Exact-key lookup only: no path is ever joined, so no traversal."""

    def __init__(self, directory: Path = STATIC_DIR) -> None:
        self.files = load_static(directory)

    def response(self, name: str) -> Response:
        found = self.files.get(name)
        if found is None:
            return Response("Not found\n", status=404, content_type="text/plain; charset=utf-8")
        body, content_type = found
        return Response(body, status=200, content_type=content_type)
