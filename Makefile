# The two commands a new user needs: `make demo` and `make test` (both set the machine up first).
SHELL := /bin/bash
VENV  := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_PIPELINING := 1

.PHONY: setup demo demo-clean test lint syntax pytest molecule molecule-default molecule-armhf docs

setup:            ## host packages, docker engine, binfmt, controller venv, Pi images (idempotent)
	bash harness/setup.sh

demo: setup       ## converge one emulated armhf Pi with site.yml and say what was done
	bash harness/demo.sh

demo-clean:       ## remove the demo Pi
	bash harness/demo.sh clean

test: setup lint syntax pytest molecule   ## everything CI runs

lint:
	yamllint .
	ansible-lint
	python scripts/role_docs.py --check

syntax:
	ansible-playbook --syntax-check -i inventory/pis.ini.example site.yml

# pytest exits 5 when it collected nothing; that is not a failure of this suite's checks.
pytest:
	pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; rc=0; fi; exit $$rc

molecule: molecule-default molecule-armhf

molecule-default:
	molecule test -s default

molecule-armhf:
	molecule test -s armhf

docs:             ## regenerate the roles' variable tables from argument_specs + defaults
	python scripts/role_docs.py
