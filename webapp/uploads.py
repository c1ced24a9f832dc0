"""Uploads of dump archives: the one kind of request allowed a body past MAX_CONTENT_LENGTH (up to
DUMP_UPLOAD_MAX_BYTES), streamed to a file, never held in memory."""
from __future__ import annotations

import shutil
from pathlib import Path

from flask import Request, current_app, request

from webapp.services import Invalid

UPLOAD_ENDPOINTS = {"api.restore_database", "ui.database_restore_upload"}


class PgaasRequest(Request):
    """The size limit is chosen per route; werkzeug applies it while the body is read (413 past it), which for a
    form happens in CSRF's check, before the view: hence here, not in the view."""

    @property
    def max_content_length(self) -> int | None:
        if self.url_rule is not None and self.url_rule.endpoint in UPLOAD_ENDPOINTS:
            return int(current_app.config["DUMP_UPLOAD_MAX_BYTES"])
        return super().max_content_length

    @max_content_length.setter
    def max_content_length(self, value: int | None) -> None:
        Request.max_content_length.fset(self, value)


def has_body() -> bool:
    return bool(request.content_length) or request.headers.get("Transfer-Encoding", "").lower() == "chunked"


def save_body(path: Path, field: str = "file") -> None:
    """Write the uploaded archive to path: a multipart form's file field, or the raw body of any other type. The
    file is removed if the upload fails (too large, cut off)."""
    try:
        if request.mimetype == "multipart/form-data":
            upload = request.files.get(field)
            if upload is None or not upload.filename:
                raise Invalid(f"no file was sent (a multipart form needs the archive in its {field!r} field)",
                              field=field)
            upload.save(path)  # werkzeug spooled it to a temporary file past 500 KB
        else:
            with open(path, "wb") as out:
                shutil.copyfileobj(request.stream, out, 1024 * 1024)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if path.stat().st_size == 0:
        path.unlink(missing_ok=True)
        raise Invalid("the uploaded file is empty", field=field)
