// Package web is the chat's web page: index.html, style.css and app.js, the
// bundle esbuild builds from src/ with the TypeScript client (clients/ts)
// and the code buf generates into gen/. The bundle is committed, so the
// chat server embeds and serves the page without npm; CI builds it again
// and fails if it differs.
//
// Rebuild it after changing src/ or the proto:
//
//	cd clients/ts && npm ci && npm run build:web
package web

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Config is what the page reads at config.json: the WebSocket URLs of the
// chat server, tried in turn.
type Config struct {
	Servers []string `json:"servers"`
}

// Handler serves the page, and at config.json what config returns for the
// request (which the page's URLs may depend on: its host, its scheme).
func Handler(config func(*http.Request) Config) http.Handler {
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	fileServer := http.FileServerFS(files)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /config.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(config(r))
	})
	mux.Handle("GET /", fileServer)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'")
		mux.ServeHTTP(w, r)
	})
}
