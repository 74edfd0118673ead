package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
)

// FirestoreEmulatorHostVar is the variable the Firestore client library reads to reach an
// emulator instead of Google Cloud.
const FirestoreEmulatorHostVar = "FIRESTORE_EMULATOR_HOST"

const (
	firestoreJar   = "platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
	firestoreMain  = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"
	firestoreStart = 2 * time.Minute // a cold JVM on a busy two-core machine is slow
	// firestoreAttempts: a free port can be taken between FreePort and the emulator's bind.
	firestoreAttempts = 3
)

// One emulator per test process, started on first use. The outcome, error included, is kept so
// that a missing emulator costs one attempt, not one per test.
var firestoreEmu struct {
	mu   sync.Mutex
	done bool
	host string
	err  error
}

// FirestoreEmulator returns the host:port of a running Firestore emulator, also exported to this
// process as FIRESTORE_EMULATOR_HOST so that every Firestore client created here uses it.
//
// With FIRESTORE_EMULATOR_HOST already set (`make test` starts one shared emulator) that emulator
// is used. Otherwise the emulator jar of the installed Google Cloud CLI is started once per test
// process and stopped by Main (or killed with the process). If neither works the test fails when
// FARM_REQUIRE_EMULATORS=1 and is skipped otherwise.
func FirestoreEmulator(t testing.TB) string {
	t.Helper()
	firestoreEmu.mu.Lock()
	defer firestoreEmu.mu.Unlock()
	if !firestoreEmu.done {
		firestoreEmu.host, firestoreEmu.err = firestoreHost()
		firestoreEmu.done = true
	}
	if firestoreEmu.err != nil {
		Unavailable(t, "Firestore emulator", firestoreEmu.err)
	}
	return firestoreEmu.host
}

// Firestore returns a client of the emulator on a project of its own (see FirestoreProject),
// closed when the test ends.
func Firestore(t testing.TB) *firestore.Client {
	t.Helper()
	FirestoreEmulator(t)
	c, err := firestore.NewClient(t.Context(), FirestoreProject(t))
	if err != nil {
		t.Fatalf("firestore client on the emulator: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var (
	projectSeq   atomic.Int64
	projectToken = randomToken()
)

// FirestoreProject returns a project id used by no other test, in this process or in another one
// sharing the emulator: the emulator keeps each project apart, so tests need no wipe.
func FirestoreProject(t testing.TB) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, t.Name())
	name = strings.Trim(name, "-")
	if len(name) > 30 {
		name = name[len(name)-30:]
	}
	return fmt.Sprintf("t-%s-%s-%d", projectToken, strings.Trim(name, "-"), projectSeq.Add(1))
}

func randomToken() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}

func firestoreHost() (string, error) {
	if host := os.Getenv(FirestoreEmulatorHostVar); host != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := Probe(ctx, "http://"+host+"/", "Ok"); err != nil {
			return "", fmt.Errorf("%s=%s does not answer: %w", FirestoreEmulatorHostVar, host, err)
		}
		return host, nil
	}
	host, err := startFirestore()
	if err != nil {
		return "", err
	}
	if err := os.Setenv(FirestoreEmulatorHostVar, host); err != nil {
		return "", fmt.Errorf("export %s: %w", FirestoreEmulatorHostVar, err)
	}
	return host, nil
}

// startFirestore runs the emulator jar directly: `gcloud emulators firestore start` is slower and
// killing its wrapper leaves the JVM running.
func startFirestore() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), firestoreStart)
	defer cancel()
	java, err := exec.LookPath("java")
	if err != nil {
		return "", fmt.Errorf("java (Java 17+) is not on PATH; it runs the Firestore emulator: %w", err)
	}
	jar, err := firestoreJarPath(ctx)
	if err != nil {
		return "", err
	}
	var last error
	for range firestoreAttempts {
		host, p, err := runFirestore(ctx, java, jar)
		switch {
		case err == nil:
			return host, nil
		case p == nil: // could not even start
			return "", err
		}
		last = err
		select {
		case <-p.Exited(): // e.g. the port was taken between FreePort and the bind: try another
		default: // running but not answering in time: give up
			p.Stop()
			return "", err
		}
	}
	return "", last
}

func runFirestore(ctx context.Context, java, jar string) (string, *Process, error) {
	port, err := FreePort()
	if err != nil {
		return "", nil, err
	}
	host := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(java, "-cp", jar, firestoreMain, "start", "--host=127.0.0.1", "--port="+strconv.Itoa(port))
	p, err := StartProcess("Firestore emulator", cmd)
	if err != nil {
		return "", nil, err
	}
	return host, p, WaitHTTP(ctx, p, "http://"+host+"/", "Ok")
}

// firestoreJarPath finds the emulator jar inside the Google Cloud CLI installation.
func firestoreJarPath(ctx context.Context) (string, error) {
	gcloud, err := exec.LookPath("gcloud")
	if err != nil {
		return "", fmt.Errorf("the Google Cloud CLI (gcloud) is not on PATH; it ships the Firestore emulator: %w", err)
	}
	out, err := exec.CommandContext(ctx, gcloud, "info", "--format=value(installation.sdk_root)").Output()
	if err != nil {
		return "", fmt.Errorf("gcloud info (to find the SDK root): %w", err)
	}
	jar := filepath.Join(strings.TrimSpace(string(out)), firestoreJar)
	if _, err := os.Stat(jar); err != nil {
		return "", fmt.Errorf("the Firestore emulator is not installed (install the gcloud component cloud-firestore-emulator): %w", err)
	}
	return jar, nil
}
