# EarthGPT-X for QGIS. `make test` installs everything from nothing on Debian 12 and runs the suite;
# `make run` runs the demo. A second run reuses what is installed.
SHELL := /bin/bash
SYSTEM_PYTHON := /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := qgis python3-qgis xvfb
STAMP := $(VENV)/.installed
DEMO_RASTER := tests/data/optical/RGB.byte.tif
OUT := out

.PHONY: test run system-deps venv fixtures bench clean profile screenshot package translations

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

test: fixtures
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

bench: fixtures
	$(PY) bench/chip_read.py

# Until the plugin lands, `make run` shows where a prompt lands on a sample raster: JSON on stdout
# and the model-ready chip with the prompt marked in out/chip.png.
run: $(STAMP)
	@mkdir -p $(OUT)
	$(PY) -m model_backend locate $(DEMO_RASTER) --geometry "POLYGON ((-77.9 24.1, -77.6 24.1, -77.6 24.4, -77.9 24.4, -77.9 24.1))" --crs EPSG:4326 --chip-png $(OUT)/chip.png

clean:
	rm -rf $(VENV) tests/data/derived $(OUT) .pytest_cache .hypothesis

QGIS_PROFILES := out/qgis-profiles

# the plugin in a QGIS profile of this checkout, enabled, using .venv as its worker environment
profile: $(STAMP)
	@/usr/bin/python3 tools/qgis_profile.py $(QGIS_PROFILES) $(VENV)/bin/python >/dev/null

screenshot: profile
	EARTHGPTX_ROOT=$(CURDIR) timeout 300 xvfb-run -a -s "-screen 0 1600x1000x24" qgis --profiles-path $(QGIS_PROFILES) --profile default --nologo \
	  --noversioncheck --code tools/screenshot.py
	@test -s docs/screenshot.png && echo "docs/screenshot.png written"

package: translations
	/usr/bin/python3 tools/package.py dist
