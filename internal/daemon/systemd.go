package daemon

import (
	"context"
	"log/slog"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// systemd speaks the service manager's notify protocol through go-systemd:
// READY=1 once the daemon has synced with the engine for the first time,
// WATCHDOG=1 at half the watchdog interval while it runs, STOPPING=1 on
// shutdown. Outside systemd (no NOTIFY_SOCKET) every call does nothing.
type systemd struct {
	log   *slog.Logger
	ready bool
}

// Ready says the first sync is done; later calls do nothing.
func (s *systemd) Ready() {
	if s.ready {
		return
	}
	s.ready = true
	if ok, err := sd.SdNotify(false, sd.SdNotifyReady); err != nil {
		s.log.Warn("telling systemd the daemon is ready", "error", err)
	} else if ok {
		s.log.Debug("told systemd the daemon is ready")
	}
}

// Stopping says the daemon is shutting down.
func (s *systemd) Stopping() {
	_, _ = sd.SdNotify(false, sd.SdNotifyStopping)
}

// Watchdog pings systemd's watchdog at half its interval until ctx ends: a
// daemon that hangs (or whose runtime deadlocks) stops pinging and systemd
// restarts it.
func (s *systemd) Watchdog(ctx context.Context) {
	interval, err := sd.SdWatchdogEnabled(false)
	if err != nil {
		s.log.Warn("reading systemd's watchdog interval", "error", err)
		return
	}
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = sd.SdNotify(false, sd.SdNotifyWatchdog)
		}
	}
}
