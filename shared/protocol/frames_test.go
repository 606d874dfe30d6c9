package protocol

import (
	"os"
	"path/filepath"
	"testing"
)

// goldenFrames returns the golden frames (testdata/*.json): seeds and cases of the decoding
// tests.
func goldenFrames(tb testing.TB) [][]byte {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		tb.Fatal(err)
	}
	frames := make([][]byte, len(files))
	for i, name := range files {
		if frames[i], err = os.ReadFile(name); err != nil {
			tb.Fatal(err)
		}
	}
	return frames
}

// GoldenFrames is goldenFrames for the package's external tests.
var GoldenFrames = goldenFrames
