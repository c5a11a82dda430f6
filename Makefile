# The two commands a new user needs: `make demo` and `make test` (both set the machine up first).
SHELL := /bin/bash
VENV  := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_PIPELINING := 1

.PHONY: setup demo demo-clean demo-ci demo-bullseye emulated test lint syntax pytest molecule molecule-default molecule-armhf molecule-arm64 molecule-fleet molecule-pull bench-fleet bench-converge docs

setup:            ## host packages, docker engine, binfmt, controller venv, Pi images (idempotent)
	bash harness/setup.sh

demo: setup       ## converge one emulated 64-bit trixie Pi with site.yml and say what was done
	bash harness/demo.sh

demo-clean:       ## remove the demo Pi
	bash harness/demo.sh clean

test: setup lint syntax pytest emulated   ## everything CI runs

# The demo exactly as a new user runs it, on a fresh demo Pi that is removed afterwards. `make test`
# runs the same script as the arm64 scenario's converge (molecule-arm64): a broken demo fails CI.
demo-ci:
	bash harness/demo.sh clean; rc=0; bash harness/demo.sh || rc=$$?; bash harness/demo.sh clean; exit $$rc

lint:
	yamllint .
	ansible-lint
	python scripts/role_docs.py --check

syntax:
	for playbook in site.yml playbooks/*.yml; do ansible-playbook --syntax-check -i inventory/pis.ini.example $$playbook || exit 1; done

# pytest exits 5 when it collected nothing; that is not a failure of this suite's checks. One worker per core
# (pytest-xdist), each test file whole on one worker, so a file's shared fixtures are made once.
pytest:
	pytest -n auto --dist loadfile; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; rc=0; fi; exit $$rc

molecule: molecule-default molecule-pull molecule-fleet molecule-arm64 molecule-armhf

# Every molecule scenario, in two lanes at once (the ARM Pis under qemu beside the amd64 ones); see the script.
emulated:
	MAKE="$(MAKE)" bash harness/lanes.sh

molecule-default:
	molecule test -s default

molecule-armhf:
	molecule test -s armhf

molecule-fleet:   ## ten amd64 Pis + one armhf: rollout in batches with a damaged model on one Pi, the fleet report
	molecule test -s fleet

molecule-arm64:   ## one emulated trixie arm64 Pi (64-bit Raspberry Pi OS trixie) made by the demo's script: idempotence, --check, verify
	molecule test -s arm64

demo-bullseye:    ## the demo on an emulated 32-bit Raspberry Pi OS bullseye Pi (Python 3.9), then removed (not in `test`)
	PI_VOICE_IMAGES=bullseye-armhf bash harness/setup.sh
	export PI_VOICE_DEMO_IMAGE=pi-voice/debian:bullseye-armhf PI_VOICE_DEMO_NAME=pi-voice-bullseye PI_VOICE_DEMO_PORT=8739; \
	bash harness/demo.sh clean; rc=0; bash harness/demo.sh || rc=$$?; bash harness/demo.sh clean; exit $$rc

molecule-pull:    ## one amd64 Pi converges itself with ansible-pull from a local git repository
	molecule test -s pull

bench-fleet:      ## cold/warm converge and rollout wall time by fleet size and forks (writes bench/fleet.md; not part of test)
	nice -n 19 python bench/fleet_bench.py

bench-converge:   ## one amd64 and one armhf Pi: cold vs warm converge, task executions and what reaches the Pi, without and with Mitogen (writes bench/converge.md; not part of test)
	nice -n 19 python bench/converge_bench.py --mitogen

docs:             ## regenerate the roles' variable tables from argument_specs + defaults
	python scripts/role_docs.py
