// Package images tests build.sh: the local stand-ins for the official
// postgres, redis and nginx images, built from Debian's packages.
package images

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/enginetest"
)

func TestDebianImagesBehaveLikeTheOfficialOnes(t *testing.T) {
	enginetest.BuildScript(t, "./build.sh")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	p := enginetest.NewProject(t, `
services:
  db:
    image: reconcile-postgres:15
    environment: {POSTGRES_PASSWORD: secret, POSTGRES_DB: app}
    volumes: ["./init.sql:/docker-entrypoint-initdb.d/init.sql:ro", "pgdata:/var/lib/postgresql/data"]
    healthcheck: {test: ["CMD", "pg_isready", "-U", "postgres"], interval: 1s, timeout: 3s, retries: 30}
  cache:
    image: reconcile-redis:7
    healthcheck: {test: ["CMD-SHELL", "redis-cli ping | grep -q PONG"], interval: 1s, timeout: 3s, retries: 10}
  web:
    image: reconcile-nginx:1.22
    healthcheck: {test: ["CMD", "curl", "-fs", "http://127.0.0.1/"], interval: 1s, timeout: 3s, retries: 10}
volumes: {pgdata: {}}
`)
	// no IF NOT EXISTS: running it twice would fail and stop the database
	p.Write("init.sql", "CREATE TABLE users (id serial PRIMARY KEY, name text);\nINSERT INTO users (name) VALUES ('admin'), ('user1');\n")
	if out := p.Converge(3 * time.Minute); !out.Converged {
		t.Fatalf("not converged: %+v", out.Status)
	}
	ids := map[string]string{}
	for _, c := range p.Snapshot().Containers {
		ids[c.Service] = c.ID
	}
	run := func(service string, cmd ...string) string {
		t.Helper()
		res, err := engine.Exec(ctx, p.Engine.Client, ids[service], cmd)
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("%s %v: %+v %v", service, cmd, res, err)
		}
		return strings.TrimSpace(res.Stdout)
	}
	if got := run("db", "psql", "-U", "postgres", "-d", "app", "-tAc", "SELECT count(*) FROM users"); got != "2" {
		t.Errorf("init.sql rows: %q", got)
	}
	if got := run("cache", "redis-cli", "ping"); got != "PONG" {
		t.Errorf("redis ping: %q", got)
	}
	if got := run("web", "curl", "-fs", "http://127.0.0.1/"); !strings.Contains(got, "nginx") {
		t.Errorf("nginx page: %q", got)
	}

	// a restart finds the data directory initialised and runs nothing again
	timeout := 30
	if _, err := p.Engine.Client.ContainerRestart(ctx, ids["db"], client.ContainerRestartOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	if out := p.Converge(time.Minute); !out.Converged {
		t.Fatalf("not converged after restart: %+v", out.Status)
	}
	if got := run("db", "psql", "-U", "postgres", "-d", "app", "-tAc", "SELECT count(*) FROM users"); got != "2" {
		t.Errorf("rows after restart: %q", got)
	}
	if p.Inspect(ids["db"]).State.ExitCode != 0 || p.Inspect(ids["db"]).RestartCount != 0 {
		t.Errorf("db did not come back cleanly")
	}
}
