// Package puppetdb is a client of PuppetDB's query API (POST /pdb/query/v4): it runs a PQL
// query exactly as given — the whole language, subqueries included, parsed by PuppetDB — and
// returns the certnames its results carry, and it reads one node's facts. Its errors are the
// orchestrator's PE-style errors: a query PuppetDB rejects is a
// puppetlabs.orchestrator/query-error carrying PuppetDB's own message, PuppetDB being
// unreachable or failing is a puppetlabs.orchestrator/puppetdb-error. It does not parse PQL
// (package query is Baton's built-in subset, used when no PuppetDB is configured) and never
// writes to PuppetDB.
package puppetdb
