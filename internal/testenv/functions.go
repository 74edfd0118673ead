package testenv

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"
)

// The Functions Framework has one registry and one server per process, with no way to stop the
// server: it is started once per test binary.
var (
	frameworkOnce sync.Once
	frameworkURL  string
	frameworkErr  error
)

// FunctionsFramework serves the function registered as target (functions.CloudEvent or
// functions.HTTP, called by register) with the Functions Framework on loopback, the way Cloud Run
// runs the deployed source: FUNCTION_TARGET picks the function, served at every path. It returns
// the base URL. Only the first call of a test binary registers and starts; later calls return the
// same server, so a test that swaps behaviour does it behind the registered function.
func FunctionsFramework(target string, register func()) (string, error) {
	frameworkOnce.Do(func() {
		os.Setenv("FUNCTION_TARGET", target) // read once, when the server starts
		register()
		frameworkURL, frameworkErr = startFramework()
	})
	return frameworkURL, frameworkErr
}

func startFramework() (string, error) {
	port, err := FreePort()
	if err != nil {
		return "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	errc := make(chan error, 1)
	go func() { errc <- funcframework.StartHostPort("127.0.0.1", strconv.Itoa(port)) }()
	// A readiness wait for the server being started (the framework offers no other signal).
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-errc:
			return "", fmt.Errorf("functions framework: %w", err)
		default:
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "http://" + addr + "/", nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the functions framework did not listen on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Push POSTs body to url the way a Pub/Sub push subscription delivers a message (the plain push
// body, no CloudEvent headers) and returns the status and the answer's body.
func Push(t testing.TB, url string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, answer
}
