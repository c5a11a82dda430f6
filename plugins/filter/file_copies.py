"""Filter file_copies: paths_state ``files`` entries for a list of file names copied from one directory on the
controller into one directory on the Pi (a role's wheels), so that a single paths_state call carries them all."""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List

from ansible.errors import AnsibleFilterError


def file_copies(names: Iterable[Any], src_dir: str, dest_dir: str, owner: str = "root", group: str = "root",
                mode: str = "0644") -> List[Dict[str, str]]:
    """One entry per name: src_dir/name on the controller to dest_dir/name on the Pi, with owner, group and mode."""
    if isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
        raise AnsibleFilterError("file_copies: expects a list of file names, got {!r}".format(names))
    entries: List[Dict[str, str]] = []
    for name in names:
        text = str(name)
        if not text or "/" in text or text in (".", ".."):
            raise AnsibleFilterError("file_copies: {!r} is not a file name (no directories; the directories are "
                                     "{} and {})".format(text, src_dir, dest_dir))
        entries.append({"src": "{}/{}".format(str(src_dir).rstrip("/"), text), "dest": "{}/{}".format(str(dest_dir).rstrip("/"), text),
                        "owner": owner, "group": group, "mode": mode})
    return entries


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"file_copies": file_copies}
