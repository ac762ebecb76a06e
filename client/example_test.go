package client_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"time"

	"github.com/tainik/tainik/client"
	"github.com/tainik/tainik/relay/server"
)

// This example connects two users through an invitation link and
// exchanges a message.
func Example() {
	dir, _ := os.MkdirTemp("", "tainik-example-")
	defer os.RemoveAll(dir)
	srv, err := server.New(server.Config{DataDir: dir + "/relay"})
	if err != nil {
		log.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	relayAddr := srv.Address(ln.Addr()).String()

	ctx := context.Background()
	fast := client.Options{KDF: client.KDFParams{Time: 1, Memory: 64, Threads: 1}} // tests only
	alice, err := client.Init(dir+"/alice", []byte("alice's passphrase"), relayAddr, fast)
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Close()
	bob, err := client.Init(dir+"/bob", []byte("bob's passphrase"), relayAddr, fast)
	if err != nil {
		log.Fatal(err)
	}
	defer bob.Close()

	// Alice invites; Bob answers the link; Alice accepts on her next
	// sync, and Bob joins on his.
	inv, err := alice.Invite(ctx, "bob", 24*time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	if err := bob.Connect(ctx, inv.Link(), "alice"); err != nil {
		log.Fatal(err)
	}
	alice.Sync(ctx)
	bob.Sync(ctx)

	na, _ := alice.SafetyNumber("bob")
	nb, _ := bob.SafetyNumber("alice")
	fmt.Println("same safety number:", na == nb)

	cv, _ := alice.FindConversation("bob")
	alice.Send(ctx, cv, "hello bob")
	rep, _ := bob.Sync(ctx)
	for _, m := range rep.New {
		fmt.Printf("%s: %s\n", m.Sender, m.Text)
	}
	// Output:
	// same safety number: true
	// alice: hello bob
}
