# The two set-up commands of the README:
#   make demo   build reconcile and the example's image, and run the daemon on the quickstart example
#   make test   run every test, the engine ones included (starting the engine if needed)
GO      ?= go
BIN     := bin/reconcile
EXAMPLE := examples/quickstart/compose.yaml
# staticcheck at a pinned version, from the Go module proxy (built on first use)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build image engine browser images example-images compose-cli demo demo-down lint test test-swarm test-cluster fuzz unit bench clean course-screenshots

all: build

build:
	$(GO) build -o $(BIN) ./cmd/reconcile

# reconcile's own container image, FROM scratch (deploy/image/Dockerfile)
image: engine
	$(GO) run ./deploy/image/mkimage

engine:
	./scripts/ensure-engine.sh

# chromium for the dashboard's browser test: installed under CI only
browser:
	./scripts/ensure-browser.sh

images: engine
	$(GO) run ./internal/testimage/mkimage

# The production example's images (Debian-package postgres, redis, nginx and
# the api): minutes on a cold machine, seconds once built.
example-images: engine
	./examples/production/build.sh

# The real compose CLI, at the SDK's version, for the parity tests: built
# from its own module in tools/compose, never part of reconcile, and stamped
# with its version as compose's release build stamps it (its containers'
# com.docker.compose.version label).
compose-cli:
	cd tools/compose && $(GO) build -ldflags "-X github.com/docker/compose/v5/internal.Version=$$($(GO) list -m -f '{{.Version}}' github.com/docker/compose/v5)" -o ../../bin/docker-compose github.com/docker/compose/v5/cmd

# The daemon in the foreground (Ctrl-C stops it and leaves the stack running).
demo: build images
	$(BIN) -f $(EXAMPLE) --listen 127.0.0.1:9090

demo-down:
	docker rm -f $$(docker ps -aq --filter label=com.docker.compose.project=quickstart) 2>/dev/null || true
	docker network rm quickstart_default 2>/dev/null || true

# go vet, a tidy go.mod and staticcheck: part of make test, so CI runs them.
lint:
	$(GO) vet ./...
	$(GO) mod tidy -diff
	$(GO) run $(STATICCHECK) ./...

# Engine tests fail, rather than skip, without an engine when CI=true. The
# images are built first, so that building them does not compete for the CPU
# with tests that measure how fast things recover.
# Screenshots and other test artifacts go to test-artifacts/.
test: lint engine browser images example-images compose-cli
	mkdir -p test-artifacts
	$(GO) test -count=1 -timeout 20m -skip '^TestSwarm' -artifacts -outputdir $(CURDIR)/test-artifacts ./...
	$(MAKE) test-swarm
	$(MAKE) fuzz

# The single-node Swarm tests (cmd/reconcile, TestSwarm*), after every other
# engine test and never beside one: the engine is made a swarm for them and
# left as it was found when they end, and on engine 20.10 leaving a swarm
# breaks name resolution in every compose project running then
# (moby/moby#45144).
test-swarm: engine images
	$(GO) test -count=1 -timeout 15m -run '^TestSwarm' ./cmd/reconcile/

# The screenshots of examples/production/README.md's "watch it recover",
# taken again by the browser test on the running production stack
# (TestWatchItRecover) and copied beside the README.
course-screenshots: engine browser example-images
	rm -rf test-artifacts/course && mkdir -p test-artifacts/course
	$(GO) test -count=1 -run '^TestWatchItRecover$$' -artifacts -outputdir $(CURDIR)/test-artifacts/course ./examples/production/
	find test-artifacts/course -name '*.png' -exec cp {} examples/production/screenshots/ \;

# The multi-node Swarm tests (cmd/reconcile/cluster_test.go, build tag
# cluster): a manager and two workers, each worker a dockerd in its own
# network namespace, made by scripts/swarm-cluster.sh and removed after.
# Needs root: it starts dockerd instances, so it runs only when asked.
test-cluster: engine images
	./scripts/swarm-cluster.sh up 2
	$(GO) test -count=1 -timeout 15m -tags cluster -run '^TestCluster' ./cmd/reconcile/; \
		status=$$?; ./scripts/swarm-cluster.sh down; exit $$status

# The loader fuzzed for a bounded time (desired.FuzzLoad; its seeds also run
# in every go test): any input loads or is refused in one line naming its
# file, in bounded time and memory, without a panic.
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) ./desired/

unit:
	$(GO) test -count=1 -short ./desired/ ./observed/ ./reconciler/ ./controllers/ ./internal/...

bench: build images
	./bench/once.sh
	./bench/cold.sh
	./bench/idle.sh
	./bench/recover.sh
	./bench/upstream.sh
	./bench/storm.sh
	./bench/hostile.sh
	./bench/faults.sh
	./bench/dashboard.sh
	./bench/agent.sh
	./bench/rollout.sh
	./bench/git.sh
	./bench/images.sh

clean:
	rm -rf bin
