package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB that records Skipf and Fatalf instead of stopping the goroutine.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Skipf(format string, args ...any)  { r.skipped = fmt.Sprintf(format, args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestUnavailable(t *testing.T) {
	missing := errors.New("java is not on PATH")
	for _, tc := range []struct {
		require  string
		wantFail bool
	}{{"1", true}, {"", false}, {"0", false}} {
		t.Setenv(RequireEmulatorsVar, tc.require)
		r := &recorder{TB: t}
		Unavailable(r, "Firestore emulator", missing)
		got := r.skipped
		if tc.wantFail {
			got = r.failed
		}
		if (r.failed != "") != tc.wantFail || !strings.Contains(got, "Firestore emulator unavailable: java is not on PATH") {
			t.Errorf("%s=%q: failed %q, skipped %q", RequireEmulatorsVar, tc.require, r.failed, r.skipped)
		}
	}
}

func TestWaitHTTPReportsExit(t *testing.T) {
	t.Parallel()
	p, err := StartProcess("doomed server", exec.Command("sh", "-c", "echo cannot bind; exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	err = WaitHTTP(t.Context(), p, "http://127.0.0.1:"+strconv.Itoa(port)+"/", "Ok")
	if err == nil || !strings.Contains(err.Error(), "doomed server exited") || !strings.Contains(err.Error(), "cannot bind") {
		t.Errorf("WaitHTTP = %v, want the exit and the output", err)
	}
}

// alive reports whether pid is a process that has not finished (a zombie has).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// waitDead waits, boundedly, for the kernel to finish a process that was sent a signal.
func waitDead(t *testing.T, pid int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for alive(pid) {
		select {
		case <-ctx.Done():
			t.Fatalf("process %d still runs", pid)
		case <-tick.C:
		}
	}
}

// waitFile waits for a helper to write path.
func waitFile(t *testing.T, p *Process, path string) string {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(path); err == nil && strings.HasSuffix(string(b), "\n") {
			return strings.TrimSpace(string(b))
		}
		select {
		case <-p.Exited():
			t.Fatalf("helper exited early: %s", p.Output())
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-tick.C:
		}
	}
}

// TestStopKillsTheGroup: Stop ends the process and whatever it started.
func TestStopKillsTheGroup(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("process groups are checked through /proc")
	}
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	p, err := StartProcess("shell", exec.Command("sh", "-c", "sleep 300 & echo $! > "+pidFile+"; wait"))
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(waitFile(t, p, pidFile))
	if err != nil {
		t.Fatal(err)
	}
	p.Stop()
	select {
	case <-p.Exited():
	default:
		t.Fatal("Stop returned before the process exited")
	}
	waitDead(t, child)
}

// TestParentDeathKillsChild: a test binary that dies without stopping its helpers (a panic, a
// -timeout) leaks nothing. The test re-runs itself as that careless binary.
func TestParentDeathKillsChild(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("parent-death signal is Linux only")
	}
	if os.Getenv("TESTENV_CARELESS") == "1" {
		p, err := StartProcess("sleeper", exec.Command("sleep", "300"))
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(2)
		}
		fmt.Println(p.cmd.Process.Pid)
		os.Exit(0) // no StopAll
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestParentDeathKillsChild$")
	cmd.Env = append(os.Environ(), "TESTENV_CARELESS=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := bufio.NewScanner(out)
	line.Scan()
	pid, err := strconv.Atoi(strings.TrimSpace(line.Text()))
	if err != nil {
		t.Fatalf("helper said %q", line.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	waitDead(t, pid) // fails the test if the sleeper outlives its parent
}
