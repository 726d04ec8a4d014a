package gitsource

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
)

// Auth names the files credentials are read from: they are never given on
// the command line (where ps shows them) and never printed.
type Auth struct {
	// TokenFile holds a token sent over HTTPS as the password of Username
	// (GitHub and Gitea take a personal access token so).
	TokenFile string
	// Username goes with the token; "git" when empty.
	Username string
	// SSHKeyFile is a private key (without a passphrase) for ssh URLs.
	SSHKeyFile string
	// KnownHostsFile holds the server's host key for ssh URLs: without it
	// an ssh source is refused rather than trusting whatever answers.
	KnownHostsFile string
}

// MaxCredentialBytes bounds a token or key file.
const MaxCredentialBytes = 64 << 10

// method turns the files into go-git's auth method for rawURL's transport.
func (a Auth) method(rawURL string) (transport.AuthMethod, error) {
	ep, err := transport.NewEndpoint(rawURL)
	if err != nil {
		return nil, fmt.Errorf("--git %s: %w", Redacted(rawURL), err)
	}
	switch ep.Protocol {
	case "ssh":
		if a.TokenFile != "" {
			return nil, errors.New("--git-token-file: a token is for https URLs; an ssh URL takes --git-ssh-key-file")
		}
		if a.SSHKeyFile == "" {
			return nil, fmt.Errorf("--git %s: an ssh URL needs --git-ssh-key-file", Redacted(rawURL))
		}
		if a.KnownHostsFile == "" {
			return nil, fmt.Errorf("--git %s: an ssh URL needs --git-known-hosts (the server's host key), so that no other server is trusted", Redacted(rawURL))
		}
		user := ep.User
		if user == "" {
			user = "git"
		}
		key, err := readCredential(a.SSHKeyFile, "--git-ssh-key-file")
		if err != nil {
			return nil, err
		}
		pk, err := gitssh.NewPublicKeys(user, key, "")
		if err != nil {
			return nil, fmt.Errorf("--git-ssh-key-file %s: not a private key without a passphrase", a.SSHKeyFile)
		}
		cb, err := gitssh.NewKnownHostsCallback(a.KnownHostsFile)
		if err != nil {
			return nil, fmt.Errorf("--git-known-hosts %s: %w", a.KnownHostsFile, err)
		}
		pk.HostKeyCallback = cb
		return pk, nil
	case "http", "https":
		if a.SSHKeyFile != "" || a.KnownHostsFile != "" {
			return nil, errors.New("--git-ssh-key-file and --git-known-hosts are for ssh URLs; an https URL takes --git-token-file")
		}
		if a.TokenFile == "" {
			return nil, nil
		}
		raw, err := readCredential(a.TokenFile, "--git-token-file")
		if err != nil {
			return nil, err
		}
		tok := strings.TrimSpace(string(raw))
		if tok == "" || strings.ContainsAny(tok, "\r\n") {
			return nil, fmt.Errorf("--git-token-file %s: want one line holding the token", a.TokenFile)
		}
		user := a.Username
		if user == "" {
			user = "git"
		}
		return &githttp.BasicAuth{Username: user, Password: tok}, nil
	default:
		if a.TokenFile != "" || a.SSHKeyFile != "" {
			return nil, fmt.Errorf("--git %s: credentials are for https and ssh URLs", Redacted(rawURL))
		}
		return nil, nil
	}
}

// Secrets are the credential values, for the caller's masking of
// everything printed.
func (a Auth) Secrets() []string {
	if a.TokenFile == "" {
		return nil
	}
	tok, err := readCredential(a.TokenFile, "--git-token-file")
	if err != nil {
		return nil
	}
	return []string{strings.TrimSpace(string(tok))}
}

// readCredential reads a regular file of at most MaxCredentialBytes,
// naming the flag, never the content, when it fails.
func readCredential(name, flag string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s: not a regular file", flag, name)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxCredentialBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	if len(b) > MaxCredentialBytes {
		return nil, fmt.Errorf("%s %s: over %d KiB", flag, name, MaxCredentialBytes>>10)
	}
	return b, nil
}
