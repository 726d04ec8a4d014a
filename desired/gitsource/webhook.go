package gitsource

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
)

// MaxWebhookBytes bounds a webhook's body: a push event of many commits is
// a few hundred KiB; GitHub caps its payloads at 25 MB, and a body over
// this is refused unread rather than held in memory.
const MaxWebhookBytes = 5 << 20

// The headers forges sign a webhook's body with: HMAC-SHA256 of the body
// keyed by the secret set on the hook, hex, GitHub's with "sha256=" before.
const (
	githubSignature = "X-Hub-Signature-256"
	giteaSignature  = "X-Gitea-Signature"
	gogsSignature   = "X-Gogs-Signature"
)

// ErrBadSignature says a webhook's body does not carry a valid signature.
var ErrBadSignature = errors.New("webhook signature missing or wrong")

// Verify checks body against the signature h carries, as GitHub signs
// (X-Hub-Signature-256: sha256=HEX) or Gitea and Gogs do (HEX).
func Verify(secret []byte, h http.Header, body []byte) error {
	var sig string
	switch {
	case h.Get(githubSignature) != "":
		v, ok := strings.CutPrefix(h.Get(githubSignature), "sha256=")
		if !ok {
			return ErrBadSignature
		}
		sig = v
	case h.Get(giteaSignature) != "":
		sig = h.Get(giteaSignature)
	case h.Get(gogsSignature) != "":
		sig = h.Get(gogsSignature)
	default:
		return ErrBadSignature
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return ErrBadSignature
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return ErrBadSignature
	}
	return nil
}

// Webhook answers a forge's push hook: a POST whose body is signed with
// secret makes poke be called (a fetch now rather than at the next poll)
// and is answered 202; anything else is refused without poking. The body
// is not otherwise read: what is applied is what the remote's ref says
// when fetched, never what a request claims.
func Webhook(secret []byte, poke func()) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST a forge's push event here", http.StatusMethodNotAllowed)
			return
		}
		if len(secret) == 0 {
			http.Error(w, "no --git-webhook-secret-file: webhooks are refused", http.StatusForbidden)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxWebhookBytes+1))
		if err != nil {
			http.Error(w, "reading the body", http.StatusBadRequest)
			return
		}
		if len(body) > MaxWebhookBytes {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if err := Verify(secret, r.Header, body); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if r.Header.Get("X-GitHub-Event") == "ping" {
			w.WriteHeader(http.StatusOK)
			return
		}
		poke()
		w.WriteHeader(http.StatusAccepted)
	})
}
