"""What is wrong with the appliance's shared values (role voice_appliance), as messages that name the fix.

Checked once per play before the first role that uses them, in one task::

    voice_appliance_errors: >-
      {{ {'voice_appliance_user': voice_appliance_user, ...}
         | pivoice.voice_appliance.shared_value_errors(old_names_set, voice_appliance_renamed) }}

- the service account and group are never root (by name or by id 0);
- the base, state and configuration directories are distinct and none lies inside another (the base
  directory is read-only for the service account, the state directory is its own, the configuration root's);
- a setting of an earlier release under its old name is refused: this release would ignore it silently.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence

ROOT = ("root", "0")
DIRECTORIES = ("voice_appliance_base_dir", "voice_appliance_state_dir", "voice_appliance_config_dir")


def _inside(path: str, other: str) -> bool:
    """Whether path is other or lies below it (trailing slashes ignored)."""
    return (path.rstrip("/") + "/").startswith(other.rstrip("/") + "/")


def shared_value_errors(values: Mapping[str, Any], old_names: Sequence[str] = (),
                        renamed: Mapping[str, str] = {}) -> List[str]:  # noqa: B006  (read only)
    """The problems of the shared values, each a message with its fix; [] when there are none.

    values: voice_appliance_user, voice_appliance_group and the three directories (DIRECTORIES);
    old_names: the earlier releases' variable names that are set; renamed: old name -> this release's name.
    """
    errors: List[str] = []
    user, group = str(values["voice_appliance_user"]), str(values["voice_appliance_group"])
    if user in ROOT or group in ROOT:
        errors.append("voice_appliance_user/voice_appliance_group is {}/{}: the appliance's services run as an unprivileged "
                      "account; give another name (the default is voice).".format(user, group))
    nested = ["{} ({}) is {} ({}) or lies inside it".format(name, values[name], other, values[other])
              for name in DIRECTORIES for other in DIRECTORIES
              if name != other and _inside(str(values[name]), str(values[other]))]
    if nested:
        errors.append("; ".join(nested) + ": the base, state and configuration directories must be separate (e.g. "
                      "/opt/voice-appliance, /var/lib/voice-appliance, /etc/voice-appliance).")
    old = sorted(old_names)
    if old:
        errors.append(" ".join("{} is set, but this release names it {} (the MQTT broker is the role mqtt_broker now; its "
                               "endpoint and accounts are shared values of voice_appliance).".format(name, renamed[name])
                               for name in old)
                      + " Rename {} in your inventory or group_vars and run again; nothing was changed."
                      .format("it" if len(old) == 1 else "them"))
    return errors


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {"shared_value_errors": shared_value_errors}
