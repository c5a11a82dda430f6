#!/usr/bin/python
"""Ansible module: download a Google Drive file by its id, passing Drive's large-file confirmation.

Drive answers a download request for a file too large to virus-scan with an HTML page ("Google
Drive can't scan this file for viruses ... Download anyway") instead of the file. That page holds
a form (action, hidden inputs id/export/confirm/uuid), or, in older versions, a `download_warning`
cookie whose value is the confirm token. This module follows either, then streams the file to a
temporary file beside dest, checks its sha256 and renames it into place. A dest that already has
the expected sum is left alone without any request.

A file may also be named by the public Drive folder that holds it (folder_id + filename): the
folder's embedded view is listed to find the file's id (module_utils/gdrive_folder.py), and the
listing is cached on the controller (listing_cache), so a re-run asks Drive nothing.
"""
from __future__ import annotations

import html.parser
import http.cookiejar
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, List, Optional, Tuple

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.gdrive_folder import find_file, view_url
from ansible_collections.pivoice.voice_appliance.plugins.module_utils.durable import sha256_file

DOCUMENTATION = r"""
module: gdrive_download
short_description: Download a Google Drive file by id, handling the large-file confirmation.
description:
  - Fetches C(base_url/uc?export=download&id=ID); if Drive answers with its confirmation page, follows its form or
    C(download_warning) cookie. Writes atomically and checks the sha256.
options:
  file_id: {description: The Drive file id (or give folder_id and filename)., type: str, default: ""}
  folder_id: {description: A public Drive folder that lists the file (its embedded view is read to find the id)., type: str, default: ""}
  filename: {description: The file's name as the folder lists it (default the name of dest)., type: str, default: ""}
  listing_cache: {description: JSON file on the controller keeping folder listings (empty keeps none)., type: path, default: ""}
  sha256_origin: {description: Where the expected sum came from, for the message when a file does not match it., type: str, default: ""}
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
file_id: {description: The Drive file id fetched (found in the folder for folder_id)., returned: when fetched, type: str}
listing_requests: {description: Folder listing pages requested (0 when the cached listing answered)., returned: when fetched, type: int}
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


def _is_html(response: "urllib.response.addinfourl") -> bool:  # type: ignore[name-defined]
    return "text/html" in (response.headers.get("Content-Type") or "")


def download(file_id: str, dest: str, expected: str, base_url: str, timeout: int,
             what: str = "", sha256_origin: str = "") -> Dict[str, object]:
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
        actual = sha256_file(temp)
        if expected and actual != expected:
            raise RuntimeError(
                "The checksum of Google Drive file {} did not match {}; it was {}. {}The file at the source is not the "
                "one {}: it was not used and the cache keeps only verified files. If you trust the new file, {}; "
                "otherwise put the copy you trust into the artifact drop-in directory.".format(
                    what or file_id, expected, actual, "It changed since its sum was recorded. " if sha256_origin else "",
                    "whose sum was recorded ({})".format(sha256_origin) if sha256_origin else "that was pinned",
                    "delete its line from {} (the next run records the new sum) or pin the new sum".format(sha256_origin)
                    if sha256_origin else "pin its sum with artifact_stage_catalog_overrides"))
        os.replace(temp, dest)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return {"sha256": actual, "confirmed": confirmed}


def fetch(file_id: str, folder_id: str, filename: str, dest: str, expected: str, base_url: str, timeout: int,
          listing_cache: str = "", sha256_origin: str = "") -> Dict[str, object]:
    """Download by id, or find the id in the folder first (listing again once if a cached id is gone)."""
    if not folder_id:
        result = download(file_id, dest, expected, base_url, timeout, "", sha256_origin)
        return dict(result, file_id=file_id, listing_requests=0)
    what = "{} (folder {})".format(filename, folder_id)
    found, requests = find_file(folder_id, filename, base_url, timeout, listing_cache)
    try:
        result = download(found, dest, expected, base_url, timeout, what, sha256_origin)
    except urllib.error.HTTPError as exc:
        if exc.code != 404 or requests:
            raise
        found, requests = find_file(folder_id, filename, base_url, timeout, listing_cache, fresh=True)
        result = download(found, dest, expected, base_url, timeout, what, sha256_origin)
    return dict(result, file_id=found, listing_requests=requests)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "file_id": {"type": "str", "default": ""},
            "folder_id": {"type": "str", "default": ""},
            "filename": {"type": "str", "default": ""},
            "listing_cache": {"type": "path", "default": ""},
            "sha256_origin": {"type": "str", "default": ""},
            "dest": {"type": "path", "required": True},
            "sha256": {"type": "str", "default": ""},
            "base_url": {"type": "str", "default": "https://drive.google.com"},
            "timeout": {"type": "int", "default": 120},
            "mode": {"type": "str", "default": "0644"},
        },
        required_one_of=[("file_id", "folder_id")],
        mutually_exclusive=[("file_id", "folder_id")],
        supports_check_mode=True,
    )
    params = module.params
    dest, expected = params["dest"], params["sha256"].lower()
    if os.path.isfile(dest) and (not expected or sha256_file(dest) == expected):
        module.exit_json(changed=False, sha256=sha256_file(dest), confirmed=False)
    if module.check_mode:
        module.exit_json(changed=True)
    base, timeout, folder = params["base_url"], params["timeout"], params["folder_id"]
    filename = params["filename"] or os.path.basename(dest)
    url = view_url(base, folder) if folder else "{}/uc?id={}".format(base.rstrip("/"), params["file_id"])
    try:
        result = fetch(params["file_id"], folder, filename, dest, expected, base, timeout,
                       params["listing_cache"], params["sha256_origin"])
    except Exception as exc:  # every failure is reported with its reason; dest is untouched
        module.fail_json(msg=str(exc), url=url)
    os.chmod(dest, int(params["mode"], 8))
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
