package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpen(t *testing.T) {
	key, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "k"), 32)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"password":"hunter2"}`)
	sealed, err := s.Seal(plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("hunter2")) {
		t.Fatal("sealed record contains the plaintext")
	}
	got, err := s.Open(sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	for name, bad := range map[string][]byte{
		"tampered": append(append([]byte{}, sealed[:len(sealed)-1]...), sealed[len(sealed)-1]^1),
		"short":    sealed[:5],
		"empty":    nil,
	} {
		if _, err := s.Open(bad); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: Open err = %v, want ErrOpen", name, err)
		}
	}
	other, _ := New(bytes.Repeat([]byte{7}, 32))
	if _, err := other.Open(sealed); !errors.Is(err, ErrOpen) {
		t.Errorf("wrong key: err = %v", err)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	k1, err := LoadOrCreateKey(path, 32)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v", st.Mode(), err)
	}
	k2, err := LoadOrCreateKey(path, 32)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("reload gave a different key: %v", err)
	}
	if _, err := LoadOrCreateKey(path, 16); err == nil {
		t.Fatal("wrong length accepted")
	}
	if _, err := New([]byte("short")); err == nil {
		t.Fatal("short key accepted")
	}
}
