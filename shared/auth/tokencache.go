package auth

import (
	"sync"
	"time"

	"github.com/baton-run/baton/shared/store"
)

// TokenCacheTTL is the longest AuthenticateToken uses what it read about a token without
// reading it again. Within it, an entry is used only while the store's auth generation is
// the one seen before the entry was read (generationStore), and until this Service itself
// changes tokens, roles or users. So a token revoked, or a role or user changed, by any
// process that writes through the store is seen from the first request after that change
// returned. The lifetime bounds what can stay cached after a change made otherwise: behind
// the store's back (sqlite3), by an older binary that writes no stamp, by a process that
// could not write the stamp (it logs so) or died between its commit and its stamp.
const TokenCacheTTL = 10 * time.Second

// tokenCacheMax bounds the entries kept: when full, the cache starts again empty.
const tokenCacheMax = 4096

// generationStore is a Store that can tell cheaply whether tokens, roles or users may have
// changed since an earlier look (the sqlite store: a stamp file that every process
// changing them rewrites). AuthenticateToken caches only with such a store; ok false
// means it cannot tell now.
type generationStore interface {
	AuthGeneration() (gen string, ok bool)
}

// tokenEntry is what the store said about a token (revoked or not), under generation gen,
// read at read.
type tokenEntry struct {
	token store.Token
	perms []store.Permission
	gen   string
	read  time.Time
}

// tokenCache maps token hashes to tokenEntry.
type tokenCache struct {
	mu      sync.Mutex
	entries map[string]tokenEntry
}

// get returns hash's entry if it was read under gen, less than TokenCacheTTL before now.
func (c *tokenCache) get(hash, gen string, now time.Time) (tokenEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[hash]
	if !ok || e.gen != gen || now.Sub(e.read) >= TokenCacheTTL || now.Before(e.read) {
		return tokenEntry{}, false
	}
	return e, true
}

func (c *tokenCache) put(hash string, e tokenEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= tokenCacheMax {
		c.entries = make(map[string]tokenEntry)
	}
	c.entries[hash] = e
}

// clear forgets every entry: this process changed tokens, roles or users (whether or not the
// store's generation says so).
func (c *tokenCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = nil
}
