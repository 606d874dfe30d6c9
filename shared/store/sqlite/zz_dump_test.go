package sqlite

import (
	"os"
	"strings"
	"testing"
)

func TestZZDump(t *testing.T) {
	os.WriteFile("testdata/schema_v1.sql", []byte(strings.Join(migrations[0].stmts, ";\n\n")+";\n"), 0o644)
}
