// Package testmodels locates the real models the tests run on: the
// directory $LLAMAGO_TEST_MODELS, or shared/models beside the repository's
// checkout (../shared/models from its root). The files are always present
// in CI, so a missing directory fails the test instead of skipping it.
package testmodels

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the directory of the test models.
func Dir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("LLAMAGO_TEST_MODELS")
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			t.Fatalf("test models: %v (set LLAMAGO_TEST_MODELS)", err)
		}
		dir = filepath.Join(root, "..", "shared", "models")
	}
	if _, err := os.Stat(filepath.Join(dir, "stories260K.gguf")); err != nil {
		t.Fatalf("test models not found in %s (set LLAMAGO_TEST_MODELS to the directory holding stories260K.gguf): %v", dir, err)
	}
	return dir
}

// Path returns the path of a file in Dir.
func Path(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(Dir(t), name)
}

// RepoRoot walks up from the working directory (a package's directory
// under go test) to the directory holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}
