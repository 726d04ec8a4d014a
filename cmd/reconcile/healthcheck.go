package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// healthcheckTimeout bounds one probe: an engine's healthcheck has its own
// timeout, and a probe must answer inside it.
const healthcheckTimeout = 5 * time.Second

func newHealthcheckCommand(g *globals) *cobra.Command {
	var addr string
	var live bool
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Probe a running daemon: exit 0 when it is ready (for a container's HEALTHCHECK)",
		Long: `healthcheck asks the daemon listening on --listen whether it is ready
(connected to the engine and synced once: /readyz), or with --live only
whether it serves (/healthz). It is the healthcheck of reconcile's own
container image, which has no shell and no curl.

Exit code: 0 ready (or alive), 1 not, with the daemon's reason.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/readyz"
			if live {
				path = "/healthz"
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), healthcheckTimeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
			if err != nil {
				return withCode(exitInput, fmt.Errorf("--listen %q: %w", addr, err))
			}
			if err := g.authorize(req); err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return withCode(exitNotConverged, fmt.Errorf("no daemon answers at %s: %w", addr, err))
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			if resp.StatusCode != http.StatusOK {
				return withCode(exitNotConverged, fmt.Errorf("%s%s: %s", addr, path, strings.TrimSpace(string(body))))
			}
			fmt.Fprintln(g.stdout, strings.TrimSpace(string(body)))
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "listen", "127.0.0.1:9090", "the address the daemon serves on (its --listen)")
	cmd.Flags().BoolVar(&live, "live", false, "only check that the daemon serves, not that it is ready")
	return cmd
}
