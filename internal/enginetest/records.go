package enginetest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/reconcile-dev/reconcile/internal/record"
)

// Records reads a daemon's /events at url (JSON lines; none yet is an
// empty list): the record history the tests assert on.
func Records(t testing.TB, url string) []record.Record {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	var out []record.Record
	for line := range strings.SplitSeq(string(body), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		var r record.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s line %q: %v", url, line, err)
		}
		out = append(out, r)
	}
	return out
}
