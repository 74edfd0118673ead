package packaging_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/packaging"
)

// A small module shaped like FARM: a root package importing an in-module package that embeds a
// file, next to everything the archive must leave out.
var fixture = map[string]string{
	"go.mod":                      "module example.com/shop\n\ngo 1.26\n",
	"shop.go":                     "package shop\n\nimport _ \"example.com/shop/inner\"\n",
	"shop_test.go":                "package shop\n",
	"inner/inner.go":              "package inner\n\nimport _ \"embed\"\n\n//go:embed data/greeting.txt\nvar Greeting string\n",
	"inner/inner_linux.go":        "package inner\n",
	"inner/inner_windows.go":      "package inner\n", // another platform's file: the buildpack may need it, it is source
	"inner/inner_test.go":         "package inner\n",
	"inner/data/greeting.txt":     "hello\n",
	"inner/data/unused.txt":       "not embedded\n",
	"unused/unused.go":            "package unused\n",
	"cmd/tool/main.go":            "package main\n\nfunc main() {}\n",
	"terraform/main.tf":           "terraform {}\n",
	"terraform/terraform.tfstate": "{}\n",
	".terraform/providers/x":      "binary\n",
	"README.md":                   "# shop\n",
	"dist/old.zip":                "PK\n",
}

var wantFixtureFiles = []string{
	"go.mod",
	"inner/data/greeting.txt",
	"inner/inner.go",
	"inner/inner_linux.go",
	"inner/inner_windows.go",
	"shop.go",
}

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func build(t *testing.T, dir string) (*packaging.Result, []byte) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out", "farm-source.zip")
	res, err := packaging.Build(context.Background(), dir, out)
	if err != nil {
		t.Fatalf("Build(%s): %v", dir, err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != res.SHA256 {
		t.Fatalf("Result.SHA256 = %s, the file's is %s", res.SHA256, got)
	}
	if res.Size != int64(len(data)) {
		t.Fatalf("Result.Size = %d, the file has %d bytes", res.Size, len(data))
	}
	return res, data
}

// entries reads an archive, checking every entry's fixed metadata.
func entries(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("the archive is not a zip: %v", err)
	}
	out := map[string][]byte{}
	var names []string
	for _, f := range zr.File {
		if !f.Modified.Equal(packaging.ModTime) {
			t.Errorf("%s: modified %s, want the fixed %s", f.Name, f.Modified, packaging.ModTime)
		}
		if f.Mode() != 0o644 {
			t.Errorf("%s: mode %v, want 0644", f.Name, f.Mode())
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		out[f.Name] = b
		names = append(names, f.Name)
	}
	if !slices.IsSorted(names) {
		t.Errorf("entries are not sorted: %v", names)
	}
	return out
}

func TestArchiveHoldsExactlyWhatTheBuildNeeds(t *testing.T) {
	dir := writeTree(t, fixture)
	res, data := build(t, dir)
	got := entries(t, data)

	if names := slices.Sorted(maps.Keys(got)); !slices.Equal(names, wantFixtureFiles) {
		t.Errorf("archive holds\n  %v\nwant\n  %v", names, wantFixtureFiles)
	}
	if !slices.Equal(res.Files, wantFixtureFiles) {
		t.Errorf("Result.Files = %v, want %v", res.Files, wantFixtureFiles)
	}
	for name, content := range got {
		if string(content) != fixture[name] {
			t.Errorf("%s holds %q, the tree %q", name, content, fixture[name])
		}
	}
}

// The archive alone must build: unpack it somewhere else and compile the root package.
func TestArchiveBuildsOnItsOwn(t *testing.T) {
	_, data := build(t, writeTree(t, fixture))
	unpacked := map[string]string{}
	for name, content := range entries(t, data) {
		unpacked[name] = string(content)
	}
	dir := writeTree(t, unpacked)
	cmd := exec.Command("go", "build", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOPROXY=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build in the unpacked archive: %v\n%s", err, out)
	}
}

func TestSameTreeSameBytes(t *testing.T) {
	dir := writeTree(t, fixture)
	_, first := build(t, dir)

	// Neither file times nor permissions nor the order files were written in may show.
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	for name := range fixture {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, second := build(t, dir)
	if !bytes.Equal(first, second) {
		t.Fatal("two builds of the same tree differ")
	}

	// The same content in a fresh checkout elsewhere gives the same bytes too.
	_, third := build(t, writeTree(t, fixture))
	if !bytes.Equal(first, third) {
		t.Fatal("the same tree in another directory gives different bytes")
	}
}

func TestOneByteChangesTheHash(t *testing.T) {
	base, _ := build(t, writeTree(t, fixture))
	tests := []struct {
		name string
		file string
		edit func(string) string
	}{
		{"root package source", "shop.go", func(s string) string { return s + " " }},
		{"imported package source", "inner/inner.go", func(s string) string { return strings.Replace(s, "Greeting", "Greetinh", 1) }},
		{"embedded file", "inner/data/greeting.txt", func(s string) string { return "jello\n" }},
		{"go.mod", "go.mod", func(s string) string { return s + "\n" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := maps.Clone(fixture)
			files[tt.file] = tt.edit(files[tt.file])
			changed, _ := build(t, writeTree(t, files))
			if changed.SHA256 == base.SHA256 {
				t.Fatalf("changing %s left the hash at %s", tt.file, base.SHA256)
			}
		})
	}
	t.Run("files outside the archive", func(t *testing.T) {
		files := maps.Clone(fixture)
		files["README.md"] += "more docs\n"
		files["shop_test.go"] += "// more tests\n"
		files["terraform/main.tf"] += "# more terraform\n"
		files["unused/unused.go"] += "// not imported\n"
		same, _ := build(t, writeTree(t, files))
		if same.SHA256 != base.SHA256 {
			t.Fatalf("changing files the archive does not hold changed the hash")
		}
	})
}

func TestBadTreesAreRefused(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{
			name:  "not a module",
			files: map[string]string{"shop.go": "package shop\n"},
			want:  "not inside a Go module",
		},
		{
			name:  "no root package",
			files: map[string]string{"go.mod": "module example.com/shop\n\ngo 1.26\n", "inner/inner.go": "package inner\n"},
			want:  "list the root package",
		},
		{
			name: "import of a missing package of the module",
			files: map[string]string{
				"go.mod":  "module example.com/shop\n\ngo 1.26\n",
				"shop.go": "package shop\n\nimport _ \"example.com/shop/gone\"\n",
			},
			want: "example.com/shop/gone",
		},
		{
			name: "embed pattern matching nothing",
			files: map[string]string{
				"go.mod":  "module example.com/shop\n\ngo 1.26\n",
				"shop.go": "package shop\n\nimport _ \"embed\"\n\n//go:embed missing.txt\nvar s string\n",
			},
			want: "missing.txt",
		},
		{
			name: "module replaced by a local directory",
			files: map[string]string{
				"go.mod":     "module example.com/shop\n\ngo 1.26\n\nrequire example.com/lib v0.0.0\n\nreplace example.com/lib => ./lib\n",
				"shop.go":    "package shop\n\nimport _ \"example.com/lib\"\n",
				"lib/go.mod": "module example.com/lib\n\ngo 1.26\n",
				"lib/lib.go": "package lib\n",
			},
			want: "replaced by the local directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeTree(t, tt.files)
			out := filepath.Join(t.TempDir(), "farm-source.zip")
			_, err := packaging.Build(context.Background(), dir, out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Build: error %v, want one mentioning %q", err, tt.want)
			}
			if _, statErr := os.Stat(out); !os.IsNotExist(statErr) {
				t.Errorf("a failed build left %s behind", out)
			}
		})
	}
}

func TestFailedBuildKeepsThePreviousArchive(t *testing.T) {
	files := maps.Clone(fixture)
	files["shop.go"] = "package shop\n\nimport _ \"example.com/shop/gone\"\n"
	dir := writeTree(t, files)
	outDir := t.TempDir()
	out := filepath.Join(outDir, "farm-source.zip")
	if err := os.WriteFile(out, []byte("previous"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := packaging.Build(context.Background(), dir, out); err == nil {
		t.Fatal("Build of a tree with a missing import succeeded")
	}
	if b, _ := os.ReadFile(out); string(b) != "previous" {
		t.Errorf("the previous archive was replaced by %q", b)
	}
}

func TestFailedRenameLeavesNoTemporaryFile(t *testing.T) {
	dir := writeTree(t, fixture)
	outDir := t.TempDir()
	out := filepath.Join(outDir, "farm-source.zip")
	if err := os.Mkdir(out, 0o755); err != nil { // a directory where the archive should go
		t.Fatal(err)
	}
	if _, err := packaging.Build(context.Background(), dir, out); err == nil || !strings.Contains(err.Error(), "write the archive") {
		t.Fatalf("Build onto a directory: error %v, want a write error", err)
	}
	if left, _ := filepath.Glob(filepath.Join(outDir, ".farm-source-*")); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func TestWriteNamesTheFileItCannotRead(t *testing.T) {
	dir := writeTree(t, fixture)
	err := packaging.Write(io.Discard, dir, []string{"go.mod", "inner/vanished.go"})
	if err == nil || !strings.Contains(err.Error(), "inner/vanished.go") {
		t.Fatalf("Write: error %v, want one naming inner/vanished.go", err)
	}
}

// FARM itself: the archive holds the root package and every package of the module it imports, and
// nothing a build does not need.
func TestFARMArchive(t *testing.T) {
	root := moduleRoot(t)
	res, data := build(t, root)
	got := entries(t, data)

	for _, f := range []string{"go.mod", "go.sum", "farm.go"} {
		if _, ok := got[f]; !ok {
			t.Errorf("the archive lacks %s", f)
		}
	}
	for name := range got {
		switch {
		case strings.HasSuffix(name, "_test.go"):
			t.Errorf("the archive holds the test file %s", name)
		case strings.HasPrefix(name, "terraform/"), strings.HasPrefix(name, "dist/"), strings.HasPrefix(name, "cmd/"),
			strings.HasPrefix(name, "internal/testenv/"), strings.HasPrefix(name, "."), strings.HasSuffix(name, ".md"):
			t.Errorf("the archive holds %s, which no function build needs", name)
		}
	}

	// Every in-module import of every archived package must be in the archive: list the unpacked
	// copy and require each import to resolve inside it (go list fails on a missing package).
	unpacked := t.TempDir()
	for name, content := range got {
		p := filepath.Join(unpacked, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "list", "-deps", "-json", ".")
	cmd.Dir = unpacked
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-mod=mod", "GOPROXY=off")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("go list -deps in the unpacked archive: %v\n%s", err, stderr)
	}
	var inModule int
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p struct {
			ImportPath string
			Module     *struct{ Path string }
			Incomplete bool
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if p.Incomplete {
			t.Errorf("package %s is incomplete in the unpacked archive", p.ImportPath)
		}
		if p.Module != nil && p.Module.Path == "github.com/farmobs/farm" {
			inModule++
		}
	}
	if inModule < 2 {
		t.Errorf("the unpacked archive has %d packages of the module; want the root package and its imports", inModule)
	}
	t.Logf("FARM archive: %d files, %d bytes, sha256 %s", len(res.Files), res.Size, res.SHA256)
}

// moduleRoot is FARM's root: tests run in their package's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}
