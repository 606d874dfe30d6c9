package puppetdb

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/baton-run/baton/shared/orchestrator"
)

// Config says where PuppetDB is and how to reach it.
type Config struct {
	// URL is PuppetDB's base URL: https://puppetdb.example.com:8081 (PuppetDB's TLS port,
	// with a certificate from Puppet's CA), or http://127.0.0.1:8080 (its plain port, which
	// has no authentication: accepted on a loopback address only).
	URL string
	// CAFile is a PEM file of the CA(s) that signed PuppetDB's certificate (Puppet's CA:
	// /etc/puppetlabs/puppet/ssl/certs/ca.pem, Debian: /var/lib/puppet/ssl/certs/ca.pem);
	// empty: the system's roots. CAPEM is the same as PEM text (for environments without
	// files, such as Lambda); at most one of them.
	CAFile string
	CAPEM  []byte
	// CertFile and KeyFile are a client certificate and its key (PEM), both or neither;
	// PuppetDB admits the certnames listed in its certificate-allowlist.
	CertFile, KeyFile string
	// Timeout bounds one query, answer included (default DefaultTimeout).
	Timeout time.Duration
	// MaxNodes caps the certnames one query may return (default orchestrator.MaxScopeNodes);
	// past it, Certnames fails instead of reading on.
	MaxNodes int
	// Transport replaces the HTTP transport (tests); the TLS fields are then ignored.
	Transport http.RoundTripper
}

// Defaults of Config.
const (
	DefaultTimeout = 30 * time.Second
	// maxErrorBody and maxFactsBody bound what is read of an error answer and of one node's
	// facts.
	maxErrorBody = 64 << 10
	maxFactsBody = 16 << 20
	// maxSample bounds the result row quoted in the error for results without certnames.
	maxSample = 200
)

// Client queries one PuppetDB. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	http     *http.Client
	timeout  time.Duration
	maxNodes int
}

// New checks cfg and returns a Client; it does not contact PuppetDB.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("puppetdb: URL %q: want https://host:8081 or http://127.0.0.1:8080", cfg.URL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("puppetdb: URL %q: no user, query or fragment", cfg.URL)
	}
	if u.Scheme == "http" && !loopback(u.Hostname()) {
		return nil, fmt.Errorf("puppetdb: URL %q: PuppetDB's plain-HTTP port has no authentication; use https (port 8081) on an address that is not loopback", cfg.URL)
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("puppetdb: a client certificate needs its key and a key its certificate")
	}
	if cfg.CAFile != "" && len(cfg.CAPEM) > 0 {
		return nil, errors.New("puppetdb: give the CA as a file or as PEM text, not both")
	}
	if u.Scheme == "http" && (cfg.CAFile != "" || len(cfg.CAPEM) > 0 || cfg.CertFile != "") {
		return nil, fmt.Errorf("puppetdb: URL %q is plain HTTP, but TLS files were given", cfg.URL)
	}
	c := &Client{base: u, timeout: cfg.Timeout, maxNodes: cfg.MaxNodes}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxNodes <= 0 {
		c.maxNodes = orchestrator.MaxScopeNodes
	}
	rt := cfg.Transport
	if rt == nil {
		tc, err := tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = tc
		t.Proxy = nil // PuppetDB is inside the network; a proxy would see the query and the client certificate's use
		rt = t
	}
	c.http = &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return c, nil
}

func tlsConfig(cfg Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	ca := cfg.CAPEM
	if cfg.CAFile != "" {
		b, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("puppetdb: CA file: %w", err)
		}
		ca = b
	}
	if len(ca) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, errors.New("puppetdb: the CA holds no PEM certificate")
		}
		tc.RootCAs = pool
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("puppetdb: client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// URL is PuppetDB's base URL, for logs.
func (c *Client) URL() string { return c.base.String() }

// Certnames runs pql on PuppetDB and returns the certnames of its results, sorted and
// without duplicates (facts[certname] { ... } has one result per fact). Every result must
// carry a string certname field, as inventory[certname], nodes[certname], facts[certname]
// or resources[certname] queries do; a query whose results do not is refused with a
// query-error. More than MaxNodes certnames is a validation-error, checked as the answer is
// read. PuppetDB rejecting the query (400) is a query-error with its message; PuppetDB not
// answering, or failing, within the timeout is a puppetdb-error.
func (c *Client) Certnames(ctx context.Context, pql string) ([]string, error) {
	if strings.TrimSpace(pql) == "" {
		return nil, queryError(pql, "The query is empty", nil)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	body, err := json.Marshal(map[string]string{"query": pql})
	if err != nil {
		return nil, fmt.Errorf("encode query: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint("/pdb/query/v4"), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("puppetdb query: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.do(req, pql)
	if err != nil {
		return nil, err
	}
	defer drainClose(resp.Body)
	names, err := c.readCertnames(resp.Body, pql)
	if err != nil && ctx.Err() != nil {
		return nil, c.unavailable(pql, ctx.Err())
	}
	return names, err
}

// readCertnames decodes the result array one row at a time, keeping only the certnames.
func (c *Client) readCertnames(r io.Reader, pql string) ([]string, error) {
	dec := json.NewDecoder(r)
	bad := func(err error) error {
		return c.failed(pql, 0, fmt.Sprintf("PuppetDB's answer is not a JSON array of results: %v", err), err)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, bad(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, bad(fmt.Errorf("starts with %v", tok))
	}
	seen := map[string]struct{}{}
	for dec.More() {
		var row json.RawMessage
		if err := dec.Decode(&row); err != nil {
			return nil, bad(err)
		}
		var rec struct {
			Certname *string `json:"certname"`
		}
		if err := json.Unmarshal(row, &rec); err != nil || rec.Certname == nil || *rec.Certname == "" {
			sample := string(row)
			if len(sample) > maxSample {
				sample = sample[:maxSample] + "…"
			}
			return nil, queryError(pql, "The query's results carry no certname, so they do not name nodes: select nodes with a certname field, e.g. inventory[certname] { ... } or resources[certname] { ... }",
				map[string]any{"result": sample})
		}
		if _, dup := seen[*rec.Certname]; dup {
			continue
		}
		if len(seen) == c.maxNodes {
			return nil, &orchestrator.Error{Kind: orchestrator.KindValidation,
				Msg:     fmt.Sprintf("The query resolves to more than %d nodes in PuppetDB; a job may target at most %d: split it into several jobs", c.maxNodes, c.maxNodes),
				Details: map[string]any{"field": "scope", "query": pql, "limit": c.maxNodes}}
		}
		seen[*rec.Certname] = struct{}{}
	}
	if _, err := dec.Token(); err != nil {
		return nil, bad(err)
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// Facts returns the facts PuppetDB holds for certname (GET
// /pdb/query/v4/nodes/<certname>/facts), as one object of name → value with numbers as
// json.Number. found is false when PuppetDB knows no facts for the node.
func (c *Client) Facts(ctx context.Context, certname string) (facts map[string]any, found bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint("/pdb/query/v4/nodes/"+url.PathEscape(certname)+"/facts"), nil)
	if err != nil {
		return nil, false, fmt.Errorf("puppetdb facts: %w", err)
	}
	resp, err := c.do(req, "")
	if oe, ok := orchestrator.AsError(err); ok && oe.Details["puppetdb_status"] == http.StatusNotFound {
		return nil, false, nil // "No information is known about node ..."
	}
	if err != nil {
		return nil, false, err
	}
	defer drainClose(resp.Body)
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxFactsBody))
	dec.UseNumber()
	var rows []struct {
		Name  string `json:"name"`
		Value any    `json:"value"`
	}
	if err := dec.Decode(&rows); err != nil {
		if ctx.Err() != nil {
			return nil, false, c.unavailable("", ctx.Err())
		}
		return nil, false, c.failed("", 0, fmt.Sprintf("PuppetDB's facts of %s are not a JSON array of facts: %v", certname, err), err)
	}
	if len(rows) == 0 {
		return nil, false, nil
	}
	facts = make(map[string]any, len(rows))
	for _, r := range rows {
		facts[r.Name] = r.Value
	}
	return facts, true, nil
}

func (c *Client) endpoint(path string) string {
	return c.base.String() + path
}

// do sends req and returns a 200 answer; anything else is an error: 400 a query-error (when
// pql is set), other statuses and transport failures a puppetdb-error.
func (c *Client) do(req *http.Request, pql string) (*http.Response, error) {
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.unavailable(pql, err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer drainClose(resp.Body)
	msg := errorMessage(resp)
	if resp.StatusCode == http.StatusBadRequest && pql != "" {
		return nil, queryError(pql, "PuppetDB rejected the query: "+msg, map[string]any{"puppetdb_status": resp.StatusCode, "puppetdb_message": msg})
	}
	return nil, c.failed(pql, resp.StatusCode, fmt.Sprintf("PuppetDB answered %s: %s", resp.Status, msg), nil)
}

// errorMessage is PuppetDB's explanation: the text of a text/plain answer, or the "error"
// field of a JSON one.
func errorMessage(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var j struct {
		Error string `json:"error"`
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && json.Unmarshal(b, &j) == nil && j.Error != "" {
		return strings.TrimSpace(j.Error)
	}
	msg := strings.TrimSpace(string(b))
	if msg == "" {
		msg = "(no message)"
	}
	return msg
}

func queryError(pql, msg string, details map[string]any) error {
	d := map[string]any{"query": pql}
	for k, v := range details {
		d[k] = v
	}
	return &orchestrator.Error{Kind: orchestrator.KindQueryError, Msg: msg, Details: d}
}

// failed is a puppetdb-error: PuppetDB answered, but not with results.
func (c *Client) failed(pql string, status int, msg string, cause error) error {
	d := map[string]any{"puppetdb": c.base.String()}
	if pql != "" {
		d["query"] = pql
	}
	if status != 0 {
		d["puppetdb_status"] = status
	}
	return &orchestrator.Error{Kind: orchestrator.KindPuppetDBError, Msg: msg, Details: d, Err: cause}
}

// unavailable is a puppetdb-error for a query PuppetDB did not answer.
func (c *Client) unavailable(pql string, err error) error {
	msg := fmt.Sprintf("PuppetDB at %s could not be reached: %v", c.base.String(), err)
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		msg = fmt.Sprintf("PuppetDB at %s did not answer within %s", c.base.String(), c.timeout)
	}
	return c.failed(pql, 0, msg, err)
}

func drainClose(r io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r, maxErrorBody))
	r.Close()
}
