package filestore_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/state"
	"github.com/farmobs/farm/pkg/state/filestore"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

const src = "argo/prod"

func statePath(t *testing.T) string { return filepath.Join(t.TempDir(), "farm", "state.json") }

func mustAcquire(t *testing.T, s *filestore.Store, holder string, now time.Time) *state.Source {
	t.Helper()
	got, err := s.Acquire(t.Context(), src, holder, now, time.Minute)
	if err != nil {
		t.Fatalf("Acquire(%s): %v", holder, err)
	}
	return got
}

func mustCommit(t *testing.T, s *filestore.Store, holder string, runs []*state.Run, cursor time.Time, idx state.Index) {
	t.Helper()
	if err := s.Commit(t.Context(), src, holder, runs, cursor, idx); err != nil {
		t.Fatalf("Commit(%s): %v", holder, err)
	}
}

func TestFileAndPermissions(t *testing.T) {
	t.Parallel()
	path := statePath(t)
	s := filestore.New(path)
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("New touched the disk: %v", err)
	}
	mustAcquire(t, s, "a", t0)
	mustCommit(t, s, "a", []*state.Run{{Key: "argo/prod/ns/u1", Fingerprint: "1"}}, t0, state.Index{"argo/prod/ns/u1": {Fingerprint: "1"}})

	runFiles, _ := filepath.Glob(filepath.Join(path+".d", "*", "runs", "*.json"))
	parts, _ := filepath.Glob(filepath.Join(path+".d", "*", "index-*.json"))
	if len(runFiles) != 1 || len(parts) != 1 {
		t.Fatalf("run files %v and index parts %v beside the state file, want one of each", runFiles, parts)
	}
	for name, want := range map[string]fs.FileMode{path: 0o600, path + ".lock": 0o600, path + ".d": 0o700 | fs.ModeDir, runFiles[0]: 0o600, parts[0]: 0o600} {
		info, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode() != want {
			t.Errorf("%s has mode %v, want %v", filepath.Base(name), info.Mode(), want)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"state.json", "state.json.d", "state.json.lock"}; !slices.Equal(names, want) {
		t.Errorf("directory holds %v, want %v (no temporary file left)", names, want)
	}
	var doc map[string]any
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &doc); err != nil || doc["version"] != float64(2) {
		t.Errorf("file is not versioned JSON: %v %s", err, b)
	}
}

// TestInstancesShareTheFile: two Stores on one file (as two processes would be) see each other's
// writes at once, although each reuses what it parsed while the file is unchanged.
func TestInstancesShareTheFile(t *testing.T) {
	t.Parallel()
	path := statePath(t)
	a, b := filestore.New(path), filestore.New(path)
	mustAcquire(t, a, "a", t0)
	if _, err := b.Acquire(t.Context(), src, "b", t0, time.Minute); !errors.Is(err, state.ErrLeaseHeld) {
		t.Fatalf("b.Acquire = %v, want ErrLeaseHeld", err)
	}
	run := &state.Run{Key: "argo/prod/ns/u1", Fingerprint: "1", Tasks: map[string]state.Task{"n": {State: "Running", StartedAt: t0}}}
	mustCommit(t, a, "a", []*state.Run{run}, t0, state.Index{run.Key: {Fingerprint: "1", Active: true, Ref: "ns/w/u1"}})
	got := mustAcquire(t, b, "b", t0)
	if !got.Cursor.Equal(t0) || got.Index[run.Key].Ref != "ns/w/u1" {
		t.Errorf("b sees cursor %s, index %v", got.Cursor, got.Index)
	}
	// a parsed the file before b's Acquire: it must notice the change.
	if _, err := a.Acquire(t.Context(), src, "a", t0, time.Minute); !errors.Is(err, state.ErrLeaseHeld) {
		t.Errorf("a.Acquire after b took the lease = %v, want ErrLeaseHeld", err)
	}
	if err := a.Record(t.Context(), "trace", map[string][]byte{"d1": nil}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if seen, err := b.Load(t.Context(), "trace", []string{"d1"}); err != nil || len(seen) != 1 {
		t.Errorf("b.Load = %v, %v", seen, err)
	}
	// Copies, not shared maps: changing what was returned changes nothing stored.
	runs, err := b.LoadRuns(t.Context(), src, []string{run.Key})
	if err != nil {
		t.Fatal(err)
	}
	runs[run.Key].Tasks["n"] = state.Task{State: "Failed"}
	got.Index[run.Key] = state.IndexEntry{Fingerprint: "tampered"}
	again, _ := b.LoadRuns(t.Context(), src, []string{run.Key})
	if again[run.Key].Tasks["n"].State != "Running" {
		t.Errorf("a returned run aliases the store: %v", again[run.Key].Tasks)
	}
	mustCommit(t, b, "b", nil, time.Time{}, got.Index)
	got.Index[run.Key] = state.IndexEntry{Fingerprint: "after commit"}
	if idx := mustAcquire(t, a, "a", t0).Index; idx[run.Key].Fingerprint != "tampered" {
		t.Errorf("a committed index aliases the caller's map: %v", idx)
	}
}

func TestDamagedFile(t *testing.T) {
	t.Parallel()
	for name, content := range map[string]string{
		"truncated":     `{"version":1,"sources":{"argo/prod":{"cursor":"2030-01-`,
		"other version": `{"version":3,"sources":{}}`,
	} {
		path := statePath(t)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := filestore.New(path).Acquire(t.Context(), src, "a", t0, time.Minute)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: Acquire = %v, want an error naming the file", name, err)
		}
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Errorf("%s: the damaged file was overwritten", name)
		}
	}
}

func TestUnusablePath(t *testing.T) {
	t.Parallel()
	parent := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(parent, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := filestore.New(filepath.Join(parent, "state.json")).Acquire(t.Context(), src, "a", t0, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "state directory") {
		t.Errorf("Acquire under a regular file = %v, want a state directory error", err)
	}
	if _, err := filestore.New("").LoadRuns(t.Context(), src, nil); !errors.Is(err, state.ErrInvalid) {
		t.Errorf("a store without a path = %v, want ErrInvalid", err)
	}
}

// TestExpiryPrunes: expired runs and ledger entries leave the file at the next write, as a TTL
// policy would delete them.
func TestExpiryPrunes(t *testing.T) {
	t.Parallel()
	clk := clock.NewManual(t0)
	path := statePath(t)
	s := filestore.New(path, filestore.WithClock(clk))
	runs := []*state.Run{
		{Key: "argo/prod/ns/short", Fingerprint: "1", ExpireAt: t0.Add(time.Hour)},
		{Key: "argo/prod/ns/long", Fingerprint: "2", ExpireAt: t0.Add(48 * time.Hour)},
		{Key: "argo/prod/ns/forever", Fingerprint: "3"},
	}
	mustAcquire(t, s, "a", t0)
	mustCommit(t, s, "a", runs, t0, nil)
	if err := s.Record(t.Context(), "trace", map[string][]byte{"d-short": nil}, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Record(t.Context(), "trace", map[string][]byte{"d-long": nil}, t0.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if seen, _ := s.Load(t.Context(), "trace", []string{"d-short", "d-long"}); len(seen) != 2 {
		t.Fatalf("Load before expiry = %v", seen)
	}

	clk.Set(t0.Add(2 * time.Hour))
	seen, _ := s.Load(t.Context(), "trace", []string{"d-short", "d-long"})
	_, long := seen["d-long"]
	if _, short := seen["d-short"]; !long || short {
		t.Errorf("Load after d-short expired = %v", seen)
	}
	mustAcquire(t, s, "a", clk.Now()) // any write prunes
	got, err := s.LoadRuns(t.Context(), src, []string{"argo/prod/ns/short", "argo/prod/ns/long", "argo/prod/ns/forever"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["argo/prod/ns/short"] != nil {
		t.Errorf("runs after expiry: %v, want long and forever", slices.Sorted(maps.Keys(got)))
	}
	if b, _ := os.ReadFile(path); strings.Contains(string(b), "d-short") || !strings.Contains(string(b), "d-long") {
		t.Errorf("file after expiry: %s", b)
	}
}

// TestLockHonoursContext: a call waiting for another process's lock gives up with its context.
func TestLockHonoursContext(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock")
	}
	t.Parallel()
	path := statePath(t)
	s := filestore.New(path)
	mustAcquire(t, s, "a", t0) // creates the directory and the lock file
	f, err := os.OpenFile(path+".lock", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.LoadRuns(ctx, src, []string{"k"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("LoadRuns while another process holds the lock = %v, want DeadlineExceeded", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadRuns(t.Context(), src, []string{"k"}); err != nil {
		t.Errorf("LoadRuns after the lock was released: %v", err)
	}
}

// Helper processes: the test binary re-run with FARM_FILESTORE_HELPER set.
const helperEnv = "FARM_FILESTORE_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		helperMain(mode)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func helperMain(mode string) {
	path, id := os.Getenv("FARM_FILESTORE_PATH"), os.Getenv("FARM_FILESTORE_ID")
	s := filestore.New(path)
	ctx := context.Background()
	switch mode {
	case "acquire":
		_, err := s.Acquire(ctx, src, id, t0, time.Minute)
		switch {
		case err == nil:
			fmt.Println("won")
		case errors.Is(err, state.ErrLeaseHeld):
			fmt.Println("held")
		default:
			fmt.Println("error:", err)
		}
	case "record":
		for i := range 25 {
			if err := s.Record(ctx, "trace", map[string][]byte{fmt.Sprintf("%s-%d", id, i): nil}, time.Now().Add(time.Hour)); err != nil {
				fmt.Println("error:", err)
				os.Exit(1)
			}
		}
		fmt.Println("done")
	case "commit-forever":
		big := bigRun(2000)
		for i := 1; ; i++ {
			now := t0.Add(time.Duration(i) * time.Hour)
			if _, err := s.Acquire(ctx, src, "crasher", now, time.Minute); err != nil {
				fmt.Println("error:", err)
				os.Exit(1)
			}
			big.Fingerprint = strconv.Itoa(i)
			if err := s.Commit(ctx, src, "crasher", []*state.Run{big}, now, state.Index{big.Key: {Fingerprint: big.Fingerprint}}); err != nil {
				fmt.Println("error:", err)
				os.Exit(1)
			}
			fmt.Println(i)
		}
	}
}

func bigRun(n int) *state.Run {
	tasks := make(map[string]state.Task, n)
	for i := range n {
		tasks[fmt.Sprintf("wf-%d", 1000000000+i*7919)] = state.Task{State: "Succeeded", StartedAt: t0, FinishedAt: t0.Add(time.Second)}
	}
	return &state.Run{Key: "argo/prod/ns/big", Phase: "Running", Tasks: tasks}
}

func helper(mode, path, id string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "FARM_FILESTORE_PATH="+path, "FARM_FILESTORE_ID="+id)
	return cmd
}

// TestProcessesShareTheFile: real processes on one file: exactly one takes a lease, and no
// update is lost when all write at once.
func TestProcessesShareTheFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock: one process per file")
	}
	t.Parallel()
	const n = 4
	path := statePath(t)
	for _, mode := range []string{"acquire", "record"} {
		cmds := make([]*exec.Cmd, n)
		outs := make([]*strings.Builder, n)
		for i := range cmds {
			cmds[i] = helper(mode, path, fmt.Sprintf("p%d", i))
			outs[i] = &strings.Builder{}
			cmds[i].Stdout, cmds[i].Stderr = outs[i], outs[i]
			if err := cmds[i].Start(); err != nil {
				t.Fatal(err)
			}
		}
		for i, c := range cmds {
			if err := c.Wait(); err != nil {
				t.Fatalf("%s helper %d: %v\n%s", mode, i, err, outs[i])
			}
		}
		results := make([]string, n)
		for i, o := range outs {
			results[i] = strings.TrimSpace(o.String())
		}
		switch mode {
		case "acquire":
			slices.Sort(results)
			if want := []string{"held", "held", "held", "won"}; !slices.Equal(results, want) {
				t.Errorf("concurrent Acquire in %d processes: %v, want one winner", n, results)
			}
		case "record":
			var ids []string
			for i := range n {
				for j := range 25 {
					ids = append(ids, fmt.Sprintf("p%d-%d", i, j))
				}
			}
			seen, err := filestore.New(path).Load(t.Context(), "trace", ids)
			if err != nil {
				t.Fatal(err)
			}
			if len(seen) != len(ids) {
				t.Errorf("%d of %d ids recorded by %d concurrent processes survived", len(seen), len(ids), n)
			}
		}
	}
}

// TestCrashMidWrite kills a process that commits in a loop, at whatever point it has reached:
// the file left behind is the last or the next commit, whole.
func TestCrashMidWrite(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGKILL")
	}
	t.Parallel()
	path := statePath(t)
	cmd := helper("commit-forever", path, "")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	last := 0
	lines := bufio.NewScanner(out)
	for last < 5 && lines.Scan() {
		n, err := strconv.Atoi(lines.Text())
		if err != nil {
			t.Fatalf("helper: %s", lines.Text())
		}
		last = n
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	s := filestore.New(path)
	got, err := s.Acquire(t.Context(), src, "survivor", t0.Add(1000*time.Hour), time.Minute)
	if err != nil {
		t.Fatalf("the file after a crash: %v", err)
	}
	runs, err := s.LoadRuns(t.Context(), src, []string{"argo/prod/ns/big"})
	if err != nil {
		t.Fatal(err)
	}
	// The index and cursor are one whole commit; the run file, written first, may be one ahead.
	r := runs["argo/prod/ns/big"]
	n, _ := strconv.Atoi(got.Index[r.Key].Fingerprint)
	ran, _ := strconv.Atoi(r.Fingerprint)
	if n < last || len(r.Tasks) != 2000 || (ran != n && ran != n+1) || !got.Cursor.Equal(t0.Add(time.Duration(n)*time.Hour)) {
		t.Errorf("after commit %d was reported: run %s with %d tasks, index %v, cursor %s — not one whole commit",
			last, r.Fingerprint, len(r.Tasks), got.Index, got.Cursor)
	}
}

// TestFileNeverTorn reads the file, without the lock, while commits replace it: every read must
// be one whole version, which is what a crash at that instant would leave.
func TestFileNeverTorn(t *testing.T) {
	t.Parallel()
	path := statePath(t)
	s := filestore.New(path)
	big := bigRun(2000)
	mustAcquire(t, s, "a", t0)
	mustCommit(t, s, "a", []*state.Run{big}, t0, nil)

	done := make(chan struct{})
	var writeErr error
	go func() {
		defer close(done)
		for i := 1; i <= 15 && writeErr == nil; i++ {
			if _, writeErr = s.Acquire(t.Context(), src, "a", t0, time.Minute); writeErr == nil {
				big.Fingerprint = strconv.Itoa(i)
				writeErr = s.Commit(t.Context(), src, "a", []*state.Run{big}, t0, nil)
			}
		}
	}()
	var reads, torn int
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read while writing: %v", err)
		}
		reads++
		if !json.Valid(b) {
			torn++
		}
	}
	if writeErr != nil {
		t.Fatalf("commit: %v", writeErr)
	}
	if torn > 0 {
		t.Errorf("%d of %d reads during commits saw a torn file", torn, reads)
	}
}

// TestVersion1File: a state file written before runs and the index moved beside it is read as it
// was, and its next Commit moves them out.
func TestVersion1File(t *testing.T) {
	t.Parallel()
	path := statePath(t)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	v1 := `{"version":1,"sources":{"argo/prod":{"cursor":"2030-01-02T03:04:05Z",` +
		`"index":{"argo/prod/ns/u1":{"f":"7","a":true,"r":"ns/w/u1"}},` +
		`"runs":{"argo/prod/ns/u1":{"fingerprint":"7","phase":"Running","tasks":{"n#0":{"s":"Running"}}}}}},"ledger":{}}`
	if err := os.WriteFile(path, []byte(v1), 0o600); err != nil {
		t.Fatal(err)
	}
	s := filestore.New(path)
	got := mustAcquire(t, s, "a", t0.Add(time.Hour))
	if !got.Cursor.Equal(t0) || got.Index["argo/prod/ns/u1"].Ref != "ns/w/u1" {
		t.Fatalf("version 1 file read as cursor %s, index %v", got.Cursor, got.Index)
	}
	mustCommit(t, s, "a", nil, t0.Add(time.Hour), got.Index)
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), `"runs"`) || strings.Contains(string(b), `"index":`) {
		t.Errorf("after a Commit the state file still holds runs or the index inline: %s", b)
	}
	runs, err := filestore.New(path).LoadRuns(t.Context(), src, []string{"argo/prod/ns/u1"})
	if err != nil || runs["argo/prod/ns/u1"] == nil || runs["argo/prod/ns/u1"].Tasks["n#0"].State != "Running" {
		t.Errorf("the version 1 run after its move: %v, %v", runs, err)
	}
	if idx := mustAcquire(t, filestore.New(path), "a", t0.Add(2*time.Hour)).Index; !maps.Equal(idx, got.Index) {
		t.Errorf("index read back from its parts: %v, want %v", idx, got.Index)
	}
}

// TestLedgerOfEarlierFiles: a file written before ledger entries had data, whose entries are
// their expiry alone, is read; its entries have no data.
func TestLedgerOfEarlierFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)
	old := `{"version":2,"sources":{},"ledger":{"trace":{"d1":"` + later + `","d2":"2000-01-01T00:00:00Z"}}}`
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := filestore.New(path).Load(t.Context(), "trace", []string{"d1", "d2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["d1"]; !ok || len(got) != 1 || len(got["d1"]) != 0 {
		t.Errorf("Load = %v, want d1 alone (d2 expired), without data", got)
	}
}
