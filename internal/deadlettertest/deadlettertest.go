// Package deadlettertest gives tests a dead-letter topic on the in-process Pub/Sub server, with
// FARM's real publisher, and what it received.
package deadlettertest

import (
	"testing"

	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/api/option"

	"github.com/farmobs/farm/internal/testenv"
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
	srv, conn := testenv.PubSub(t, Project, TopicID)
	tp := &Topic{
		Server:    srv,
		Publisher: publish.New(Project, TopicID, option.WithGRPCConn(conn)),
		Missing:   publish.New(Project, "no-such-topic", option.WithGRPCConn(conn)),
	}
	t.Cleanup(func() {
		_ = tp.Publisher.Close()
		_ = tp.Missing.Close()
	})
	return tp
}

// Letters returns the messages the topic received, in order.
func (tp *Topic) Letters() []*pstest.Message { return tp.Server.Messages() }
