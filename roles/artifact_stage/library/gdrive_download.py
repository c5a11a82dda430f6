#!/usr/bin/python
"""Ansible module: download a Google Drive file by its id, passing Drive's large-file confirmation.

Drive answers a download request for a file too large to virus-scan with an HTML page ("Google
Drive can't scan this file for viruses ... Download anyway") instead of the file. That page holds
a form (action, hidden inputs id/export/confirm/uuid), or, in older versions, a `download_warning`
cookie whose value is the confirm token. This module follows either, then streams the file to a
temporary file beside dest, checks its sha256 and renames it into place. A dest that already has
the expected sum is left alone without any request.
"""
from __future__ import annotations

import hashlib
import html.parser
import http.cookiejar
import os
import re
import tempfile
import urllib.parse
import urllib.request
from typing import Dict, List, Optional, Tuple

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: gdrive_download
short_description: Download a Google Drive file by id, handling the large-file confirmation.
description:
  - Fetches C(base_url/uc?export=download&id=ID); if Drive answers with its confirmation page, follows its form or
    C(download_warning) cookie. Writes atomically and checks the sha256.
options:
  file_id: {description: The Drive file id., required: true, type: str}
  dest: {description: Where to write the file., required: true, type: path}
  sha256: {description: Expected sha256 (hex); empty accepts any content (trust on first use)., type: str, default: ""}
  base_url: {description: The Drive endpoint (tests point it at a local server)., type: str, default: "https://drive.google.com"}
  timeout: {description: Seconds per request., type: int, default: 120}
  mode: {description: File mode of dest., type: str, default: "0644"}
author: voice appliance team
"""

RETURN = r"""
sha256: {description: The sha256 of dest., returned: success, type: str}
confirmed: {description: Whether Drive's confirmation step was passed., returned: success, type: bool}
"""


class _ConfirmForm(html.parser.HTMLParser):
    """The confirmation page's download form: its action and hidden inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.action: Optional[str] = None
        self.fields: List[Tuple[str, str]] = []
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and "download" in values.get("action", "") and self.action is None:
            self.action, self._in_form = values["action"], True
        elif tag == "input" and self._in_form and values.get("type") == "hidden" and values.get("name"):
            self.fields.append((values["name"], values.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_html(response: "urllib.response.addinfourl") -> bool:  # type: ignore[name-defined]
    return "text/html" in (response.headers.get("Content-Type") or "")


def download(file_id: str, dest: str, expected: str, base_url: str, timeout: int) -> Dict[str, object]:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    first = base_url.rstrip("/") + "/uc?" + urllib.parse.urlencode({"export": "download", "id": file_id})
    response = opener.open(first, timeout=timeout)
    confirmed = False
    if _is_html(response):
        page = response.read().decode("utf-8", "replace")
        form = _ConfirmForm()
        form.feed(page)
        token = next((c.value for c in jar if c.name.startswith("download_warning")), None)
        if form.action:
            target = urllib.parse.urljoin(first, form.action) + "?" + urllib.parse.urlencode(form.fields)
        elif token:
            target = first + "&" + urllib.parse.urlencode({"confirm": token})
        else:
            reason = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)).strip()[:300]
            raise RuntimeError("Google Drive answered with a page, not the file, and no confirmation form was found "
                               "(is the file shared with 'anyone with the link'? quota exceeded?): " + reason)
        response = opener.open(target, timeout=timeout)
        confirmed = True
        if _is_html(response):
            raise RuntimeError("Google Drive still answered with a page after the confirmation step: "
                               "download the file by hand into the artifact drop-in directory")
    directory = os.path.dirname(dest) or "."
    handle, temp = tempfile.mkstemp(prefix=".gdrive-", dir=directory)
    try:
        with os.fdopen(handle, "wb") as out:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
        actual = _sha256(temp)
        if expected and actual != expected:
            raise RuntimeError("The checksum of Google Drive file {} did not match {}; it was {}.".format(file_id, expected, actual))
        os.replace(temp, dest)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return {"sha256": actual, "confirmed": confirmed}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "file_id": {"type": "str", "required": True},
            "dest": {"type": "path", "required": True},
            "sha256": {"type": "str", "default": ""},
            "base_url": {"type": "str", "default": "https://drive.google.com"},
            "timeout": {"type": "int", "default": 120},
            "mode": {"type": "str", "default": "0644"},
        },
        supports_check_mode=True,
    )
    params = module.params
    dest, expected = params["dest"], params["sha256"].lower()
    if os.path.isfile(dest) and (not expected or _sha256(dest) == expected):
        module.exit_json(changed=False, sha256=_sha256(dest), confirmed=False)
    if module.check_mode:
        module.exit_json(changed=True)
    try:
        result = download(params["file_id"], dest, expected, params["base_url"], params["timeout"])
    except Exception as exc:  # every failure is reported with its reason; dest is untouched
        module.fail_json(msg=str(exc), url="{}/uc?id={}".format(params["base_url"].rstrip("/"), params["file_id"]))
    os.chmod(dest, int(params["mode"], 8))
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
