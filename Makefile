# Two commands: `make run` (install + run the app) and `make test` (install + run the tests).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY_STAMP := $(VENV)/.requirements-installed
JS_STAMP := static/vendor/.npm-installed

.PHONY: run test install bench-ledger bench-fanout bench-tips bench-metering bench-dashboard bench-webhooks bench-hls-auth bench-chat bench-tips-room bench-fanout-10k bench-rooms bench-joins bench-tips-viewers clean

run: install
	$(BIN)/python -m app.devserver

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

install: $(PY_STAMP) $(JS_STAMP)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)

$(PY_STAMP): requirements.txt $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	@touch $@

$(JS_STAMP): package.json package-lock.json scripts/vendor.js
	npm ci --no-audit --no-fund
	@touch $@

bench-ledger: install
	$(BIN)/python bench/ledger.py

bench-fanout: install
	$(BIN)/python bench/fanout.py

bench-tips: install
	$(BIN)/python bench/tips_http.py

bench-metering: install
	$(BIN)/python bench/metering.py

bench-dashboard: install
	$(BIN)/python bench/dashboard.py

bench-webhooks: install
	$(BIN)/python bench/webhooks.py

bench-hls-auth: install
	$(BIN)/python bench/hls_auth.py

bench-chat: install
	$(BIN)/python bench/chat.py

bench-tips-room: install
	$(BIN)/python bench/tips_http.py --room

bench-fanout-10k: install
	$(BIN)/python bench/fanout.py --viewers 10,10000 --instances 2

bench-rooms: install
	$(BIN)/python bench/rooms.py

bench-joins: install
	$(BIN)/python bench/joins.py

bench-tips-viewers: install
	$(BIN)/python bench/tips_http.py --viewers 1000

clean:
	rm -rf $(VENV) node_modules static/vendor
