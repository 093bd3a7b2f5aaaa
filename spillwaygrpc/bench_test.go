package spillwaygrpc_test

import (
	"testing"

	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/spillway-dev/spillway/spillwaygrpc"
)

// BenchmarkUnary measures a successful unary call over loopback, bare and
// through the client interceptor with every default policy.
func BenchmarkUnary(b *testing.B) {
	addr := serve(b, &scripted{})
	for _, bc := range []struct {
		name string
		opts []grpc.DialOption
	}{
		{"bare", nil},
		{"spillway", []grpc.DialOption{grpc.WithUnaryInterceptor(spillwaygrpc.UnaryClientInterceptor(spillwaygrpc.Config{}))}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cl := dial(b, addr, bc.opts...)
			req := &testpb.SimpleRequest{}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := cl.UnaryCall(b.Context(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
