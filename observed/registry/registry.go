// Package registry asks an image registry where a tag points now: its
// digest and when the image was created, through go-containerregistry with
// the credentials docker's own config gives (credential helpers included).
// Nothing is pulled: the engine pulls what the desired state then names.
package registry

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Timeout bounds one question to a registry.
const Timeout = 30 * time.Second

// Tag is where a tag points at the registry.
type Tag struct {
	// Digest is the tag's manifest (or index) digest, "sha256:...": what
	// the image is pinned to ("repo:tag@sha256:...").
	Digest string
	// Created is the image's own created time for this machine's platform
	// (zero when the image does not say).
	Created time.Time
}

// Client asks registries; the zero value uses docker's config file.
type Client struct {
	// Keychain finds credentials; nil is docker's config
	// (authn.DefaultKeychain: ~/.docker/config.json and its helpers).
	Keychain authn.Keychain
}

// Tags lists the tags of image's repository.
func (c Client) Tags(ctx context.Context, image string) ([]string, error) {
	ref, err := name.NewTag(image, name.WeakValidation)
	if err != nil {
		return nil, fmt.Errorf("image %s: not a tag to follow: %w", image, err)
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	tags, err := remote.List(ref.Context(), remote.WithContext(ctx), remote.WithAuthFromKeychain(c.keys()))
	if err != nil {
		return nil, fmt.Errorf("listing the tags of %s: %w", ref.Context().String(), err)
	}
	if len(tags) > MaxTags {
		tags = tags[:MaxTags]
	}
	return tags, nil
}

// MaxTags bounds the tags of one repository looked at.
const MaxTags = 10000

func (c Client) keys() authn.Keychain {
	if c.Keychain == nil {
		return authn.DefaultKeychain
	}
	return c.Keychain
}

// Resolve asks where image's tag points. An image named by digest, or
// not by a tag at all, is an error: there is nothing to follow.
func (c Client) Resolve(ctx context.Context, image string) (Tag, error) {
	ref, err := name.NewTag(image, name.WeakValidation)
	if err != nil {
		return Tag{}, fmt.Errorf("image %s: not a tag to follow: %w", image, err)
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(c.keys()),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH})}
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return Tag{}, fmt.Errorf("asking %s for %s: %w", ref.Context().RegistryStr(), ref.String(), err)
	}
	t := Tag{Digest: desc.Digest.String()}
	img, err := desc.Image() // an index is resolved to this platform's image
	if err != nil {
		return t, nil // no image config to date it: callers date it by when they saw it
	}
	if cfg, err := img.ConfigFile(); err == nil && cfg.Created.Unix() > 0 {
		t.Created = cfg.Created.Time
	}
	return t, nil
}
