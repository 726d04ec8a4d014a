package gitsource

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

func TestWebhook(t *testing.T) {
	const secret, body = "hook-secret", `{"ref":"refs/heads/main"}`
	for _, tc := range []struct {
		name    string
		method  string
		headers map[string]string
		body    string
		secret  string
		code    int
		poked   bool
	}{
		{"github", "POST", map[string]string{"X-Hub-Signature-256": "sha256=" + sign(secret, body), "X-GitHub-Event": "push"}, body, secret, 202, true},
		{"gitea", "POST", map[string]string{"X-Gitea-Signature": sign(secret, body)}, body, secret, 202, true},
		{"gogs", "POST", map[string]string{"X-Gogs-Signature": sign(secret, body)}, body, secret, 202, true},
		{"github ping", "POST", map[string]string{"X-Hub-Signature-256": "sha256=" + sign(secret, body), "X-GitHub-Event": "ping"}, body, secret, 200, false},
		{"unsigned", "POST", nil, body, secret, 401, false},
		{"other secret", "POST", map[string]string{"X-Gitea-Signature": sign("guess", body)}, body, secret, 401, false},
		{"body changed", "POST", map[string]string{"X-Hub-Signature-256": "sha256=" + sign(secret, body)}, body + " ", secret, 401, false},
		{"github without prefix", "POST", map[string]string{"X-Hub-Signature-256": sign(secret, body)}, body, secret, 401, false},
		{"not hex", "POST", map[string]string{"X-Gitea-Signature": "zz"}, body, secret, 401, false},
		{"GET", "GET", nil, "", secret, 405, false},
		{"no secret set", "POST", map[string]string{"X-Gitea-Signature": sign("", body)}, body, "", 403, false},
		{"too large", "POST", map[string]string{"X-Gitea-Signature": "00"}, strings.Repeat("x", MaxWebhookBytes+1), secret, 413, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			poked := false
			h := Webhook([]byte(tc.secret), func() { poked = true })
			req := httptest.NewRequest(tc.method, "/hooks/git", strings.NewReader(tc.body))
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.code || poked != tc.poked {
				t.Errorf("%d poked=%v, want %d poked=%v (%s)", rec.Code, poked, tc.code, tc.poked, rec.Body)
			}
		})
	}
	if err := Verify([]byte(secret), http.Header{}, []byte(body)); err == nil {
		t.Error("no signature verified")
	}
}
