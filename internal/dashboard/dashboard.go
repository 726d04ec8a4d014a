// Package dashboard is the page the daemon serves at / with --listen: the
// project's services laid out by dependency, each replica a mark whose
// shape, colour and label say its state, and a timeline of the daemon's
// records, both live over Server-Sent Events (/status/stream, /events).
// It is plain HTML, CSS and JavaScript shipped inside the binary: no CDN,
// no build step. It only reads: nothing on the page makes the daemon act.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

// Handler serves the page and its assets.
func Handler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'")
		files.ServeHTTP(w, r)
	})
}
