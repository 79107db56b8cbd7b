# EarthGPT-X for QGIS. `make test` installs everything from nothing on Debian 12 and runs the suite;
# `make run` runs the demo. A second run reuses what is installed.
SHELL := /bin/bash
SYSTEM_PYTHON := /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := qgis python3-qgis xvfb qttools5-dev-tools default-jre-headless
STAMP := $(VENV)/.installed
DEMO_RASTER := tests/data/optical/5b90f92da0d7280005fab355_4310.tif
OUT := out

.PHONY: test test-fast run system-deps venv fixtures bench clean profile screenshot package translations

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): requirements.txt | system-deps
	@[ -x $(PY) ] || $(SYSTEM_PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@touch $(STAMP)

venv: $(STAMP)

fixtures: $(STAMP)
	@$(PY) tests/build_fixtures.py

# all tiers: tests/unit (no QGIS, no torch), tests/engine (tiny models, worker processes), tests/qgis
test: fixtures
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

# the unit tier alone, with torch, transformers and QGIS made unimportable (tests/conftest.py)
test-fast: fixtures
	EARTHGPTX_TEST_TIER=unit $(PY) -m pytest -p no:qgis -q tests/unit

bench: fixtures
	$(PY) bench/chip_read.py

# Install the plugin into a QGIS profile of this checkout (out/qgis-profiles), with .venv as the worker
# environment, and start QGIS with the plugin enabled, its dock open and a sample raster loaded.
# Without a display, QGIS runs under Xvfb for a few seconds and its window is saved to out/run.png.
run: profile
	@if [ -n "$$DISPLAY" ]; then \
	  EARTHGPTX_ROOT=$(CURDIR) qgis --profiles-path $(QGIS_PROFILES) --profile default --nologo --noversioncheck \
	    --code tools/open_dock.py $(DEMO_RASTER); \
	else \
	  echo "No display: starting QGIS under Xvfb as a check (on a desktop, make run opens QGIS)."; \
	  EARTHGPTX_ROOT=$(CURDIR) EARTHGPTX_HEADLESS=1 timeout 300 xvfb-run -a -s "-screen 0 1600x1000x24" qgis \
	    --profiles-path $(QGIS_PROFILES) --profile default --nologo --noversioncheck --code tools/open_dock.py \
	    $(DEMO_RASTER); \
	fi

clean:
	rm -rf $(VENV) tests/data/derived $(OUT) dist i18n/*.qm .pytest_cache .hypothesis .qgis-settings

QGIS_PROFILES := out/qgis-profiles

# the plugin in a QGIS profile of this checkout, enabled, using .venv as its worker environment
profile: $(STAMP)
	@/usr/bin/python3 tools/qgis_profile.py $(QGIS_PROFILES) $(VENV)/bin/python >/dev/null

screenshot: profile
	EARTHGPTX_ROOT=$(CURDIR) timeout 300 xvfb-run -a -s "-screen 0 1600x1000x24" qgis --profiles-path $(QGIS_PROFILES) --profile default --nologo \
	  --noversioncheck --code tools/screenshot.py
	@test -s docs/screenshot.png && echo "docs/screenshot.png written"

translations: system-deps
	@for ts in i18n/*.ts; do /usr/lib/qt5/bin/lrelease -silent "$$ts" -qm "$${ts%.ts}.qm" || exit 1; done
	@echo "compiled $$(ls i18n/*.qm | tr '\n' ' ')"

package: translations
	/usr/bin/python3 tools/package.py dist
