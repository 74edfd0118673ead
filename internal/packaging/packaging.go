// Package packaging writes the source archive that terraform deploys to Cloud Run functions: a
// reproducible zip of exactly what the Go buildpack needs to build the module's root package.
//
// The archive holds go.mod, go.sum and, for the root package and every package of this module it
// imports transitively (as `go list -deps` resolves them for linux/amd64, the platform the
// buildpack builds for), the non-test Go and assembly sources and the files they embed. Tests,
// terraform, docs and local state never enter it. Entries are sorted, carry a fixed time and fixed
// permissions and are stored uncompressed, so the same tree gives the same bytes with any Go
// toolchain: terraform names the uploaded object by the archive's SHA-256, and only a code change
// redeploys.
package packaging

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ModTime is the time stamped on every entry: the zip format's epoch, so that no build time or
// file time leaks into the bytes.
var ModTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// fileMode is the permission of every entry, whatever the checkout's modes are.
const fileMode = 0o644

// Result describes a written archive.
type Result struct {
	Path   string   // where the archive was written
	SHA256 string   // hex SHA-256 of the archive's bytes (terraform's filesha256)
	Size   int64    // bytes
	Files  []string // entries, slash-separated and relative to the module root, sorted
}

// Build lists the files of the module containing dir (see Files) and writes their archive to out,
// atomically: out is either the complete new archive or left as it was.
func Build(ctx context.Context, dir, out string) (*Result, error) {
	root, files, err := Files(ctx, dir)
	if err != nil {
		return nil, err
	}
	sum, size, err := writeAtomically(out, func(w io.Writer) error { return Write(w, root, files) })
	if err != nil {
		return nil, err
	}
	return &Result{Path: out, SHA256: sum, Size: size, Files: files}, nil
}

// writeAtomically writes a new file at out through write, via a temporary file in the same
// directory renamed into place, and returns the hex SHA-256 and size of what was written.
func writeAtomically(out string, write func(io.Writer) error) (sum string, size int64, err error) {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", 0, fmt.Errorf("create the archive's directory: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".farm-source-*.zip")
	if err != nil {
		return "", 0, fmt.Errorf("create the archive: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove

	hash := sha256.New()
	counter := &countingWriter{w: io.MultiWriter(tmp, hash)}
	if err := write(counter); err != nil {
		tmp.Close()
		return "", 0, err
	}
	if err := tmp.Close(); err != nil {
		return "", 0, fmt.Errorf("write the archive: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil { // CreateTemp makes it 0600
		return "", 0, fmt.Errorf("write the archive: %w", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", 0, fmt.Errorf("write the archive: %w", err)
	}
	return hex.EncodeToString(hash.Sum(nil)), counter.n, nil
}

// Write writes the zip of files (slash-separated, relative to root) to w, in the order given.
func Write(w io.Writer, root string, files []string) error {
	zw := zip.NewWriter(w)
	for _, name := range files {
		if err := addFile(zw, root, name); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("finish the archive: %w", err)
	}
	return nil
}

func addFile(zw *zip.Writer, root, name string) error {
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	h := &zip.FileHeader{Name: name, Method: zip.Store, Modified: ModTime}
	h.SetMode(fileMode)
	f, err := zw.CreateHeader(h)
	if err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	return nil
}

// Files returns the root of the module containing dir and the files its archive holds,
// slash-separated, relative to that root and sorted.
func Files(ctx context.Context, dir string) (root string, files []string, err error) {
	root, modPath, err := module(ctx, dir)
	if err != nil {
		return "", nil, err
	}
	pkgs, err := listDeps(ctx, root)
	if err != nil {
		return "", nil, err
	}
	set := map[string]bool{"go.mod": true}
	if _, err := os.Stat(filepath.Join(root, "go.sum")); err == nil {
		set["go.sum"] = true // a module without dependencies has none
	}
	for _, p := range pkgs {
		own, err := p.ownedBy(modPath)
		if err != nil {
			return "", nil, err
		}
		if !own {
			continue // the buildpack downloads it, as go.sum pins it
		}
		rel, err := filepath.Rel(root, p.Dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			return "", nil, fmt.Errorf("package %s is in %s, outside the module root %s", p.ImportPath, p.Dir, root)
		}
		for _, f := range p.sources() {
			set[path.Join(filepath.ToSlash(rel), f)] = true
		}
	}
	return root, slices.Sorted(maps.Keys(set)), nil
}

// goPackage is the part of `go list -json` output that packaging reads.
type goPackage struct {
	ImportPath     string
	Dir            string
	Standard       bool
	Module         *goModule
	GoFiles        []string
	CgoFiles       []string
	IgnoredGoFiles []string // files excluded for this platform: kept, the buildpack's flags may differ
	SFiles         []string
	CFiles         []string
	HFiles         []string
	SysoFiles      []string
	EmbedFiles     []string
	Error          *struct{ Err string }
}

type goModule struct {
	Path    string
	Dir     string
	Replace *goModule
	Version string
}

// ownedBy reports whether p belongs to the main module modPath. A dependency replaced by a local
// directory is an error: the buildpack would not find it.
func (p *goPackage) ownedBy(modPath string) (bool, error) {
	switch m := p.Module; {
	case m == nil:
		return false, nil
	case m.Path == modPath:
		return true, nil
	case m.Replace != nil && m.Replace.Version == "":
		return false, fmt.Errorf("package %s comes from module %s, replaced by the local directory %s: the buildpack cannot see it, so the archive cannot carry it", p.ImportPath, m.Path, m.Replace.Path)
	}
	return false, nil
}

// sources lists the files of p the build needs, relative to p.Dir.
func (p *goPackage) sources() []string {
	var out []string
	for _, list := range [][]string{p.GoFiles, p.CgoFiles, p.IgnoredGoFiles, p.SFiles, p.CFiles, p.HFiles, p.SysoFiles, p.EmbedFiles} {
		for _, f := range list {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			out = append(out, f)
		}
	}
	return out
}

// module returns the root directory and path of the main module containing dir.
func module(ctx context.Context, dir string) (root, modPath string, err error) {
	out, err := goCmd(ctx, dir, "list", "-m", "-json")
	if err != nil {
		return "", "", fmt.Errorf("find the Go module of %s: %w", dir, err)
	}
	var m goModule
	if err := json.Unmarshal(out, &m); err != nil {
		return "", "", fmt.Errorf("find the Go module of %s: decode go list -m: %w", dir, err)
	}
	if m.Dir == "" || m.Path == "" {
		return "", "", fmt.Errorf("find the Go module of %s: it is not inside a Go module (no go.mod above it)", dir)
	}
	return m.Dir, m.Path, nil
}

// listDeps lists the root package and everything it imports, as the buildpack would build it.
func listDeps(ctx context.Context, root string) ([]*goPackage, error) {
	out, err := goCmd(ctx, root, "list", "-deps", "-json", ".")
	if err != nil {
		return nil, fmt.Errorf("list the root package and its imports: %w", err)
	}
	var pkgs []*goPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(goPackage)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decode go list output: %w", err)
		}
		if p.Error != nil {
			return nil, fmt.Errorf("package %s: %s", p.ImportPath, p.Error.Err)
		}
		if !p.Standard {
			pkgs = append(pkgs, p)
		}
	}
	if len(pkgs) == 0 {
		return nil, errors.New("go list found no root package: the module root needs a .go file (farm.go)")
	}
	return pkgs, nil
}

// goCmd runs the go command in dir for the platform Cloud Run functions build for.
func goCmd(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	// The buildpack sees no go.work, so neither does the listing.
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, msg)
		}
		return nil, fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return out, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
