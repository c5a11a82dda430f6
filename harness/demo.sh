#!/usr/bin/env bash
# `make demo`: the main job against one emulated Raspberry Pi — by default the Pi most users set up
# today: 64-bit Raspberry Pi OS trixie (Debian 13 arm64, Python 3.13) under qemu-aarch64 (11, which
# harness/setup.sh registers). PI_VOICE_DEMO_IMAGE picks another image.
#
#   harness/demo.sh          start the "Pi" if needed, run `ansible-playbook site.yml`, summarise
#   harness/demo.sh clean    remove the container and the generated inventory
#
# PI_VOICE_DEMO_NAME, PI_VOICE_DEMO_PORT (the artifact server; the broker and Wyoming ports follow from
# it) and PI_VOICE_DEMO_DIR (the generated inventory, the fixture model's origin and the run's log;
# default .demo/NAME) let another demo Pi run beside this one: molecule's arm64 scenario runs this
# script as its converge.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
name=${PI_VOICE_DEMO_NAME:-pi-voice-demo}
image=${PI_VOICE_DEMO_IMAGE:-pi-voice/debian:trixie-arm64}
demo=${PI_VOICE_DEMO_DIR:-$repo/.demo/$name}  # one directory per demo Pi (another may run beside it)

port=${PI_VOICE_DEMO_PORT:-8730}
# The demo Pi's broker and Wyoming server on loopback ports derived from it (18830, 10310 by
# default), apart from molecule's scenarios and another demo Pi on the shared host network.
mqtt_port=$((port + 10100))
wyoming_port=$((port + 1580))

if [ "${1:-}" = clean ]; then
    # (docker rm -f succeeds for a container that does not exist: ask first.)
    if docker container inspect "$name" >/dev/null 2>&1; then
        docker rm -f "$name" >/dev/null && echo "removed container $name"
    else
        echo "no container $name"
    fi
    [ -e "$demo/origin/server.pid" ] && python3 "$repo/harness/artifact_server.py" --stop --pidfile "$demo/origin/server.pid"
    # Only what this script wrote: PI_VOICE_DEMO_DIR may name a directory that holds other files too.
    rm -rf "$demo/origin"
    rm -f "$demo/model.yml" "$demo/pis.ini" "$demo/last-run.log" "$demo/das_ist_ein_test.wav"
    rmdir "$demo" 2>/dev/null || true
    exit 0
fi

# systemd halts on SIGRTMIN+3; qemu-user shifts the real-time signals it passes on (FACTS §5):
# by 2 under the host's qemu-arm 7.2, by 4 under qemu-aarch64 11.
case "$image" in *arm64*) stop_signal=SIGRTMIN+7 ;; *armhf*) stop_signal=SIGRTMIN+5 ;; *) stop_signal=SIGRTMIN+3 ;; esac
# Under qemu-user a 32-bit program's readdir loses the entries of an overlayfs directory (64-bit
# directory cookies): armhf Mosquitto would read nothing from conf.d and never open the appliance's
# listener. A real Pi is not affected; the emulated one gets a tmpfs there (FACTS §12).
emulation_fixes=()
case "$image" in *armhf*) emulation_fixes=(--tmpfs /etc/mosquitto/conf.d) ;; esac
if [ "$(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" != true ]; then
    docker rm -f "$name" >/dev/null 2>&1 || true
    echo "starting the emulated Pi '$name' from $image"
    # systemd as PID 1 without --privileged (FACTS §5); host network, loopback only.
    docker run -d --name "$name" --hostname "$name" --add-host "$name:127.0.1.1" --network host \
        --cap-add SYS_ADMIN --security-opt seccomp=unconfined --stop-signal "$stop_signal" \
        --tmpfs /run --tmpfs /run/lock --tmpfs /tmp "${emulation_fixes[@]}" \
        -v /sys/fs/cgroup:/sys/fs/cgroup:ro --cgroupns host \
        -e container=docker "$image" /lib/systemd/systemd >/dev/null
fi
for _ in $(seq 1 60); do
    state=$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)
    case "$state" in running|degraded) break ;; esac
    sleep 1
done

# The demo's model: the tiny real German fixture model (files/fixture) stands in for the German
# 0.7.4 model, which cannot be downloaded here. A local artifact server on 127.0.0.1 serves it,
# so it takes the same staging path (checksummed download, cache, copy) as the real one.
mkdir -p "$demo/origin/fixture_model/1"
cp "$repo"/files/fixture/{output_graph.tflite,output_graph.pb,alphabet.txt} "$demo/origin/fixture_model/1/"
python3 "$repo/harness/artifact_server.py" --root "$demo/origin" --port "$port" --log "$demo/origin/requests.jsonl" \
    --pidfile "$demo/origin/server.pid" --daemon --replace
cat >"$demo/model.yml" <<YML
deepspeech_model_name: fixture_model
deepspeech_model_version: "1"
voice_appliance_mqtt_port: $mqtt_port  # the demo broker, apart from molecule's on the shared host network
wyoming_asr_bind_address: 127.0.0.1  # the demo Pi shares the host's network: Wyoming on loopback only
wyoming_asr_port: $wyoming_port
wyoming_asr_zeroconf_address: 127.0.0.1
voice_appliance_mqtt_systemd_credentials: false  # systemd in a container cannot hand the service a credential
voice_verify_max_rtf: 50.0  # qemu emulates the ARM CPU much slower than a real Pi; speed belongs in bench/
artifact_stage_catalog_overrides:
  fixture_model:
    "1":
      tflite: {url: "http://127.0.0.1:$port/fixture_model/1/output_graph.tflite"}
      pb: {url: "http://127.0.0.1:$port/fixture_model/1/output_graph.pb"}
      alphabet: {url: "http://127.0.0.1:$port/fixture_model/1/alphabet.txt"}
YML

cat >"$demo/pis.ini" <<INI
# Generated by harness/demo.sh: the emulated Pi, reached through docker instead of ssh.
[voice_assistants]
$name ansible_connection=community.docker.docker ansible_python_interpreter=/usr/bin/python3
INI

cd "$repo"
export ANSIBLE_PIPELINING=1
start=$(date +%s)
"$repo/.venv/bin/ansible-playbook" site.yml -i "$demo/pis.ini" -e "@$demo/model.yml" | tee "$demo/last-run.log"
took=$(( $(date +%s) - start ))

echo
echo "=== What the demo did ($took s) ==="
# Each task that changed something on the Pi, in order (a re-run lists none).
awk '/^TASK \[/ { sub(/^TASK \[/, ""); sub(/\] \**$/, ""); task = $0 }
     /^changed: / && !seen[task]++ { print "  changed: " task }' "$demo/last-run.log"
grep -A2 '^PLAY RECAP' "$demo/last-run.log" | tail -n +2 | sed 's/^/  /'
echo "The Pi: $(docker exec "$name" sh -c '. /etc/os-release; echo "$PRETTY_NAME, $(uname -m), $(python3 --version)"')"
echo "Service account: $(docker exec "$name" id voice)"
echo "DeepSpeech: $(docker exec "$name" /opt/voice-appliance/venv/bin/deepspeech --version 2>/dev/null | head -n1), $(docker exec "$name" python3 -c 'import json; f = json.load(open("/etc/ansible/facts.d/deepspeech.fact")); print(f["kind"], "wheel", f["filename"])')"
cp "$repo/files/fixture/das_ist_ein_test.wav" "$demo/"
docker cp "$demo/das_ist_ein_test.wav" "$name:/root/das_ist_ein_test.wav"
expected=$(cat "$repo/files/fixture/das_ist_ein_test.txt")
heard=$(docker exec "$name" /opt/voice-appliance/venv/bin/deepspeech --model /opt/voice-appliance/models/current/output_graph.tflite \
    --scorer /var/lib/voice-appliance/generated.scorer --audio /root/das_ist_ein_test.wav 2>/dev/null)
echo "Transcript of the recorded test WAV ('$expected'): '$heard'"
echo "Directories: $(docker exec "$name" ls -ld /opt/voice-appliance /var/lib/voice-appliance | awk '{print $1, $3, $NF}' | paste -sd';')"
echo "Look around: docker exec -it $name bash     Remove it: make demo-clean"
if [ "$heard" != "$expected" ]; then
    echo "demo: FAILED: the Pi heard '$heard', expected '$expected'" >&2
    exit 1
fi
