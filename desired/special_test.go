package desired

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSpecialFilesAreRefusedAndNothingHangs puts a FIFO where compose reads
// a file: each load ends, promptly, with one line naming the file.
func TestSpecialFilesAreRefusedAndNothingHangs(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		fifo    string // made a FIFO, relative to the project directory
		opts    func(dir string) Options
		want    []string
		service string
	}{
		{name: "compose file", fifo: "compose.yaml", want: []string{"compose.yaml", "not a regular file"}},
		{name: ".env", files: map[string]string{"compose.yaml": "services:\n  a: {image: x}\n"}, fifo: ".env", want: []string{".env", "not a regular file"}},
		{name: "--env-file", files: map[string]string{"compose.yaml": "services:\n  a: {image: x}\n"}, fifo: "my.env",
			opts: func(dir string) Options {
				return Options{Files: []string{filepath.Join(dir, "compose.yaml")}, EnvFiles: []string{filepath.Join(dir, "my.env")}}
			}, want: []string{"my.env", "not a regular file"}},
		{name: "service env_file", files: map[string]string{"compose.yaml": "services:\n  a:\n    image: x\n    env_file: app.env\n"}, fifo: "app.env",
			want: []string{"compose.yaml:4", "app.env", "not a regular file"}, service: "a"},
		{name: "include", files: map[string]string{"compose.yaml": "include: [inc.yaml]\nservices:\n  a: {image: x}\n"}, fifo: "inc.yaml",
			want: []string{"inc.yaml", "not a regular file"}},
		// an interpolated path is only known to compose: the deadline ends it
		{name: "interpolated include", files: map[string]string{"compose.yaml": "include: [\"${INC}\"]\nservices:\n  a: {image: x}\n", ".env": "INC=inc.yaml\n"}, fifo: "inc.yaml",
			want: []string{"compose.yaml", "did not end within"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearComposeEnv(t)
			dir := writeFiles(t, tt.files)
			fifo := filepath.Join(dir, tt.fifo)
			if err := syscall.Mkfifo(fifo, 0o644); err != nil {
				t.Fatal(err)
			}
			opts := Options{Files: []string{filepath.Join(dir, "compose.yaml")}}
			if tt.opts != nil {
				opts = tt.opts(dir)
			}
			opts.ProjectName, opts.Timeout = "p", 500*time.Millisecond
			start := time.Now()
			_, err := Load(context.Background(), loader(t), opts)
			took := time.Since(start)
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v (%T): want an *InputError", err, err)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if tt.service != "" && ie.Service != tt.service {
				t.Errorf("service %q, want %q", ie.Service, tt.service)
			}
			if took > 5*opts.Timeout {
				t.Errorf("the load took %s with a deadline of %s", took, opts.Timeout)
			}
		})
	}
}
