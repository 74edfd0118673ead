package publish_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/farmobs/farm/internal/local"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/publish"
)

const project = "p"

func server(t *testing.T, opts ...pstest.ServerReactorOption) (*pstest.Server, *grpc.ClientConn) {
	t.Helper()
	srv := pstest.NewServer(opts...)
	conn, err := grpc.NewClient(srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(); _ = srv.Close() })
	return srv, conn
}

func createTopic(t *testing.T, conn *grpc.ClientConn, topic string) {
	t.Helper()
	c, err := pubsub.NewClient(context.Background(), project, option.WithGRPCConn(conn))
	if err != nil {
		t.Fatal(err)
	}
	if err := local.EnsureTopic(context.Background(), c, project, topic); err != nil {
		t.Fatal(err)
	}
}

func msgs(key string, n int) []event.Message {
	var out []event.Message
	for i := range n {
		out = append(out, event.Message{Data: []byte(fmt.Sprint(i)), OrderingKey: key, Attributes: map[string]string{"i": fmt.Sprint(i)}})
	}
	return out
}

func TestPublishWaitsForEveryAckInOrder(t *testing.T) {
	srv, conn := server(t)
	createTopic(t, conn, "deltas")
	p := publish.New(project, "deltas", option.WithGRPCConn(conn))
	defer p.Close()
	batch := append(msgs("run-a", 50), msgs("run-b", 50)...)
	if err := p.Publish(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	// Publish returned: every message is on the server already, nothing is in flight.
	got := srv.Messages()
	if len(got) != 100 {
		t.Fatalf("server has %d messages after Publish returned, want 100", len(got))
	}
	next := map[string]int{}
	for _, m := range got {
		if want := fmt.Sprint(next[m.OrderingKey]); string(m.Data) != want || m.Attributes["i"] != want {
			t.Fatalf("key %s: got message %s, want %s (order lost)", m.OrderingKey, m.Data, want)
		}
		next[m.OrderingKey]++
	}
}

func TestPublishFailureIsReturnedAndTheKeyResumes(t *testing.T) {
	srv, conn := server(t)
	p := publish.New(project, "later", option.WithGRPCConn(conn))
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The topic does not exist yet: every message fails, and the ordering key is paused.
	err := p.Publish(ctx, msgs("run-a", 3))
	if err == nil || !strings.Contains(err.Error(), "later") {
		t.Fatalf("publish to a missing topic: err = %v, want an error naming the topic", err)
	}
	createTopic(t, conn, "later")
	if err := p.Publish(ctx, msgs("run-a", 2)); err != nil {
		t.Fatalf("the same ordering key after a failure: %v (was it resumed?)", err)
	}
	if n := len(srv.Messages()); n != 2 {
		t.Fatalf("%d messages on the server, want 2", n)
	}
}

func TestPublishServerError(t *testing.T) {
	_, conn := server(t, pstest.WithErrorInjection("Publish", codes.PermissionDenied, "no publisher role"))
	createTopic(t, conn, "deltas")
	p := publish.New(project, "deltas", option.WithGRPCConn(conn))
	defer p.Close()
	err := p.Publish(context.Background(), msgs("k", 8))
	if err == nil || !strings.Contains(err.Error(), "no publisher role") {
		t.Fatalf("err = %v, want the server's reason", err)
	}
}

func TestPublishNeedsAProject(t *testing.T) {
	if err := publish.New("", "t").Publish(context.Background(), msgs("k", 1)); err == nil || !strings.Contains(err.Error(), "FARM_PROJECT_ID") {
		t.Fatalf("err = %v, want one naming FARM_PROJECT_ID", err)
	}
}
