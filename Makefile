# Two commands do all the set-up on a fresh machine:
#   make demo   venv, install, migrate an embedded SQLite database, scan a real image, print its inventory
#   make test   venv, install, run the test suite (uses the local PostgreSQL and Redis)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared
IMAGE ?= $(SHARED)/corpus/debian12-app.docker.tar
FORMAT ?= table

.PHONY: demo test lint bench venv clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

venv: $(VENV)/.installed

FEEDS ?= $(SHARED)/feeds
# Feeds the demo loads into the embedded database, as `source=path` under $(FEEDS).
DEMO_FEEDS ?= osv=osv-go/all.zip osv=osv-pypi/pypa-advisory-database-vulns.tar.gz osv=osv-ghsa/ghsa-advisories.tar.gz \
	alpine-secdb=alpine-secdb/yaml debian-tracker=debian-tracker-derived/bookworm.json \
	kev=kev/known_exploited_vulnerabilities.json epss=samples/epss/claircore-data.csv

demo: venv
	$(PY) manage.py migrate --noinput --verbosity 0
	@for feed in $(DEMO_FEEDS); do \
	  $(PY) manage.py sync_advisories --source $${feed%%=*} --path $(FEEDS)/$${feed#*=} || exit 1; \
	done
	$(PY) manage.py scan $(IMAGE) --format $(FORMAT)

test: venv
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null

bench: venv
	$(PY) bench/analysis.py
	$(PY) bench/advisories.py
	$(PY) bench/matching.py
	$(PY) bench/scan.py
	$(PY) bench/service.py

clean:
	rm -rf $(VENV) vigil.sqlite3
