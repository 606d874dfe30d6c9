package puppetdb

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/orchestrator"
)

// fakePuppetDB answers POST /pdb/query/v4 with status, content type and body, after checking
// the request is the one PuppetDB's API expects; it records the query it was sent.
func fakePuppetDB(t *testing.T, status int, contentType, body string) (*httptest.Server, *string) {
	t.Helper()
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/pdb/query/v4" {
			t.Errorf("request %s %s, want POST /pdb/query/v4", r.Method, r.URL.Path)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q, want application/json", ct)
		}
		var req map[string]any
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("request body: %v", err)
		}
		if len(req) != 1 {
			t.Errorf("request body %v, want only a query field", req)
		}
		got, _ = req["query"].(string)
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, &got
}

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// wantError checks err is an *orchestrator.Error of kind whose message contains each of msg.
func wantError(t *testing.T, err error, kind string, msg ...string) *orchestrator.Error {
	t.Helper()
	oe, ok := orchestrator.AsError(err)
	if !ok {
		t.Fatalf("error %v (%T), want an *orchestrator.Error of kind %s", err, err, kind)
	}
	if oe.Kind != kind {
		t.Fatalf("kind %s (msg %q), want %s", oe.Kind, oe.Msg, kind)
	}
	for _, m := range msg {
		if !strings.Contains(oe.Msg, m) {
			t.Errorf("msg %q does not contain %q", oe.Msg, m)
		}
	}
	return oe
}

func TestCertnames(t *testing.T) {
	const subquery = `inventory[certname] { facts.os.family = "Debian" and resources { type = "Class" and title = "Nginx" } }`
	tests := []struct {
		name, query, body string
		want              []string
	}{
		{"inventory", subquery, `[{"certname":"web2.example.test"},{"certname":"web1.example.test"}]`,
			[]string{"web1.example.test", "web2.example.test"}},
		{"facts rows are de-duplicated", `facts[certname] { name = "os" }`,
			`[{"certname":"b","name":"os","value":{}},{"certname":"a","name":"os","value":{}},{"certname":"b","name":"kernel","value":"Linux"}]`,
			[]string{"a", "b"}},
		{"other fields are ignored", `nodes[certname, report_timestamp] {}`,
			`[{"certname":"a","report_timestamp":null,"deactivated":null}]`, []string{"a"}},
		{"nothing matches", `inventory[certname] { facts.os.family = "Plan9" }`, `[]`, []string{}},
		{"whitespace around the array", `nodes[certname] {}`, " \n[ {\"certname\" : \"x\"} ]\n", []string{"x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, sent := fakePuppetDB(t, http.StatusOK, "application/json", tt.body)
			got, err := newClient(t, Config{URL: srv.URL}).Certnames(context.Background(), tt.query)
			if err != nil {
				t.Fatalf("Certnames: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("certnames %q, want %q", got, tt.want)
			}
			if *sent != tt.query {
				t.Errorf("PuppetDB was sent %q, want the query as given %q", *sent, tt.query)
			}
		})
	}
}

func TestCertnamesRefusesResultsWithoutCertname(t *testing.T) {
	for _, body := range []string{
		`[{"count":3}]`,
		`[{"name":"os","value":"Linux"}]`,
		`[{"certname":"a"},{"certname":null}]`,
		`[{"certname":""}]`,
		`[{"certname":7}]`,
		`["a","b"]`,
	} {
		t.Run(body, func(t *testing.T) {
			srv, _ := fakePuppetDB(t, http.StatusOK, "application/json", body)
			_, err := newClient(t, Config{URL: srv.URL}).Certnames(context.Background(), "facts[count()] {}")
			oe := wantError(t, err, orchestrator.KindQueryError, "carry no certname", "inventory[certname]")
			if oe.Details["query"] != "facts[count()] {}" {
				t.Errorf("details %v: want the query", oe.Details)
			}
			if s, _ := oe.Details["result"].(string); s == "" {
				t.Errorf("details %v: want the offending result", oe.Details)
			}
		})
	}
}

func TestCertnamesErrorsMapToPE(t *testing.T) {
	const parseError = "PQL parse error at line 1, column 41:\ninventory[certname] { facts.os.family = }\n                                        ^\n\nExpected one of:\n\n\"\n"
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		kind        string
		msg         []string
		pdbMessage  string // details.puppetdb_message, when a query-error
	}{
		{"PQL parse error", 400, "text/plain; charset=utf-8", parseError, orchestrator.KindQueryError,
			[]string{"PuppetDB rejected the query", "PQL parse error at line 1, column 41", "Expected one of"}, strings.TrimSpace(parseError)},
		{"unknown field", 400, "text/plain", "'nosuchfield' is not a queryable object for inventory. Known queryable objects are [certname, timestamp, environment, facts, trusted]",
			orchestrator.KindQueryError, []string{"'nosuchfield' is not a queryable object for inventory"},
			"'nosuchfield' is not a queryable object for inventory. Known queryable objects are [certname, timestamp, environment, facts, trusted]"},
		{"JSON error body", 400, "application/json", `{"error":"Unsupported query operator"}`, orchestrator.KindQueryError,
			[]string{"Unsupported query operator"}, "Unsupported query operator"},
		{"server error", 500, "text/plain", "java.sql.SQLException: connection refused", orchestrator.KindPuppetDBError,
			[]string{"500", "java.sql.SQLException: connection refused"}, ""},
		{"starting", 503, "text/plain", "", orchestrator.KindPuppetDBError, []string{"503", "(no message)"}, ""},
		{"not allowlisted", 403, "text/plain", "Permission denied", orchestrator.KindPuppetDBError, []string{"403", "Permission denied"}, ""},
		{"answer not an array", 200, "application/json", `{"certname":"a"}`, orchestrator.KindPuppetDBError, []string{"not a JSON array"}, ""},
		{"answer cut short", 200, "application/json", `[{"certname":"a"},{"cert`, orchestrator.KindPuppetDBError, []string{"not a JSON array"}, ""},
		{"answer not JSON", 200, "text/html", `<html>proxy login</html>`, orchestrator.KindPuppetDBError, []string{"not a JSON array"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := fakePuppetDB(t, tt.status, tt.contentType, tt.body)
			const q = `inventory[certname] { facts.os.family = }`
			_, err := newClient(t, Config{URL: srv.URL}).Certnames(context.Background(), q)
			oe := wantError(t, err, tt.kind, tt.msg...)
			if oe.Details["query"] != q {
				t.Errorf("details %v: want the query", oe.Details)
			}
			if tt.kind == orchestrator.KindQueryError {
				if oe.Details["puppetdb_message"] != tt.pdbMessage {
					t.Errorf("details.puppetdb_message %q, want %q", oe.Details["puppetdb_message"], tt.pdbMessage)
				}
			} else if oe.Details["puppetdb"] != srv.URL {
				t.Errorf("details %v: want puppetdb %s", oe.Details, srv.URL)
			}
			if tt.status != 200 && oe.Details["puppetdb_status"] != tt.status {
				t.Errorf("details.puppetdb_status %v, want %d", oe.Details["puppetdb_status"], tt.status)
			}
		})
	}
}

func TestCertnamesEmptyQuery(t *testing.T) {
	c := newClient(t, Config{URL: "http://127.0.0.1:1"}) // never contacted
	_, err := c.Certnames(context.Background(), "  ")
	wantError(t, err, orchestrator.KindQueryError, "empty")
}

func TestCertnamesCap(t *testing.T) {
	rows := func(names ...string) string {
		var b strings.Builder
		b.WriteString("[")
		for i, n := range names {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`{"certname":"` + n + `"}`)
		}
		return b.String() + "]"
	}
	t.Run("at the cap, duplicates not counted", func(t *testing.T) {
		srv, _ := fakePuppetDB(t, 200, "application/json", rows("a", "b", "a", "c", "b", "c"))
		got, err := newClient(t, Config{URL: srv.URL, MaxNodes: 3}).Certnames(context.Background(), "facts[certname] {}")
		if err != nil || len(got) != 3 {
			t.Fatalf("Certnames = %q, %v; want 3 names", got, err)
		}
	})
	t.Run("past the cap", func(t *testing.T) {
		srv, _ := fakePuppetDB(t, 200, "application/json", rows("a", "b", "c", "d"))
		_, err := newClient(t, Config{URL: srv.URL, MaxNodes: 3}).Certnames(context.Background(), "nodes[certname] {}")
		oe := wantError(t, err, orchestrator.KindValidation, "more than 3 nodes")
		if oe.Details["limit"] != 3 || oe.Details["field"] != "scope" {
			t.Errorf("details %v", oe.Details)
		}
	})
	t.Run("default is the orchestrator's", func(t *testing.T) {
		names := make([]string, orchestrator.MaxScopeNodes+1)
		for i := range names {
			names[i] = "n" + big.NewInt(int64(i)).String()
		}
		srv, _ := fakePuppetDB(t, 200, "application/json", rows(names...))
		c := newClient(t, Config{URL: srv.URL})
		_, err := c.Certnames(context.Background(), "nodes[certname] {}")
		wantError(t, err, orchestrator.KindValidation, "more than 20000 nodes")
		srv2, _ := fakePuppetDB(t, 200, "application/json", rows(names[:orchestrator.MaxScopeNodes]...))
		got, err := newClient(t, Config{URL: srv2.URL}).Certnames(context.Background(), "nodes[certname] {}")
		if err != nil || len(got) != orchestrator.MaxScopeNodes {
			t.Fatalf("%d names, %v; want %d", len(got), err, orchestrator.MaxScopeNodes)
		}
	})
}

func TestCertnamesTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Never answers: the client gives up. (The server notices the closed connection
		// only once the body is read.)
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	c := newClient(t, Config{URL: srv.URL, Timeout: 100 * time.Millisecond})
	_, err := c.Certnames(context.Background(), "nodes[certname] {}")
	wantError(t, err, orchestrator.KindPuppetDBError, "did not answer within 100ms")

	// A slow body: the headers arrive, the results never end.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `[{"certname":"a"},`)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer slow.Close()
	c = newClient(t, Config{URL: slow.URL, Timeout: 100 * time.Millisecond})
	_, err = c.Certnames(context.Background(), "nodes[certname] {}")
	wantError(t, err, orchestrator.KindPuppetDBError, "did not answer within 100ms")
}

func TestCertnamesUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = newClient(t, Config{URL: "http://" + addr}).Certnames(context.Background(), "nodes[certname] {}")
	oe := wantError(t, err, orchestrator.KindPuppetDBError, "could not be reached")
	if oe.Err == nil {
		t.Error("the cause is not kept")
	}
}

func TestNewValidates(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no URL", Config{}, "want https://"},
		{"no scheme", Config{URL: "puppetdb:8081"}, "want https://"},
		{"ftp", Config{URL: "ftp://puppetdb"}, "want https://"},
		{"query", Config{URL: "https://puppetdb:8081/?x=1"}, "no user, query"},
		{"user", Config{URL: "https://u:p@puppetdb:8081"}, "no user, query"},
		{"plain HTTP off loopback", Config{URL: "http://puppetdb.example.com:8080"}, "no authentication"},
		{"cert without key", Config{URL: "https://puppetdb:8081", CertFile: "c.pem"}, "needs its key"},
		{"CA twice", Config{URL: "https://puppetdb:8081", CAFile: "a", CAPEM: []byte("b")}, "not both"},
		{"TLS files on http", Config{URL: "http://127.0.0.1:8080", CAFile: "a"}, "plain HTTP"},
		{"missing CA file", Config{URL: "https://puppetdb:8081", CAFile: filepath.Join(dir, "none.pem")}, "CA file"},
		{"CA not PEM", Config{URL: "https://puppetdb:8081", CAPEM: []byte("not pem")}, "no PEM certificate"},
		{"missing client cert", Config{URL: "https://puppetdb:8081", CertFile: filepath.Join(dir, "c"), KeyFile: filepath.Join(dir, "k")}, "client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New(%+v) = %v, want an error containing %q", tt.cfg, err, tt.want)
			}
		})
	}
	for _, ok := range []string{"http://127.0.0.1:8080", "http://localhost:8080/", "http://[::1]:8080", "https://puppetdb.example.com:8081"} {
		if _, err := New(Config{URL: ok}); err != nil {
			t.Errorf("New(%s): %v", ok, err)
		}
	}
}

// pki makes a CA and a certificate it signs for a server (127.0.0.1) or a client.
type pki struct {
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caPEM  []byte
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Puppet CA: test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &pki{caCert: cert, caKey: key, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (p *pki) issue(t *testing.T, cn string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func TestTLS(t *testing.T) {
	ca := newPKI(t)
	srvCert, srvKey := ca.issue(t, "puppetdb", true)
	pair, err := tls.X509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.caCert)
	var clientCN string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		clientCN = r.TLS.PeerCertificates[0].Subject.CommonName
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `[{"certname":"web1"}]`)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()

	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile := write("ca.pem", ca.caPEM)
	cliCert, cliKey := ca.issue(t, "baton.example.test", false)
	certFile, keyFile := write("cert.pem", cliCert), write("key.pem", cliKey)

	t.Run("CA file and client certificate", func(t *testing.T) {
		got, err := newClient(t, Config{URL: srv.URL, CAFile: caFile, CertFile: certFile, KeyFile: keyFile}).Certnames(context.Background(), "nodes[certname] {}")
		if err != nil || !reflect.DeepEqual(got, []string{"web1"}) {
			t.Fatalf("Certnames = %q, %v", got, err)
		}
		if clientCN != "baton.example.test" {
			t.Errorf("PuppetDB saw client %q", clientCN)
		}
	})
	t.Run("CA as PEM text", func(t *testing.T) {
		_, err := newClient(t, Config{URL: srv.URL, CAPEM: ca.caPEM, CertFile: certFile, KeyFile: keyFile}).Certnames(context.Background(), "nodes[certname] {}")
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("server not trusted without the CA", func(t *testing.T) {
		_, err := newClient(t, Config{URL: srv.URL, CertFile: certFile, KeyFile: keyFile}).Certnames(context.Background(), "nodes[certname] {}")
		wantError(t, err, orchestrator.KindPuppetDBError, "could not be reached", "certificate")
	})
	t.Run("no client certificate", func(t *testing.T) {
		_, err := newClient(t, Config{URL: srv.URL, CAFile: caFile}).Certnames(context.Background(), "nodes[certname] {}")
		wantError(t, err, orchestrator.KindPuppetDBError, "could not be reached")
	})
}

func TestFacts(t *testing.T) {
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.EscapedPath()
		switch r.URL.Path {
		case "/pdb/query/v4/nodes/web1.example.test/facts":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `[{"certname":"web1.example.test","name":"os","value":{"family":"Debian","release":{"major":"12"}},"environment":"production"},
				{"certname":"web1.example.test","name":"processors","value":{"count":2}}]`)
		case "/pdb/query/v4/nodes/empty/facts":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `[]`)
		case "/pdb/query/v4/nodes/broken/facts":
			http.Error(w, "boom", 500)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			io.WriteString(w, `{"error":"No information is known about node unknown"}`)
		}
	}))
	defer srv.Close()
	c := newClient(t, Config{URL: srv.URL})
	facts, found, err := c.Facts(context.Background(), "web1.example.test")
	if err != nil || !found {
		t.Fatalf("Facts = %v, %v, %v", facts, found, err)
	}
	want := map[string]any{"os": map[string]any{"family": "Debian", "release": map[string]any{"major": "12"}},
		"processors": map[string]any{"count": json.Number("2")}}
	if !reflect.DeepEqual(facts, want) {
		t.Errorf("facts %#v, want %#v", facts, want)
	}
	for _, name := range []string{"empty", "unknown"} {
		if facts, found, err := c.Facts(context.Background(), name); err != nil || found || facts != nil {
			t.Errorf("Facts(%s) = %v, %v, %v; want not found", name, facts, found, err)
		}
	}
	_, _, err = c.Facts(context.Background(), "broken")
	wantError(t, err, orchestrator.KindPuppetDBError, "500", "boom")
	if _, _, err := c.Facts(context.Background(), "a/b c"); err != nil {
		t.Fatal(err)
	}
	if path != "/pdb/query/v4/nodes/a%2Fb%20c/facts" {
		t.Errorf("certname not escaped in the path: %s", path)
	}
}
