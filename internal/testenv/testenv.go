// Package testenv gives tests the real backing services FARM talks to (the Firestore emulator of
// the Google Cloud CLI, the BigQuery emulator) and the shared plumbing to run them: starting a
// helper process that cannot outlive the test binary, waiting until it answers, and failing or
// skipping clearly when a service is missing.
//
// A test package that starts emulators should stop them when its tests end:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// On Linux a started process is also killed by the kernel if the test binary dies (a panic, a
// -timeout), so no emulator is leaked even without TestMain.
package testenv

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// RequireEmulatorsVar names the environment variable that turns a missing emulator from a skipped
// test into a failed one. `make test` and CI set it to 1.
const RequireEmulatorsVar = "FARM_REQUIRE_EMULATORS"

// Main runs the package's tests, then stops every process started through this package, and
// exits with the tests' status.
func Main(m *testing.M) {
	code := m.Run()
	StopAll()
	os.Exit(code)
}

// RequireEmulators reports whether a missing emulator must fail the tests.
func RequireEmulators() bool { return os.Getenv(RequireEmulatorsVar) == "1" }

// Unavailable stops the test because what it needs is not there: t.Fatal when emulators are
// required (FARM_REQUIRE_EMULATORS=1), t.Skip otherwise. The message names what is missing.
func Unavailable(t testing.TB, what string, err error) {
	t.Helper()
	msg := fmt.Sprintf("%s unavailable: %v", what, err)
	if RequireEmulators() {
		t.Fatalf("%s (%s=1)", msg, RequireEmulatorsVar)
	}
	t.Skipf("%s (set %s=1 to make this a failure; `make test` provides the emulators)", msg, RequireEmulatorsVar)
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Process is a helper server started by a test binary.
type Process struct {
	name    string
	cmd     *exec.Cmd
	out     *tail
	done    chan struct{}
	waitErr error
	stop    sync.Once
}

var (
	procMu sync.Mutex
	procs  []*Process
)

// StartProcess starts cmd (its output is kept for error messages) and registers it with StopAll.
// The process gets its own process group, killed whole on Stop, and on Linux it is killed by the
// kernel when the test binary exits for any reason.
func StartProcess(name string, cmd *exec.Cmd) (*Process, error) {
	p := &Process{name: name, cmd: cmd, out: &tail{max: 16 << 10}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = procAttr()
	cmd.WaitDelay = 5 * time.Second // a grandchild holding the output pipe must not hang Wait
	started := make(chan error, 1)
	go func() {
		// The parent-death signal is tied to the thread that forked the child: keep this
		// goroutine on its thread for the child's whole life.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	procMu.Lock()
	procs = append(procs, p)
	procMu.Unlock()
	return p, nil
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Output returns the last lines the process wrote, for error messages.
func (p *Process) Output() string { return p.out.String() }

// Stop terminates the process group (SIGTERM, then SIGKILL after a grace period) and waits for it.
func (p *Process) Stop() {
	p.stop.Do(func() {
		signalGroup(p.cmd, false)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			signalGroup(p.cmd, true)
			<-p.done
		}
	})
}

// StopAll stops every process started through StartProcess.
func StopAll() {
	procMu.Lock()
	ps := procs
	procs = nil
	procMu.Unlock()
	for _, p := range ps {
		p.Stop()
	}
}

// WaitHTTP polls url until it answers 200 with a body containing want, the process exits, or ctx
// ends. It is a readiness wait for a server being started, not an assertion.
func WaitHTTP(ctx context.Context, p *Process, url, want string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = probe(ctx, client, url, want); last == nil {
			return nil
		}
		select {
		case <-p.Exited():
			return fmt.Errorf("%s exited before answering (%w); output:\n%s", p.name, p.waitErr, p.Output())
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer %s: %w (last: %w); output:\n%s", p.name, url, ctx.Err(), last, p.Output())
		case <-tick.C:
		}
	}
}

// Probe checks once that url answers 200 with a body containing want.
func Probe(ctx context.Context, url, want string) error {
	return probe(ctx, &http.Client{Timeout: 5 * time.Second}, url, want)
}

func probe(ctx context.Context, client *http.Client, url, want string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
		return fmt.Errorf("GET %s: %s %q, want 200 with %q", url, resp.Status, body, want)
	}
	return nil
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
