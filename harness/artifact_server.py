#!/usr/bin/env python3
"""A small HTTP server on 127.0.0.1 that serves artifacts the way the real sources do, or fails.

The tests and the molecule scenarios use it as the artifacts' origin: it serves a directory laid out
like the controller's cache (NAME/VERSION/FILENAME, or any layout), logs every request as a JSON
line (path, status, bytes sent), and can inject the faults a fleet meets on real networks:

  500        answer HTTP 500
  truncate   promise the whole file (Content-Length), send half of it, close the connection
  short      send the first half with a matching Content-Length (a silently cut file)
  corrupt    send the whole length with some bytes changed
  slow:S     wait S seconds before answering
  signin     answer 200 with an HTML sign-in page (what a private Drive folder or file shows)

    artifact_server.py --root DIR --port 8765 --log requests.jsonl [--fault PATH=MODE ...]
        [--daemon --pidfile FILE [--replace]]      artifact_server.py --stop --pidfile FILE

It can also play Google Drive for a large file (--gdrive ID=PATH): /uc?export=download&id=ID answers
with Drive's "can't scan this file for viruses" page, whose form leads to /download?id=ID&confirm=t&uuid=...,
which serves the file. With --gdrive-confirm-over BYTES only files larger than that get the page;
smaller ones are served by /uc at once, as Drive does. --gdrive-folder FOLDER=DIR plays a public
folder: /embeddedfolderview?id=FOLDER lists the files and subdirectories of DIR (below --root) the way
Drive's embedded folder view does (div.flip-entry id="entry-ID", link /file/d/ID/view or
/drive/folders/ID, name in div.flip-entry-title); each file gets a stable id (or the one --gdrive
gives its path) that /uc serves, and a subdirectory becomes a folder of its own.

Faults can also be changed while it runs: PUT /_faults with a JSON object {path: mode}; DELETE
/_faults clears them. Binds to loopback only.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional
import uuid
from urllib.parse import parse_qsl, unquote, urlsplit

FAULT_MODES = ("500", "truncate", "short", "corrupt", "slow", "signin")
SIGNIN_PAGE = (b"<!DOCTYPE html><html><head><title>Google Drive: Sign-in</title></head><body>"
               b"<form action=\"/signin/v2/identifier\"><p>Sign in to continue to Google Drive</p>"
               b"<input type=\"email\" name=\"identifier\"></form></body></html>")


def parse_fault(spec: str) -> "tuple[str, str]":
    path, sep, mode = spec.partition("=")
    if not sep or not path.startswith("/") or mode.split(":")[0] not in FAULT_MODES:
        raise argparse.ArgumentTypeError(
            "bad fault {!r}: use /PATH=MODE with MODE one of {} (slow as slow:SECONDS)".format(spec, ", ".join(FAULT_MODES)))
    return path, mode


class ArtifactServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, root: str, log_path: str, faults: Dict[str, str],
                 gdrive: Optional[Dict[str, str]] = None, auth: Optional[str] = None,
                 folders: Optional[Dict[str, str]] = None, confirm_over: int = 0) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.auth = "Basic " + base64.b64encode(auth.encode()).decode() if auth else None
        self.gdrive = dict(gdrive or {})
        self.root = os.path.realpath(root)
        self.confirm_over = confirm_over
        self.folders: Dict[str, str] = {}  # folder id -> directory below root
        for folder_id, directory in (folders or {}).items():
            self._add_folder(folder_id, directory.strip("/"))
        self.log_path = log_path
        self.faults = dict(faults)
        self.lock = threading.Lock()

    @staticmethod
    def stable_id(path: str, prefix: str = "1F") -> str:
        """A Drive-like id (33 characters of [A-Za-z0-9_-]) that depends only on the path."""
        return prefix + base64.urlsafe_b64encode(hashlib.sha256(path.encode()).digest()).decode()[:31]

    def _add_folder(self, folder_id: str, directory: str) -> None:
        self.folders[folder_id] = directory
        known = {path.strip("/"): fid for fid, path in self.gdrive.items()}
        local = os.path.join(self.root, directory)
        for name in sorted(os.listdir(local)) if os.path.isdir(local) else []:
            path = directory + "/" + name
            if os.path.isdir(os.path.join(local, name)):
                self._add_folder(self.stable_id(path, "1D"), path)
            elif path not in known:
                self.gdrive[self.stable_id(path)] = path

    def folder_page(self, folder_id: str) -> bytes:
        """Drive's embedded folder view of one folder."""
        directory = self.folders[folder_id]
        by_path = {path.strip("/"): fid for fid, path in self.gdrive.items()}
        by_dir = {path: fid for fid, path in self.folders.items()}
        rows = []
        for name in sorted(os.listdir(os.path.join(self.root, directory))):
            path = directory + "/" + name
            if path in by_dir:
                child, link, icon = by_dir[path], "https://drive.google.com/drive/folders/" + by_dir[path], "Folder"
            else:
                child = by_path[path]
                link, icon = "https://drive.google.com/file/d/{}/view?usp=drive_web".format(child), "Binary"
            rows.append(
                '<div class="flip-entry" id="entry-{id}" tabindex="0" role="link"><div class="flip-entry-info">'
                '<a href="{link}" target="_blank"><div class="flip-entry-list-icon"><div class="drive-sprite-aux-icon">'
                '<img src="/icon.png" alt="{icon}"></div></div><div class="flip-entry-title">{name}</div>'
                '<div class="flip-entry-last-modified"><div>Jun 30, 2020</div></div></a></div></div>'.format(
                    id=child, link=link, icon=icon, name=html.escape(name)))
        return ("<!DOCTYPE html><html><head><title>{}</title></head><body><div class=\"flip-view-list\">"
                '<div class="flip-entries">{}</div></div></body></html>').format(
                    html.escape(os.path.basename(directory)), "".join(rows)).encode()

    def record(self, entry: Dict[str, object]) -> None:
        with self.lock, open(self.log_path, "a") as log:
            log.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    server: ArtifactServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # the JSON log replaces stderr noise
        pass

    def _finish(self, status: int, sent: int, fault: Optional[str] = None) -> None:
        self.server.record({"time": time.time(), "method": self.command, "path": urlsplit(self.path).path,
                            "status": status, "bytes": sent, "fault": fault})

    def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._finish(status, len(body))  # logged first: a client that has the answer finds it in the log
        self.wfile.write(body)

    def do_PUT(self) -> None:  # noqa: N802 (http.server's naming)
        if urlsplit(self.path).path != "/_faults":
            return self._reply(405, b"only /_faults can be changed\n")
        length = int(self.headers.get("Content-Length", "0"))
        faults = json.loads(self.rfile.read(length) or b"{}")
        for path, mode in faults.items():
            parse_fault("{}={}".format(path, mode))
        with self.server.lock:
            self.server.faults.update(faults)
        self._reply(200, b"ok\n")

    def do_DELETE(self) -> None:  # noqa: N802
        with self.server.lock:
            self.server.faults.clear()
        self._reply(200, b"ok\n")

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET(head=True)

    def _gdrive(self) -> Optional[str]:
        """Drive's two steps: the confirmation page, then the file (its path below root)."""
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        if url.path == "/embeddedfolderview" and query.get("id") in self.server.folders:
            self._reply(200, self.server.folder_page(query["id"]), "text/html; charset=utf-8")
            return ""
        file_path = self.server.gdrive.get(query.get("id", ""))
        if url.path not in ("/uc", "/download") or file_path is None:
            return None
        if url.path == "/download" and query.get("confirm") == "t" and query.get("uuid"):
            return "/" + file_path.lstrip("/")
        local = os.path.join(self.server.root, file_path.lstrip("/"))
        if url.path == "/uc" and os.path.isfile(local) and os.path.getsize(local) <= self.server.confirm_over:
            return "/" + file_path.lstrip("/")  # small enough for Drive's virus scan: no confirmation
        page = (
            "<html><head><title>Google Drive - Virus scan warning</title></head><body>"
            "<p>Google Drive can't scan this file for viruses.</p>"
            '<form id="download-form" action="/download" method="get">'
            '<input type="submit" value="Download anyway"/>'
            '<input type="hidden" name="id" value="{}">'
            '<input type="hidden" name="export" value="download">'
            '<input type="hidden" name="confirm" value="t">'
            '<input type="hidden" name="uuid" value="{}">'
            "</form></body></html>").format(query["id"], uuid.uuid4())
        self._reply(200, page.encode(), "text/html; charset=utf-8")
        return ""

    def do_GET(self, head: bool = False) -> None:  # noqa: N802
        path = unquote(urlsplit(self.path).path)
        if self.server.auth and self.headers.get("Authorization") != self.server.auth:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="artifacts"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return self._finish(401, 0)
        with self.server.lock:
            early = self.server.faults.get(path)
        if early == "signin":
            return self._reply(200, SIGNIN_PAGE, "text/html; charset=utf-8")
        if self.server.gdrive or self.server.folders:
            target = self._gdrive()
            if target == "":
                return
            if target:
                path = target
        with self.server.lock:
            fault = self.server.faults.get(path)
        if fault and fault.startswith("slow"):
            time.sleep(float(fault.partition(":")[2] or 30))
        if fault == "500":
            return self._reply(500, b"injected server error\n")
        local = os.path.realpath(os.path.join(self.server.root, path.lstrip("/")))
        if not local.startswith(self.server.root + os.sep) or not os.path.isfile(local):
            return self._reply(404, b"not found\n")
        with open(local, "rb") as handle:
            body = handle.read()
        promised = len(body)
        if fault == "short":
            body = body[: len(body) // 2]
            promised = len(body)
        elif fault == "truncate":
            body = body[: len(body) // 2]
        elif fault == "corrupt":
            body = bytes(b ^ 0xFF if i % 997 == 0 else b for i, b in enumerate(body))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(promised))
        if fault == "truncate":
            self.send_header("Connection", "close")
        self.end_headers()
        sent = 0
        if not head:
            self.wfile.write(body)
            sent = len(body)
        if fault == "truncate":
            self.close_connection = True
        self._finish(200, sent, fault)


def stop(pidfile: Optional[str]) -> None:
    """Stop the server whose pid is in pidfile, if it still runs."""
    if not pidfile or not os.path.exists(pidfile):
        return
    with open(pidfile) as handle:
        pid = int(handle.read().strip() or 0)
    os.unlink(pidfile)
    if pid <= 0:
        return
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="directory to serve")
    parser.add_argument("--port", type=int, help="port on 127.0.0.1")
    parser.add_argument("--log", help="JSON-lines request log (appended)")
    parser.add_argument("--fault", type=parse_fault, action="append", default=[], help="/PATH=MODE (repeatable)")
    parser.add_argument("--gdrive", action="append", default=[], metavar="ID=PATH",
                        help="play Google Drive: file id ID serves PATH (below --root) after the confirmation page")
    parser.add_argument("--gdrive-folder", action="append", default=[], metavar="ID=DIR",
                        help="play a public Google Drive folder: ID lists the files of DIR (below --root)")
    parser.add_argument("--gdrive-confirm-over", type=int, default=0, metavar="BYTES",
                        help="only Drive files larger than this get the confirmation page (default: all)")
    parser.add_argument("--auth", metavar="USER:PASSWORD", help="require HTTP basic authentication")
    parser.add_argument("--daemon", action="store_true", help="detach after binding the port")
    parser.add_argument("--pidfile", help="write the server's pid here")
    parser.add_argument("--replace", action="store_true", help="stop the server named in --pidfile first")
    parser.add_argument("--stop", action="store_true", help="only stop the server named in --pidfile")
    args = parser.parse_args(argv)
    if args.replace or args.stop:
        stop(args.pidfile)
        if args.stop:
            return 0
    if not (args.root and args.port and args.log):
        parser.error("--root, --port and --log are required to serve")
    server = ArtifactServer(args.port, args.root, args.log, dict(args.fault),
                            dict(spec.split("=", 1) for spec in args.gdrive), args.auth,
                            dict(spec.split("=", 1) for spec in args.gdrive_folder), args.gdrive_confirm_over)
    if args.daemon:
        child = os.fork()
        if child:  # the parent returns once the port is bound: callers can use it at once
            if args.pidfile:
                with open(args.pidfile, "w") as handle:
                    handle.write("{}\n".format(child))
            return 0
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
    elif args.pidfile:
        with open(args.pidfile, "w") as handle:
            handle.write("{}\n".format(os.getpid()))
    try:
        server.serve_forever()
    finally:
        if args.pidfile and os.path.exists(args.pidfile):
            os.unlink(args.pidfile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
