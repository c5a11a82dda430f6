"""Filter of the deepspeech_deps role: which of the wanted Debian packages dpkg does not show as installed.

deepspeech_deps asks dpkg-query once through raw (no Python start on the Pi, about 2 s under qemu less than a
module) and calls apt only when a package is missing: apt's module is the costliest call of a converged run
(python3-apt loads the whole package cache). A removed package is still installed again by the next run.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Dict, Iterable, List

# A plain package name as Debian policy allows it; anything else (name=version, name:arch, a glob, a .deb path) is
# left to apt, which alone knows what it means.
_PLAIN = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


def debian_packages_missing(dpkg_query: str, wanted: Iterable[Any]) -> List[str]:
    """The entries of ``wanted`` that the output of ``dpkg-query -W -f='${Package} ${db:Status-Abbrev}\\n' ...`` does
    not show as installed, in their order; every entry that is not a plain package name counts as missing.

    Installed: the abbreviated status's second letter is ``i`` and it carries no error flag (``ii``, or ``hi`` for a
    held package); ``un``, ``rc``, a half-installed ``iH`` or a flagged ``iiR`` are not.
    """
    installed = set()
    for line in str(dpkg_query or "").splitlines():
        fields = line.split()
        if len(fields) == 2 and len(fields[1]) == 2 and fields[1][1] == "i":
            installed.add(fields[0])
    missing: List[str] = []
    for entry in wanted:
        name = str(entry).strip()
        if not (_PLAIN.match(name) and name in installed) and name not in missing:
            missing.append(name)
    return missing


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"debian_packages_missing": debian_packages_missing}
