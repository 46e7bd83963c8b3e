package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	pb "ecommerce/pb"
)

// discount applies the same rule as ours: customer 1 gets 10% off a positive price,
// truncated toward zero; everyone else gets an empty discount_value.
type discount struct{ unimplementedDiscount }

func (discount) ApplyDiscount(_ context.Context, req *pb.DiscountRequest) (*pb.DiscountResponse, error) {
	if req.Product == nil {
		return nil, status.Error(codes.InvalidArgument, "DiscountRequest.product is required")
	}
	product := cloneProduct(req.Product)
	product.DiscountValue = &pb.DiscountValue{}
	if req.Customer != nil && req.Customer.Id == 1 && product.PriceInCents > 0 {
		product.DiscountValue = &pb.DiscountValue{
			Pct:          0.1,
			ValueInCents: int32(int64(product.PriceInCents) * 9 / 10),
		}
	}
	return &pb.DiscountResponse{Product: product}, nil
}

func runServer(args []string) int {
	flags := flag.NewFlagSet("server", flag.ExitOnError)
	cert := flags.String("cert", "", "PEM certificate chain (keys/cert.pem)")
	key := flags.String("key", "", "its PEM private key (keys/private.key)")
	clientCA := flags.String("client-ca", "", "require client certificates issued by this CA")
	flags.Parse(args)

	pairs, err := keyPair(*cert, *key)
	if err != nil {
		fmt.Fprintln(os.Stderr, "go discount server:", err)
		return 1
	}
	config := &tls.Config{Certificates: pairs}
	if *clientCA != "" {
		if config.ClientCAs, err = certPool(*clientCA); err != nil {
			fmt.Fprintln(os.Stderr, "go discount server:", err)
			return 1
		}
		config.ClientAuth = tls.RequireAndVerifyClientCert
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "go discount server:", err)
		return 1
	}
	server := grpc.NewServer(grpc.Creds(credentials.NewTLS(config)))
	pb.RegisterDiscountServer(server, discount{})
	healthServer := health.NewServer()
	healthServer.SetServingStatus("ecommerce.Discount", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(server, healthServer)
	reflection.Register(server)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		healthServer.Shutdown()
		stopped := make(chan struct{})
		go func() { server.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(2 * time.Second):
			server.Stop()
		}
	}()
	fmt.Printf("go discount server listening address=%s\n", listener.Addr())
	if err := server.Serve(listener); err != nil {
		fmt.Fprintln(os.Stderr, "go discount server:", err)
		return 1
	}
	return 0
}
