//go:build tools

// Package tools pins the compose CLI's module: `go build
// github.com/docker/compose/v5/cmd` in this directory builds `docker compose`
// at the version reconcile's SDK has.
package tools

import _ "github.com/docker/compose/v5/cmd"
