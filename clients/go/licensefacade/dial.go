// Package licensefacade connects to license-facade's gRPC API. The messages and the
// LicenseService client are generated from the proto in package
// license-facade/clients/go/licensefacade/v1 (licensefacadev1); this package adds
// what every caller needs besides: the client's bearer token on every call.
package licensefacade

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	licensefacadev1 "license-facade/clients/go/licensefacade/v1"
)

// bearer sends `authorization: Bearer <token>` with every call.
type bearer struct {
	token string
	tls   bool
}

func (b bearer) GetRequestMetadata(ctx context.Context, uri ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity is false for a plaintext connection: the service is often
// reached inside a private network, or through a sidecar that terminates TLS.
func (b bearer) RequireTransportSecurity() bool {
	return b.tls
}

// Dial connects to target (host:port) with token, a client's API token from the
// service's clients file. Plaintext when transport is nil; else, e.g.,
// credentials.NewClientTLSFromCert(nil, "").
func Dial(target, token string, transport credentials.TransportCredentials, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	opts = append(opts, grpc.WithPerRPCCredentials(bearer{token: token, tls: transport != nil}))
	if transport == nil {
		opts = append(opts, grpc.WithInsecure())
	} else {
		opts = append(opts, grpc.WithTransportCredentials(transport))
	}
	return grpc.Dial(target, opts...)
}

// NewClient is the LicenseService client on conn.
func NewClient(conn *grpc.ClientConn) licensefacadev1.LicenseServiceClient {
	return licensefacadev1.NewLicenseServiceClient(conn)
}
