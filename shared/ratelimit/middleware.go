package ratelimit

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// KindRateLimited is the error kind of a 429 answer, in the PE orchestrator's style.
const KindRateLimited = "puppetlabs.orchestrator/rate-limited"

// Middleware limits next by l, one bucket per key(r). A request over the limit gets 429 Too
// Many Requests with a Retry-After header (whole seconds, at least 1) and the JSON body
// {"kind":KindRateLimited,"msg":"Too many requests; retry after N seconds","details":{"retry_after":N}}.
// An empty key is a key like any other: every request key maps to "" shares one bucket.
func Middleware(l *Limiter, key func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok, wait := l.Allow(key(r))
		if ok {
			next.ServeHTTP(w, r)
			return
		}
		WriteRateLimited(w, wait)
	})
}

// RetryAfterSeconds is wait rounded up to whole seconds, at least 1, as Retry-After carries it.
func RetryAfterSeconds(wait time.Duration) int64 {
	s := int64(math.Ceil(wait.Seconds()))
	return max(s, 1)
}

// WriteRateLimited writes the 429 answer Middleware gives, for callers that limit by hand.
func WriteRateLimited(w http.ResponseWriter, wait time.Duration) {
	n := RetryAfterSeconds(wait)
	body, err := json.Marshal(struct {
		Kind    string         `json:"kind"`
		Msg     string         `json:"msg"`
		Details map[string]any `json:"details"`
	}{KindRateLimited, fmt.Sprintf("Too many requests; retry after %d seconds", n), map[string]any{"retry_after": n}})
	if err != nil { // a fixed struct of a string and an integer always encodes
		body = []byte(`{"kind":"` + KindRateLimited + `","msg":"Too many requests","details":{}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", strconv.FormatInt(n, 10))
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write(append(body, '\n'))
}

// ClientAddress keys a request by its client: "ip:" and the host part of r.RemoteAddr, an IPv6
// address by its /64 network (one host usually holds a whole /64, so a single address would
// let it take a fresh key per request). Behind a proxy, RemoteAddr is the proxy's address
// unless the server sets it from a trusted header first.
func ClientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return "ip:" + clientKey(a).String()
	}
	return "ip:" + host
}

// clientKey is the address a client is counted by: an IPv4 address itself, an IPv6 address's
// /64 network.
func clientKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is4() {
		return a
	}
	return netip.PrefixFrom(a.WithZone(""), 64).Masked().Addr()
}
