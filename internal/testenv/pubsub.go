package testenv

import (
	"context"
	"testing"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// PubSub starts the in-process Pub/Sub server (pstest) with topics (ids) of project, and returns it
// with a connection to it for FARM's clients (option.WithGRPCConn). Both are closed at the end of
// the test, after the cleanups the test registers later.
func PubSub(t testing.TB, project string, topics ...string) (*pstest.Server, *grpc.ClientConn) {
	t.Helper()
	srv := pstest.NewServer()
	t.Cleanup(func() { _ = srv.Close() })
	conn, err := grpc.NewClient(srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c, err := pubsub.NewClient(context.Background(), project, option.WithGRPCConn(conn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	for _, id := range topics {
		name := "projects/" + project + "/topics/" + id
		if _, err := c.TopicAdminClient.CreateTopic(context.Background(), &pubsubpb.Topic{Name: name}); err != nil {
			t.Fatalf("create topic %s: %v", name, err)
		}
	}
	return srv, conn
}
