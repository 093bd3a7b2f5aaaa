package admin

// OpenAPI is the document served, for the tests of package admin_test.
var OpenAPI = openAPI

// Served returns "METHOD PATH" of each endpoint of h, a Handler.
func Served(h any) []string {
	var out []string
	for _, e := range h.(*handler).endpoints {
		out = append(out, e.method+" "+e.path)
	}
	return out
}
