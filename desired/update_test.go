package desired

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUpdatePolicies(t *testing.T) {
	const check = "    healthcheck: {test: [CMD, /x], interval: 2s, retries: 2, start_period: 1s}\n"
	tests := []struct {
		name     string
		service  string
		update   UpdatePolicy
		rollback UpdatePolicy
		wantErr  string
	}{
		{name: "one replica, no update_config: compose's behaviour",
			service: "    image: x\n" + check,
			update:  UpdatePolicy{Parallelism: 1, Order: StopFirst, Monitor: 7 * time.Second, FailureAction: FailurePause}},
		{name: "two replicas without a healthcheck: compose's behaviour",
			service: "    image: x\n    deploy: {replicas: 2}\n",
			update:  UpdatePolicy{Parallelism: 1, Order: StopFirst, Monitor: DefaultMonitor, FailureAction: FailurePause}},
		{name: "two replicas with a healthcheck: one at a time, stop-first",
			service: "    image: x\n    deploy: {replicas: 2}\n" + check,
			update:  UpdatePolicy{Rolling: true, Parallelism: 1, Order: StopFirst, Monitor: 7 * time.Second, FailureAction: FailurePause}},
		{name: "update_config and rollback_config",
			service:  "    image: x\n    deploy:\n      update_config: {parallelism: 2, delay: 3s, order: start-first, monitor: 20s, failure_action: rollback, max_failure_ratio: 0.5}\n      rollback_config: {parallelism: 0, order: start-first}\n",
			update:   UpdatePolicy{Rolling: true, Parallelism: 2, Delay: 3 * time.Second, Order: StartFirst, Monitor: 20 * time.Second, FailureAction: FailureRollback, MaxFailureRatio: 0.5},
			rollback: UpdatePolicy{Rolling: true, Parallelism: 0, Order: StartFirst, Monitor: DefaultMonitor, FailureAction: FailureContinue}},
		{name: "an unknown order", service: "    image: x\n    deploy:\n      update_config:\n        order: sideways\n", wantErr: "compose.yaml:6"},
		{name: "an unknown failure action", service: "    image: x\n    deploy:\n      rollback_config:\n        failure_action: panic\n", wantErr: "deploy.rollback_config.failure_action"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearComposeEnv(t)
			dir := writeFiles(t, map[string]string{"compose.yaml": "services:\n  a:\n" + tt.service})
			d, err := Load(context.Background(), loader(t), Options{Files: []string{filepath.Join(dir, "compose.yaml")}, ProjectName: "p"})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s := d.Services["a"]
			if s.Update != tt.update {
				t.Errorf("update %+v\nwant   %+v", s.Update, tt.update)
			}
			if tt.rollback.Order != "" && s.Rollback != tt.rollback {
				t.Errorf("rollback %+v\nwant     %+v", s.Rollback, tt.rollback)
			}
		})
	}
}
