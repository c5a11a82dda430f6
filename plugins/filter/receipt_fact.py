"""Filter of voice_verify: the local fact a call that writes one as its receipt left on the Pi in this run.

deepspeech_runtime (python_env), rhasspy_asr and wyoming_asr (systemd_units) write their local facts as the receipts
of the calls that make what the facts name live; each module returns the receipt the Pi holds after the run
(``receipt``: its path and content). voice_verify compares those with the local facts gathered at the play's start
and asks the Pi again only when one differs or was not written in this run.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Dict, Optional

from ansible.errors import AnsibleFilterError


def receipt_fact(results: Any) -> Optional[Any]:
    """The local fact the Pi holds as the receipt of a registered result (python_env, systemd_units), read as
    Ansible's setup reads a JSON ``.fact`` file; or of the first of a list of them (the calls of one role that write
    the same fact, of which one ran). None when none of them ran and wrote one: not defined, skipped, failed, without
    a receipt (check mode, where it would be written), or a receipt that is not JSON."""
    if results is None or isinstance(results, Mapping):
        results = [results]
    if isinstance(results, (str, bytes)) or not isinstance(results, Sequence):
        raise AnsibleFilterError("receipt_fact: expected the registered result of a call with a receipt (python_env, "
                                 "systemd_units), a list of them or none; got {} {!r}. Give the task's registered "
                                 "variable, with | default(none) if it may not be defined.".format(type(results).__name__,
                                                                                                  results))
    for result in results:
        if result is None:
            continue
        if not isinstance(result, Mapping):
            raise AnsibleFilterError("receipt_fact: {!r} is no registered result (a mapping such as a systemd_units "
                                     "call's); give the task's registered variable.".format(result))
        receipt = result.get("receipt")
        if result.get("skipped") or result.get("failed") or not isinstance(receipt, Mapping):
            continue
        try:
            return json.loads(str(receipt.get("content")))
        except ValueError:
            return None
    return None


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"receipt_fact": receipt_fact}
