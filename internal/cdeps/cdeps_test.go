package cdeps_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMissingNlohmann builds the package with a C++ compiler that finds no
// system headers (an empty --sysroot): the build fails with the message
// that says what to install.
func TestMissingNlohmann(t *testing.T) {
	cxx := strings.TrimSpace(goEnv(t, "CXX"))
	cmd := exec.Command("go", "build", ".")
	cmd.Env = append(os.Environ(), "CXX="+cxx+" --sysroot="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("built without nlohmann/json.hpp:\n%s", out)
	}
	if want := "llamago: the C++ compiler does not find nlohmann/json.hpp"; !strings.Contains(string(out), want) || !strings.Contains(string(out), "nlohmann-json3-dev") {
		t.Errorf("go build says\n%s\nwant %q and what to install", out, want)
	}
}

func goEnv(t *testing.T, name string) string {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
