package argosim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestFaults(t *testing.T) {
	tests := []struct {
		name       string
		fault      Fault
		status     int
		body       string
		retryAfter string
	}{
		{"internal", Fault{Kind: FaultInternal}, 500, `{"code":13,"message":"simulated fault: internal error"}`, ""},
		{"unavailable", Fault{Kind: FaultUnavailable}, 503, "upstream connect error or disconnect/reset before headers (simulated)\n", ""},
		{"rate limited", Fault{Kind: FaultRateLimited, RetryAfter: 1500 * time.Millisecond}, 429, `{"code":8,"message":"simulated fault: too many requests"}`, "2"},
		{"unauthorized", Fault{Kind: FaultUnauthorized}, 401, `{"code":16,"message":"token not valid. see https://argo-workflows.readthedocs.io/en/latest/faq/"}`, ""},
		{"forbidden", Fault{Kind: FaultForbidden}, 403, `{"code":7,"message":"Permission denied, you are not allowed to list workflows in namespace \"argo\". Maybe you want to specify a namespace with query parameter ` + "`.namespace=argo`" + `?"}`, ""},
		{"malformed", Fault{Kind: FaultMalformed}, 200, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Options{})
			f.put(dagWorkflow("argo", "a", t0))
			tc.fault.Count = 2
			f.srv.InjectFault(tc.fault)
			for range 2 {
				status, hdr, body := f.get("/api/v1/workflows/argo", nil)
				if status != tc.status || tc.body != "" && string(body) != tc.body || hdr.Get("Retry-After") != tc.retryAfter {
					t.Fatalf("got %d %q Retry-After %q", status, body, hdr.Get("Retry-After"))
				}
				if tc.fault.Kind == FaultMalformed {
					var v any
					if err := json.Unmarshal(body, &v); err == nil {
						t.Fatal("malformed body decoded")
					}
				}
			}
			if status, _, _ := f.get("/api/v1/workflows/argo", nil); status != 200 {
				t.Errorf("third request: %d, want the fault used up", status)
			}
			if got := f.srv.Stats()[EndpointList]; got.Calls != 3 || (tc.status >= 400) != (got.Errors == 2) {
				t.Errorf("stats %+v", got)
			}
		})
	}
}

func TestFaultEndpointFilterAndOrder(t *testing.T) {
	f := newFixture(t, Options{})
	f.put(dagWorkflow("argo", "a", t0))
	f.srv.InjectFault(Fault{Kind: FaultInternal, Endpoint: EndpointGet})
	f.srv.InjectFault(Fault{Kind: FaultForbidden})
	if status, _, _ := f.get("/api/v1/workflows/argo", nil); status != 403 {
		t.Errorf("list got %d, want the first fault that applies to it (403)", status)
	}
	if status, _, _ := f.get("/api/v1/workflows/argo/a", nil); status != 500 {
		t.Errorf("get got %d, want 500", status)
	}
	if status, _, _ := f.get("/api/v1/workflows/argo/a", nil); status != 200 {
		t.Errorf("get got %d after faults were used", status)
	}
	f.srv.InjectFault(Fault{Kind: FaultInternal, Count: 5})
	f.srv.ClearFaults()
	if status, _, _ := f.get("/api/v1/workflows/argo", nil); status != 200 {
		t.Errorf("ClearFaults left a fault: %d", status)
	}
}

func TestHangUntilClientDeadline(t *testing.T) {
	f := newFixture(t, Options{})
	f.srv.InjectFault(Fault{Kind: FaultHang})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.http.URL+"/api/v1/workflows/argo", nil)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the client's deadline", err)
	}
	if status, _, _ := f.get("/api/v1/workflows/argo", nil); status != 200 {
		t.Errorf("next request %d", status)
	}
}

func TestCloseReleasesHangingRequests(t *testing.T) {
	f := newFixture(t, Options{})
	f.srv.InjectFault(Fault{Kind: FaultHang})
	hanging := make(chan struct{})
	f.srv.hangHook = func() { close(hanging) }
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get(f.http.URL + "/api/v1/workflows/argo")
		if err != nil {
			done <- result{err: err}
			return
		}
		resp.Body.Close()
		done <- result{status: resp.StatusCode}
	}()
	<-hanging
	f.srv.Close()
	if r := <-done; r.err != nil || r.status != http.StatusServiceUnavailable {
		t.Fatalf("held request ended with %+v, want 503", r)
	}
}
