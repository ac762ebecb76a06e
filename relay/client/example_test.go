package client_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/client"
	"github.com/tainik/tainik/relay/server"
)

// startRelay runs a relay on a loopback port for the example.
func startRelay() (string, func()) {
	dir, _ := os.MkdirTemp("", "tainik-example-")
	srv, err := server.New(server.Config{DataDir: dir})
	if err != nil {
		panic(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	return srv.Address(ln.Addr()).String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		os.RemoveAll(dir)
	}
}

func Example() {
	addr, stop := startRelay()
	defer stop()
	ctx := context.Background()

	// The recipient creates a queue and hands its sender id to a contact.
	alice, err := client.Dial(ctx, addr, client.Options{})
	if err != nil {
		panic(err)
	}
	defer alice.Close()
	q, _ := alice.CreateQueue(ctx, false)
	alice.Subscribe(ctx, q)

	// The contact sends (MLS ciphertext in real use) to the sender id.
	bob, _ := client.Dial(ctx, addr, client.Options{})
	defer bob.Close()
	if err := bob.Send(ctx, q.SenderID, relay.MsgID{1}, []byte("ciphertext"), nil); err != nil {
		panic(err)
	}

	push := (<-alice.Pushes()).(*relay.QueuePush)
	content, _ := relay.Unpad(push.Message.Payload)
	fmt.Printf("%s in a %d-byte padded payload\n", content, len(push.Message.Payload))
	alice.Ack(ctx, q, push.Message.MsgID)
	// Output: ciphertext in a 1024-byte padded payload
}

func ExampleClient_Append() {
	addr, stop := startRelay()
	defer stop()
	ctx := context.Background()
	c, _ := client.Dial(ctx, addr, client.Options{})
	defer c.Close()

	groupID := []byte("group")
	l, _ := c.CreateLog(ctx, groupID, 7)
	commit := mlsCommit(groupID, 7)
	seq, epoch, _ := c.Append(ctx, l, commit)
	fmt.Println("first commit:", seq, epoch)
	_, _, err := c.Append(ctx, l, mlsCommit(groupID, 7))
	fmt.Println("second commit for epoch 7:", err)
	// Output:
	// first commit: 1 8
	// second commit for epoch 7: relay: stale epoch: fetch the log and re-base (11): the log is at epoch 8: fetch and re-base
}

// mlsCommit is a PrivateMessage header carrying a commit, with a fake body.
func mlsCommit(groupID []byte, epoch uint64) []byte {
	b := []byte{0, 1, 0, 2}
	b = relay.AppendVarint(b, uint32(len(groupID)))
	b = append(b, groupID...)
	b = append(b, byte(epoch>>56), byte(epoch>>48), byte(epoch>>40), byte(epoch>>32), byte(epoch>>24), byte(epoch>>16), byte(epoch>>8), byte(epoch))
	return append(b, relay.ContentTypeCommit, 0xde, 0xad)
}
