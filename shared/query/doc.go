// Package query implements Baton's scope query language: a documented subset of PuppetDB's
// PQL that selects nodes from Baton's own inventory by certname and facts. Parse turns a
// query string into a *Query, Match and Select evaluate it against nodes. It is not a PuppetDB
// client and never talks to one; it does not read the inventory itself either, the caller
// passes the candidate nodes in.
//
// # Grammar
//
// In EBNF (the words inventory, nodes, certname, facts, and, or, not, true and false are
// case-insensitive, fact names are not; whitespace may separate any two tokens):
//
//	query      = entity [ "[" "certname" "]" ] "{" [ expr ] "}" .
//	entity     = "inventory" | "nodes" .
//	expr       = and { "or" and } .
//	and        = not { "and" not } .
//	not        = ( "not" | "!" ) not | "(" expr ")" | comparison .
//	comparison = path op literal .
//	path       = "certname" | "facts" "." segment { "." segment } .
//	segment    = ident | string .
//	ident      = letter { letter | digit | "-" } .        (* letter includes "_" *)
//	op         = "=" | "!=" | "~" | "<" | "<=" | ">" | ">=" .
//	literal    = string | number | "true" | "false" .
//	string     = `"` { char } `"` | "'" { char } "'" .   (* escapes: \" \' \\ *)
//	number     = [ "-" ] digits [ "." digits ] [ ( "e" | "E" ) [ "+" | "-" ] digits ] .
//
// So "or" binds loosest, then "and", then "not": a or b and c means a or (b and c), and
// not a and b means (not a) and b. An empty body ({}) matches every node. The entities
// inventory and nodes are synonyms here (String keeps the one written). The projection is
// optional but, if given, must be exactly [certname]. "!" is PQL's spelling of not and is
// accepted as a synonym. In strings, \" \' and \\ stand for the escaped character and any
// other backslash is kept as written, so "^web\d+$" is the regular expression ^web\d+$. Fact
// names that are not identifiers are quoted: facts."my.key", facts."with space".
//
// The operand of ~ must be a string that compiles as a Go (RE2) regular expression, and the
// operands of < <= > >= must be numbers; anything else is a parse error at the literal.
// Parentheses and not may nest at most 100 deep.
//
// # Evaluation
//
// certname is the node's name; facts.a.b walks nested JSON objects. A path does not resolve
// when a key is missing, a value on the way is not an object, or the value is null. An
// unresolved path makes every comparison false except !=, which is true: != is exactly the
// negation of =, so facts.role != "web" also selects nodes with no role fact.
//
//   - = compares strings to strings (exactly, case-sensitively), booleans to booleans and
//     numbers numerically (4 = 4.0). A number on one side and a string written as a number
//     on the other ("7" against 7, either way round) compare numerically; a string that is not
//     a number never equals a number. Two strings always compare as strings ("7" != "7.0").
//     Objects and arrays equal nothing.
//   - < <= > >= compare numerically; the fact must be a number or a string written as a
//     number, otherwise the comparison is false.
//   - ~ matches the regular expression anywhere in the string form of a scalar fact
//     (strings as is, booleans as true/false, numbers in plain decimal); objects and arrays
//     never match. Anchor with ^ and $ for a whole-value match.
//   - Integers are compared exactly as int64, anything involving a fraction as float64.
//
// Facts are expected as encoding/json decodes them, with numbers as float64 or json.Number;
// Go integer types are accepted too.
//
// # Not supported
//
// The orchestrator rejects the rest of PQL with a parse error naming the position: entities
// other than inventory and nodes, projections other than [certname], subqueries, the
// operators in, !~ and ~>, is null and is not null, functions (count(), ...), array values,
// fact-path indexes ([0]), trusted.* and other fields, paging and grouping clauses (limit,
// offset, order by, group by), and PuppetDB's AST (JSON array) query form.
package query
