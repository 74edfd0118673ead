// Package deadlettertest gives tests a dead-letter topic on the in-process Pub/Sub server, with
// FARM's real publisher, and what it received.
package deadlettertest

import (
	"context"
	"testing"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/farmobs/farm/pkg/local"
	"github.com/farmobs/farm/pkg/publish"
)

// Project and TopicID of the dead-letter topic.
const (
	Project = "farm-test"
	TopicID = "farm-dead-letter"
)

// Topic is a dead-letter topic on an in-process Pub/Sub server.
type Topic struct {
	Server *pstest.Server
	// Publisher publishes to the topic; Missing to a topic that does not exist (a dead-letter
	// topic that cannot take messages).
	Publisher, Missing *publish.Publisher
}

// New starts the server with the topic; everything is closed at the end of the test.
func New(t testing.TB) *Topic {
	t.Helper()
	srv := pstest.NewServer()
	conn, err := grpc.NewClient(srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := pubsub.NewClient(ctx, Project, option.WithGRPCConn(conn))
	if err != nil {
		t.Fatal(err)
	}
	if err := local.EnsureTopic(ctx, c, Project, TopicID); err != nil {
		t.Fatal(err)
	}
	tp := &Topic{
		Server:    srv,
		Publisher: publish.New(Project, TopicID, option.WithGRPCConn(conn)),
		Missing:   publish.New(Project, "no-such-topic", option.WithGRPCConn(conn)),
	}
	t.Cleanup(func() {
		_ = tp.Publisher.Close()
		_ = tp.Missing.Close()
		_ = c.Close()
		_ = conn.Close()
		_ = srv.Close()
	})
	return tp
}

// Letters returns the messages the topic received, in order.
func (tp *Topic) Letters() []*pstest.Message { return tp.Server.Messages() }
