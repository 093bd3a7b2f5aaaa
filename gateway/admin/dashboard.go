package admin

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
)

// dashboardFiles are the dashboard's page, style and script: plain files,
// no build step, nothing fetched from elsewhere, so the page works offline.
//
//go:embed dashboard
var dashboardFiles embed.FS

// dashboardCSP lets the page load only its own files and talk only to this
// listener: no inline script or style, no frame around it (clickjacking of
// its controls).
const dashboardCSP = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'"

// dashboard serves GET /dashboard/ and its assets without a token: the page
// holds no data, and every API call it makes carries the token the operator
// typed in. An unknown asset gets the admin API's JSON 404.
func dashboard() http.HandlerFunc {
	root, err := fs.Sub(dashboardFiles, "dashboard")
	if err != nil {
		panic(err) // the embed's directory is fixed at build time
	}
	files := http.StripPrefix("/dashboard/", http.FileServerFS(root))
	return func(w http.ResponseWriter, r *http.Request) {
		name := path.Clean("/" + r.URL.Path[len("/dashboard"):])
		if name == "/" {
			name = "/index.html"
		}
		if _, err := fs.Stat(root, name[1:]); err != nil {
			writeError(w, http.StatusNotFound, "no dashboard file "+r.URL.Path)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", dashboardCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}
}
