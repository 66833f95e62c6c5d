package lane

import (
	"go/build"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/greenlane-pos/greenlane/"

// TestPackageGraph holds the architecture's import rules
// (docs/architecture.md): each package below may not depend, directly or
// through others, on the packages listed for it.
func TestPackageGraph(t *testing.T) {
	deps := moduleDeps(t)
	forbidden := []struct {
		pkg string
		not []string // "*" forbids every package of ours
	}{
		{"protocol", []string{"*"}},
		{"lanedb", []string{"*"}},
		{"server", []string{"salesbuilder", "presell"}},
		{"salesbuilder", []string{"presell", "server", "firehose"}},
		{"firehose", []string{"salesbuilder", "presell", "server"}},
		{"presell", []string{"server", "firehose"}},
	}
	for leaf := range leaves {
		if _, ok := deps[leaf]; !ok {
			t.Errorf("package %s is missing", leaf)
		}
		if all := closure(deps, leaf); len(all) > 0 {
			t.Errorf("%s, which every package may import, depends on %v", leaf, all)
		}
	}
	for _, f := range forbidden {
		if _, ok := deps[f.pkg]; !ok {
			t.Errorf("package %s is missing", f.pkg)
			continue
		}
		all := closure(deps, f.pkg)
		for _, not := range f.not {
			for _, d := range all {
				if not == "*" || d == not {
					t.Errorf("%s depends on %s", f.pkg, d)
				}
			}
		}
	}
}

// moduleDeps reads, for every package of the module, which packages of
// the module its non-test files import (the leaves aside: helpers that
// import nothing of ours, allowed everywhere).
func moduleDeps(t *testing.T) map[string][]string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	deps := map[string][]string{}
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
			return filepath.SkipDir
		}
		p, err := build.ImportDir(path, 0)
		if err != nil {
			return nil // no Go files here
		}
		rel, _ := filepath.Rel(root, path)
		var ours []string
		for _, imp := range p.Imports {
			if dep, ok := strings.CutPrefix(imp, module); ok && !leaves[dep] {
				ours = append(ours, dep)
			}
		}
		deps[filepath.ToSlash(rel)] = ours
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return deps
}

// leaves are the packages every package may import: they import nothing
// of ours.
var leaves = map[string]bool{
	"internal/setting":  true, // option ranges
	"internal/faultlog": true, // telling a lasting fault without a line each time
}

// closure is every package pkg depends on, directly or not, sorted.
func closure(deps map[string][]string, pkg string) []string {
	seen := map[string]bool{}
	var visit func(string)
	visit = func(p string) {
		for _, d := range deps[p] {
			if !seen[d] {
				seen[d] = true
				visit(d)
			}
		}
	}
	visit(pkg)
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}
