package testenv

import (
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestFirestoreProjectsAreIsolated: each test's project is a database of its own.
func TestFirestoreProjectsAreIsolated(t *testing.T) {
	t.Parallel()
	a, b := Firestore(t), Firestore(t)
	if _, err := a.Doc("things/one").Set(t.Context(), map[string]any{"n": 1}); err != nil {
		t.Fatalf("write: %v", err)
	}
	if _, err := a.Doc("things/one").Get(t.Context()); err != nil {
		t.Errorf("read back: %v", err)
	}
	if _, err := b.Doc("things/one").Get(t.Context()); status.Code(err) != codes.NotFound {
		t.Errorf("another project's document is visible: %v", err)
	}
	if p, q := FirestoreProject(t), FirestoreProject(t); p == q {
		t.Errorf("FirestoreProject returned %q twice", p)
	}
}

func TestFirestoreHostFromEnvMustAnswer(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(FirestoreEmulatorHostVar, "127.0.0.1:"+strconv.Itoa(port))
	if _, err := firestoreHost(); err == nil || !strings.Contains(err.Error(), FirestoreEmulatorHostVar) {
		t.Errorf("firestoreHost with nothing listening = %v, want an error naming %s", err, FirestoreEmulatorHostVar)
	}
}
