#!/usr/bin/python
# -*- coding: utf-8 -*-
"""A role's directories, its files and the paths it must not leave behind, in one call on the Pi.

A converge used to create each directory with its own ``ansible.builtin.file`` task (one round trip to
the Pi each, one per loop item, about 6 s under qemu) and to remove leftovers the same way. This
module takes the whole list: every directory exists with its mode and, where given, its owner and group
(left as they are when not given; missing parents are made root-owned 0755, like ``mkdir -p`` as root),
and every path of ``absent`` is gone (a file or link removed, a directory with everything in it). Drift is repaired as before: a wrong mode, owner or group,
a removed directory or a leftover path is a change, reported per path. A path that exists as something
other than a directory is refused, naming it; nothing is changed then.

Files came the same way, one ``ansible.builtin.copy`` or ``template`` each, and each of those costs two
module runs on the Pi even when nothing changed (a stat, then the file module for owner and mode). Here
``files`` takes a role's files in the same call: small ones by ``content``, the controller's artifacts by
``src`` through the action plugin of the same name, which sends only their sha256 and size. A file whose
content, owner, group and mode are right costs nothing more; a wrong owner or mode is repaired in place; a
missing or different file is written beside its destination (validated first when ``validate`` is given),
fsynced and renamed over it. The contents the Pi lacks are named in ``transfer``: the action plugin copies
exactly those to the Pi and calls the module once more with them ``staged``, whose sums are checked before
they are put in place: renamed there when the Pi's temporary directory is on the destination's filesystem (no
second copy on the Pi's disk, as with ansible.builtin.copy), else copied beside the destination first.

The logic is plain stdlib in module_utils/paths.py (shared with health_check, importable and testable without
Ansible).
"""
from __future__ import annotations

import os  # noqa: F401 - (tests reach the module's os through it)

from ansible_collections.pivoice.voice_appliance.plugins.module_utils.durable import sha256_file  # noqa: F401
from ansible_collections.pivoice.voice_appliance.plugins.module_utils.paths import (  # noqa: F401 - the names tests use
    ARGUMENT_SPEC, PathsError, apply, diff, ensure, plan, states, _state)

DOCUMENTATION = r"""
---
module: paths_state
short_description: Ensure a role's directories, files (owner, group, mode, content) and absent paths in one call.
description:
  - Every directory of O(directories) exists with its owner, group and mode; missing parents are created
    root-owned with mode 0755.
  - Every file of O(files) has its content, owner, group and mode. A file whose content differs is written
    beside its destination, validated, fsynced and renamed over it; only its owner, group or mode wrong, they
    are repaired in place.
  - Files from the controller (C(src)) go through the action plugin of the same name; the Pi receives only the
    contents it lacks, and each is checked against its sum and renamed into place (copied beside its destination
    first when the Pi's temporary directory is on another filesystem).
  - Every path of O(absent) does not exist (files and links are removed, directories with their contents).
  - A path of O(directories) that exists but is not a directory (or a link to one) is refused before anything
    changes.
  - Supports check mode and diff mode.
options:
  directories:
    description:
      - The directories, each with C(path) (absolute), C(mode) (an octal string such as C("0755") or C("2775")) and
        optionally C(owner) and C(group) (names or numbers; not given or empty, the directory keeps its own).
    type: list
    elements: dict
    default: []
  files:
    description:
      - The files, each with C(dest) (absolute), C(mode), optionally C(owner) and C(group) (as for
        O(directories)), and its content as C(content) (a string) or C(src) (a file on the controller, found as
        ansible.builtin.copy finds it).
      - With C(src), C(sha256) is the sum the controller's file must have (64 hexadecimal digits, such as the record
        beside a staged artifact); the action plugin refuses a src whose sum differs, naming both sums, before
        anything changes on the Pi.
      - With C(src), C(sha256_file) is a file on the controller (found as C(src) is) that holds that sum instead, as
        C(sha256sum FILE) writes it - one line, the sum alone or followed by the src's file name (such as the C(.sha256)
        beside a built tarball). The action plugin reads it; a sum file that is missing, empty, malformed (more than one
        line, no sha256 first on its line) or that names another file is refused, naming it, before anything changes on
        the Pi. Give C(sha256) or C(sha256_file), not both.
      - With C(src), C(fix) is a sentence that ends the refusal of a src that is missing or differs from its expected
        sum, or of a sum file that cannot be used (who makes the file and how, such as the playbook that stages it).
      - C(force) false (any boolean Ansible reads, such as C(no)) writes the file only when it does not exist and then
        leaves it alone (a seed that belongs to its users afterwards).
      - C(validate) is a command with C(%s), run on the new content before it replaces the destination
        (for example C(python3 -m json.tool %s)).
      - The directory of each file must exist (list it in O(directories) of the same call).
    type: list
    elements: dict
    default: []
  absent:
    description: Absolute paths that must not exist.
    type: list
    elements: path
    default: []
  staged:
    description:
      - Internal, set by the action plugin on its second call, never by a task. Per destination, the path on
        the Pi of the content the action plugin copied there.
    type: dict
    default: {}
author: voice appliance team
"""

EXAMPLES = r"""
- name: Create the role's directories and remove what earlier releases left.
  pivoice.voice_appliance.paths_state:
    directories:
      - {path: /opt/voice-appliance/wheels, owner: root, group: root, mode: "0755"}
      - {path: /etc/voice-appliance/slots, owner: root, group: voice, mode: "2775"}
    absent: [/etc/mosquitto/voice-appliance.passwd.fingerprint]

- name: Create the wheel and tools directories, copy a wheel and a tarball from the controller's cache and record a local fact.
  pivoice.voice_appliance.paths_state:
    directories:
      - {path: /opt/voice-appliance/wheels, owner: root, group: root, mode: "0755"}
      - {path: /opt/voice-appliance/tools, owner: root, group: root, mode: "0755"}
    files:
      - {src: /home/me/.cache/pi-voice/deepspeech-0.7.4-cp38-cp38-manylinux1_x86_64.whl,
         dest: /opt/voice-appliance/wheels/deepspeech-0.7.4-cp38-cp38-manylinux1_x86_64.whl, owner: root, group: root, mode: "0644",
         sha256: 84856c1195660ad292d39af9938bb05d0cad5e4c39a59efbf99aa0e94510a558,
         fix: "Stage it again with ansible-playbook playbooks/stage.yml."}
      - {src: /home/me/.cache/pi-voice/deepspeech-tools/deepspeech-tools-armhf-0123456789ab.tar.gz,
         dest: /opt/voice-appliance/tools/deepspeech-tools-armhf-0123456789ab.tar.gz, owner: root, group: root, mode: "0644",
         sha256_file: /home/me/.cache/pi-voice/deepspeech-tools/deepspeech-tools-armhf-0123456789ab.tar.gz.sha256,
         fix: "Build it again with ansible-playbook playbooks/build_tools.yml."}
      - {content: '{"flavour": "tflite"}', dest: /etc/ansible/facts.d/deepspeech.fact, owner: root, group: root,
         mode: "0644", validate: python3 -m json.tool %s}
"""

RETURN = r"""
changes:
  description: Per changed path, what changed (C(created), C(content), C(owner), C(group), C(mode), C(removed)).
  type: dict
  returned: always
transfer:
  description: The destinations whose content (from C(src)) the Pi lacks; the action plugin sends them.
  type: list
  returned: always
files:
  description: The destinations of O(files), changed or not (a later task can tell that this call owns a path).
  type: list
  returned: always
"""


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(argument_spec=dict(ARGUMENT_SPEC), supports_check_mode=True)
    try:
        out = ensure(module.params["directories"], module.params["absent"], module.params["files"], module.params["staged"],
                     module.check_mode, module._diff)
    except (PathsError, OSError) as error:
        module.fail_json(msg=str(error))
    module.exit_json(**out)


if __name__ == "__main__":
    main()
