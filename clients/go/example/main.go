// Command example orders a license over gRPC, waits until it is ACTIVE and reads its
// events from the change feed.
//
//	LICENSE_FACADE_TOKEN=... example -target 127.0.0.1:50051
//
// The token is a client's API token: its SHA-256 is in the service's clients file
// (`serve --sandbox` without one accepts `sandbox-token`). Exits 0 when the license is
// ACTIVE and its events were read, 1 otherwise.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/grpc/status"

	"license-facade/clients/go/licensefacade"
	pb "license-facade/clients/go/licensefacade/v1"
)

// settled are the states a license does not leave by itself.
var settled = map[pb.License_State]bool{
	pb.License_ACTIVE:          true,
	pb.License_FAILED:          true,
	pb.License_NEEDS_ATTENTION: true,
	pb.License_CANCELLED:       true,
}

func main() {
	target := flag.String("target", "127.0.0.1:50051", "gRPC address, host:port")
	serverID := flag.String("server-id", "example-go-1", "the server's id")
	ip := flag.String("ip", "203.0.113.201", "the server's address")
	panel := flag.String("panel", "ISPmanager 6 Lite", "the panel to order")
	timeout := flag.Duration("timeout", 60*time.Second, "limit of each wait")
	flag.Parse()

	token := os.Getenv("LICENSE_FACADE_TOKEN")
	if token == "" {
		fmt.Fprintln(os.Stderr, "set LICENSE_FACADE_TOKEN to a client token of the service")
		os.Exit(2)
	}
	conn, err := licensefacade.Dial(*target, token, nil)
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	client := licensefacade.NewClient(conn)

	license, err := order(client, *serverID, *ip, *panel, *timeout)
	if err != nil {
		fail(err)
	}
	license, err = waitUntilSettled(client, license.Id, *timeout)
	if err != nil {
		fail(err)
	}
	if license.State != pb.License_ACTIVE {
		fail(fmt.Errorf("license %s ended %s: %s %s", license.Id, license.State,
			license.GetLastError().GetCode(), license.GetLastError().GetMessage()))
	}
	if err := readEvents(client, license.Id, *timeout); err != nil {
		fail(err)
	}
}

// order orders the license and waits (within the call's deadline, at most 60 s on the
// service) for it to become ACTIVE. The request id makes a retry of this very call
// safe: the service answers the first result instead of buying twice.
func order(client pb.LicenseServiceClient, serverID, ip, panel string, timeout time.Duration) (*pb.License, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	answer, err := client.OrderLicense(ctx, &pb.OrderLicenseRequest{
		Server:        &pb.Server{Id: serverID, Ip: ip},
		Panel:         panel,
		PeriodMonths:  1,
		WaitForActive: true,
		RequestId:     "example-" + randomID(),
	})
	if err != nil {
		return nil, err
	}
	what := "already there"
	if answer.Created {
		what = "ordered"
	}
	l := answer.License
	fmt.Printf("license %s for %s (%s): %s, %s\n", l.Id, l.ServerId, l.Panel, what, l.State)
	return l, nil
}

// waitUntilSettled polls GetLicense until the license is in a settled state (the
// order call may have returned before, e.g. when its own deadline was shorter).
func waitUntilSettled(client pb.LicenseServiceClient, id string, timeout time.Duration) (*pb.License, error) {
	deadline := time.Now().Add(timeout)
	delay := 200 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		answer, err := client.GetLicense(ctx, &pb.GetLicenseRequest{Selector: &pb.GetLicenseRequest_Id{Id: id}})
		cancel()
		if err != nil {
			return nil, err
		}
		l := answer.License
		if settled[l.State] {
			key := "without a key"
			if l.LicenseKey != "" {
				key = "with a key"
			}
			expiry := "-"
			if l.ExpireTime != nil {
				expiry = l.ExpireTime.AsTime().UTC().Format(time.RFC3339)
			}
			fmt.Printf("license %s: %s %s, expires %s\n", l.Id, l.State, key, expiry)
			return l, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("license %s still %s", id, l.State)
		}
		time.Sleep(delay)
		if delay *= 2; delay > 2*time.Second {
			delay = 2 * time.Second
		}
	}
}

// readEvents reads the change feed from its start until this license's event that
// made it ACTIVE. A reader that remembers the last event id and passes it as
// AfterEventId when it reconnects misses nothing and sees nothing twice.
func readEvents(client pb.LicenseServiceClient, id string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	stream, err := client.WatchLicenses(ctx, &pb.WatchLicensesRequest{AfterEventId: 0})
	if err != nil {
		return err
	}
	for {
		answer, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return errors.New("the change feed ended before the license's ACTIVE event")
		}
		if err != nil {
			return err
		}
		event := answer.Event
		if event.GetLicense().GetId() != id {
			continue
		}
		fmt.Printf("event %d: %s %s at %s\n", event.Id, event.Kind, event.License.State,
			event.Time.AsTime().UTC().Format(time.RFC3339Nano))
		if event.License.State == pb.License_ACTIVE {
			return nil
		}
	}
}

func randomID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		fail(err)
	}
	return hex.EncodeToString(b)
}

func fail(err error) {
	if s, ok := status.FromError(err); ok && s.Code() != 0 {
		fmt.Fprintf(os.Stderr, "%s: %s\n", s.Code(), s.Message())
	} else {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(1)
}
