"""Find a file's id in a public Google Drive folder, the way Drive's embedded folder view lists it.

Drive shows a folder shared with "anyone with the link" without signing in at
``BASE/embeddedfolderview?id=FOLDER``: an HTML page whose ``div.flip-entries`` holds one
``div.flip-entry`` per child, ``id="entry-CHILD_ID"``, with a link to ``/file/d/CHILD_ID/...``
(a file) or ``/drive/folders/CHILD_ID`` (a subfolder) and the child's name in
``div.flip-entry-title``. This module reads that page with html.parser, looks a file name up in it
(then in its subfolders, for a file kept one level down), and keeps what it learnt in a small JSON
cache on the controller: a file's id does not change, so a re-run asks Drive nothing.

Every failure is a :class:`FolderError` whose message names the folder, what was looked for, what
was found instead and the fix.
"""
from __future__ import annotations

import html.parser
import json
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable, Dict, List, Optional, Tuple

# Subfolders searched below the folder when a file is not listed at its top (each costs one request).
MAX_DEPTH = 2
_ID = re.compile(r"^[A-Za-z0-9_-]{10,}$")
_LINK = re.compile(r"/(?:file/d|drive/(?:u/\d+/)?folders)/([A-Za-z0-9_-]{10,})")


class FolderError(Exception):
    """A folder that cannot be listed, or a file it does not list; the message says what to do."""


class Entry:
    """One child of a folder: its name, id and whether it is a subfolder."""

    __slots__ = ("name", "file_id", "is_folder")

    def __init__(self, name: str, file_id: str, is_folder: bool) -> None:
        self.name, self.file_id, self.is_folder = name, file_id, is_folder

    def to_json(self) -> Dict[str, object]:
        return {"name": self.name, "id": self.file_id, "folder": self.is_folder}

    def __repr__(self) -> str:
        return "Entry({!r}, {!r}, folder={})".format(self.name, self.file_id, self.is_folder)


class _ListingParser(html.parser.HTMLParser):
    """Collects the flip-entry blocks of an embedded folder view."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.is_listing = False
        self.title = ""
        self.entries: List[Entry] = []
        self._entry: Optional[Dict[str, object]] = None
        self._depth = 0  # open divs inside the current entry
        self._title_depth: Optional[int] = None
        self._in_head_title = False

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        values = {k: v or "" for k, v in attrs}
        classes = values.get("class", "").split()
        if tag == "title":
            self._in_head_title = True
        if tag == "div" and ("flip-entries" in classes or "flip-view-list" in classes):
            self.is_listing = True
        if tag == "div" and "flip-entry" in classes and values.get("id", "").startswith("entry-"):
            self._close_entry()
            self.is_listing = True
            self._entry = {"id": values["id"][len("entry-"):], "name": "", "folder": None}
            self._depth = 1
            return
        if self._entry is None:
            return
        if tag == "div":
            self._depth += 1
            if "flip-entry-title" in classes and self._title_depth is None:
                self._title_depth = self._depth
        elif tag == "a":
            match = _LINK.search(values.get("href", ""))
            if match and self._entry["folder"] is None:
                self._entry["folder"] = "/folders/" in match.group(0)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_head_title = False
        if self._entry is None or tag != "div":
            return
        if self._title_depth is not None and self._depth == self._title_depth:
            self._title_depth = None
        self._depth -= 1
        if self._depth == 0:
            self._close_entry()

    def handle_data(self, data: str) -> None:
        if self._in_head_title:
            self.title += data
        if self._entry is not None and self._title_depth is not None:
            self._entry["name"] = str(self._entry["name"]) + data

    def _close_entry(self) -> None:
        entry, self._entry, self._title_depth = self._entry, None, None
        if entry is None:
            return
        name = " ".join(str(entry["name"]).split())
        if name and _ID.match(str(entry["id"])):
            self.entries.append(Entry(name, str(entry["id"]), bool(entry["folder"])))

    def close(self) -> None:
        super().close()
        self._close_entry()


def listing_url(base_url: str, folder_id: str) -> str:
    return base_url.rstrip("/") + "/embeddedfolderview?" + urllib.parse.urlencode({"id": folder_id})


def view_url(base_url: str, folder_id: str) -> str:
    """Where a person opens the folder in a browser (for messages)."""
    return base_url.rstrip("/") + "/drive/folders/" + folder_id


def parse_listing(page: str, folder_id: str, url: str) -> List[Entry]:
    """The children an embedded folder view lists; FolderError if the page is not such a view."""
    parser = _ListingParser()
    parser.feed(page)
    parser.close()
    if not parser.is_listing:
        title = " ".join(parser.title.split()) or "no title"
        text = " ".join(re.sub(r"<[^>]+>", " ", re.sub(r"(?is)<(script|style)[^>]*>.*?</\1>", " ", page)).split())
        raise FolderError(
            "The page {} is not a Google Drive folder listing ({!r}: {}). Is folder {} shared with 'anyone with "
            "the link'? If Drive asks to sign in, the folder is private; if Drive changed its folder view, give "
            "each file's gdrive_id (from its share link) in artifact_stage_catalog_overrides or put the files into "
            "the artifact drop-in directory.".format(url, title, text[:200] or "empty page", folder_id))
    return parser.entries


Fetch = Callable[[str, int], Tuple[str, str]]


def http_get(url: str, timeout: int) -> Tuple[str, str]:
    """The body and Content-Type of an HTTP GET (the controller's proxy environment applies)."""
    request = urllib.request.Request(url, headers={"User-Agent": "Mozilla/5.0 (pi-voice artifact_stage)"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read().decode(response.headers.get_content_charset() or "utf-8", "replace")
        return body, response.headers.get("Content-Type") or ""


def list_folder(folder_id: str, base_url: str, timeout: int, fetch: Fetch = http_get) -> List[Entry]:
    """One request: the children of folder_id."""
    if not _ID.match(folder_id):
        raise FolderError("{!r} is not a Google Drive folder id (the part after /drive/folders/ in the folder's "
                          "share link).".format(folder_id))
    url = listing_url(base_url, folder_id)
    try:
        page, content_type = fetch(url, timeout)
    except urllib.error.HTTPError as exc:
        hint = (" (no such folder, or it is not shared with 'anyone with the link')"
                if exc.code in (401, 403, 404) else "")
        raise FolderError("Listing Google Drive folder {} failed: HTTP {} from {}{}.".format(
            folder_id, exc.code, url, hint)) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FolderError("Listing Google Drive folder {} failed: {} ({}). Check the network or the proxy "
                          "(artifact_stage_proxy_env).".format(folder_id, reason, url)) from None
    if content_type and "html" not in content_type.lower():
        raise FolderError("The page {} is not a Google Drive folder listing: it is {}, not HTML. Check "
                          "artifact_stage_gdrive_base_url and the folder id {}.".format(url, content_type, folder_id))
    return parse_listing(page, folder_id, url)


class ListingCache:
    """Folder listings kept on the controller as JSON: {folder_id: [{name, id, folder}, ...]}."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.folders: Dict[str, List[Entry]] = {}
        if path and os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as handle:
                    raw = json.load(handle)
                self.folders = {str(k): [Entry(str(e["name"]), str(e["id"]), bool(e["folder"])) for e in v]
                                for k, v in raw.get("folders", {}).items()}
            except (ValueError, KeyError, TypeError, AttributeError):
                self.folders = {}  # an unreadable cache is only a cache: list again

    def save(self) -> None:
        if not self.path:
            return
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=".gdrive-folders-", dir=directory)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump({"folders": {k: [e.to_json() for e in v] for k, v in sorted(self.folders.items())}},
                          out, indent=1, sort_keys=True)
            os.chmod(temp, 0o644)
            os.replace(temp, self.path)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)


def _matches(entries: List[Entry], filename: str) -> List[Entry]:
    return [e for e in entries if not e.is_folder and e.name == filename]


def _paths(folders: Dict[str, List[Entry]], folder_id: str, depth: int, prefix: str) -> List[str]:
    """Every name known below folder_id, subfolders' files as SUB/NAME."""
    names: List[str] = []
    for entry in sorted(folders.get(folder_id, []), key=lambda e: e.name):
        names.append(prefix + entry.name + ("/" if entry.is_folder else ""))
        if entry.is_folder and depth < MAX_DEPTH:
            names.extend(_paths(folders, entry.file_id, depth + 1, prefix + entry.name + "/"))
    return names


def find_file(folder_id: str, filename: str, base_url: str, timeout: int, cache_path: str = "",
              fresh: bool = False, fetch: Fetch = http_get) -> Tuple[str, int]:
    """The id of the file named filename in the folder (or a subfolder) and how many requests it took.

    A cached listing that holds the name answers without a request; one that lacks it (or fresh=True,
    after a cached id stopped working) is listed again.
    """
    cache = ListingCache(cache_path)
    requests = 0
    used_cache = False
    listed_now: Dict[str, bool] = {}

    def children(fid: str) -> List[Entry]:
        nonlocal requests, used_cache
        if fid not in listed_now and (fresh or fid not in cache.folders):
            cache.folders[fid] = list_folder(fid, base_url, timeout, fetch)
            listed_now[fid] = True
            requests += 1
        elif fid not in listed_now:
            used_cache = True
        return cache.folders[fid]

    def search(fid: str, depth: int, path: str) -> List[Tuple[str, Entry]]:
        entries = children(fid)
        found = [(path + e.name, e) for e in _matches(entries, filename)]
        if found or depth >= MAX_DEPTH:
            return found
        for sub in (e for e in entries if e.is_folder):
            found.extend(search(sub.file_id, depth + 1, path + sub.name + "/"))
        return found

    found = search(folder_id, 0, "")
    if not found and used_cache:
        fresh = True  # a cached listing may be older than the file: ask Drive once
        found = search(folder_id, 0, "")
    if requests:
        cache.save()
    if len(found) > 1:
        raise FolderError("Google Drive folder {} lists {} files named {!r} ({}): give the one you mean as the "
                          "entry's gdrive_id in artifact_stage_catalog_overrides.".format(
                              folder_id, len(found), filename, ", ".join("{} = {}".format(p, e.file_id) for p, e in found)))
    if not found:
        listed = _paths(cache.folders, folder_id, 0, "")
        raise FolderError(
            "Google Drive folder {} ({}) lists no file named {!r}; it lists: {}. Set the entry's filename to the "
            "name the folder lists, or its gdrive_id (from the file's share link), with "
            "artifact_stage_catalog_overrides, or put the file into the artifact drop-in directory.".format(
                folder_id, view_url(base_url, folder_id), filename, ", ".join(listed) or "nothing (an empty folder)"))
    return found[0][1].file_id, requests
