// Package console is Baton's web console: plain HTML, CSS and JavaScript embedded in the binary
// and served as an http.Handler in front of the HTTP API (by `baton serve` and the AWS api
// function alike). The page talks only to the API of its own origin, signed in with a session
// cookie (httpapi's /baton/v1/session); it is not an API of its own and holds no logic the API
// does not check again. The browser tests live in e2e/ (Playwright, run by make test-console).
package console
