// Type-checks packages for another GOOS/GOARCH with cgo enabled, without
// running cgo (go/types' FakeImportC): the Go side of a cgo package,
// checked without the target's C toolchain. Module packages are found with
// go list; the standard library through the source importer.
//
// Usage, from the repository root:
//
//	CHECK_GOOS=darwin CHECK_GOARCH=arm64 go run ./scripts/crosscheck [-tags T] [-test] . ./llama ./cmd/llamago
//
// It is how docs/gpu.md checks the darwin/arm64 (Metal) build without a Mac.
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/build"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// withTests adds the packages' tests to the check.
var withTests = flag.Bool("test", false, "check the packages' tests too")

type imp struct {
	fset  *token.FileSet
	std   types.ImporterFrom
	ctxt  build.Context
	dir   string
	cache map[string]*types.Package
	errs  int
}

func (m *imp) Import(path string) (*types.Package, error) { return m.ImportFrom(path, m.dir, 0) }

func (m *imp) ImportFrom(path, srcDir string, mode types.ImportMode) (*types.Package, error) {
	if p, ok := m.cache[path]; ok {
		return p, nil
	}
	first := strings.Split(path, "/")[0]
	if !strings.Contains(first, ".") {
		p, err := m.std.ImportFrom(path, srcDir, mode)
		if err == nil {
			m.cache[path] = p
		}
		return p, err
	}
	cmd := exec.Command("go", "list", "-e", "-f", "{{.Dir}}", path)
	cmd.Dir = m.dir
	cmd.Env = append(os.Environ(), "GOOS="+m.ctxt.GOOS, "GOARCH="+m.ctxt.GOARCH, "CGO_ENABLED=1")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %v", path, err)
	}
	p, n, err := m.check(path, strings.TrimSpace(string(out)), true)
	if n > 0 {
		return p, fmt.Errorf("%s: %d type errors", path, n)
	}
	return p, err
}

func (m *imp) check(path, dir string, deps bool) (*types.Package, int, error) {
	bp, err := m.ctxt.ImportDir(dir, 0)
	if err != nil {
		if _, ok := err.(*build.NoGoError); !ok {
			return nil, 0, err
		}
	}
	names := append(append([]string{}, bp.GoFiles...), bp.CgoFiles...)
	if !deps && *withTests {
		names = append(names, bp.TestGoFiles...)
	}
	p, n, err := m.checkFiles(path, dir, names, deps, len(bp.CgoFiles))
	if err == nil && !deps && *withTests && len(bp.XTestGoFiles) > 0 {
		var nx int
		_, nx, err = m.checkFiles(path+"_test", dir, bp.XTestGoFiles, false, 0)
		n += nx
	}
	return p, n, err
}

func (m *imp) checkFiles(path, dir string, names []string, deps bool, ncgo int) (*types.Package, int, error) {
	var files []*ast.File
	for _, name := range names {
		f, err := parser.ParseFile(m.fset, filepath.Join(dir, name), nil, 0)
		if err != nil {
			return nil, 0, err
		}
		files = append(files, f)
	}
	n := 0
	conf := types.Config{Importer: m, FakeImportC: true, IgnoreFuncBodies: deps, Error: func(err error) {
		if strings.Contains(err.Error(), "invalid type") {
			return // a C type, which FakeImportC leaves invalid
		}
		n++
		if n <= 20 {
			fmt.Println("  ", err)
		}
	}}
	p, _ := conf.Check(path, m.fset, files, nil)
	if !strings.HasSuffix(path, "_test") {
		m.cache[path] = p
	}
	if !deps || n > 0 {
		fmt.Printf("%s (%s/%s, tags %v): %d files, %d with cgo, %d errors\n", path, m.ctxt.GOOS, m.ctxt.GOARCH, m.ctxt.BuildTags, len(files), ncgo, n)
	}
	return p, n, nil
}

func main() {
	tags := flag.String("tags", "", "build tags")
	flag.Parse()
	ctxt := build.Default
	if v := os.Getenv("CHECK_GOOS"); v != "" {
		ctxt.GOOS = v
	}
	if v := os.Getenv("CHECK_GOARCH"); v != "" {
		ctxt.GOARCH = v
	}
	ctxt.CgoEnabled = true
	if *tags != "" {
		ctxt.BuildTags = strings.Split(*tags, ",")
	}
	stdctxt := ctxt
	stdctxt.OpenFile = func(p string) (io.ReadCloser, error) { return os.Open(p) } // FakeImportC in std
	build.Default = stdctxt
	fset := token.NewFileSet()
	m := &imp{fset: fset, std: importer.ForCompiler(fset, "source", nil).(types.ImporterFrom), ctxt: ctxt, dir: flag.Arg(0), cache: map[string]*types.Package{}}
	failed := false
	for _, pkg := range flag.Args()[1:] {
		cmd := exec.Command("go", "list", "-e", "-f", "{{.ImportPath}} {{.Dir}}", pkg)
		cmd.Dir = m.dir
		out, err := cmd.Output()
		if err != nil {
			fmt.Println(pkg, err)
			failed = true
			continue
		}
		f := strings.Fields(string(out))
		if _, n, err := m.check(f[0], f[1], false); err != nil || n > 0 {
			fmt.Println(pkg, err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}
