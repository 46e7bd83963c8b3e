package main

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	pb "ecommerce/pb"
)

// testCase is one entry of scripts/interop-cases.json (its "about" says what each key means).
type testCase struct {
	Name             string          `json:"name"`
	Request          json.RawMessage `json:"request"`
	DescriptionBytes int             `json:"description_bytes"`
	UnknownFieldsHex string          `json:"unknown_fields_hex"`
	Expect           struct {
		DiscountValue *struct {
			Pct          float64 `json:"pct"`
			ValueInCents int32   `json:"value_in_cents"`
		} `json:"discount_value"`
		Code string `json:"code"`
	} `json:"expect"`
}

// codeNames are the canonical names of the gRPC status codes, as the cases file spells them
// (grpc-go's String() says "InvalidArgument").
var codeNames = map[codes.Code]string{
	codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN",
	codes.InvalidArgument: "INVALID_ARGUMENT", codes.DeadlineExceeded: "DEADLINE_EXCEEDED",
	codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
	codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED",
	codes.OutOfRange: "OUT_OF_RANGE", codes.Unimplemented: "UNIMPLEMENTED",
	codes.Internal: "INTERNAL", codes.Unavailable: "UNAVAILABLE", codes.DataLoss: "DATA_LOSS",
	codes.Unauthenticated: "UNAUTHENTICATED",
}

// tally counts checks and prints each failure with the language, the case and the field.
type tally struct{ passed, failed int }

func (t *tally) check(name string, problems []string) {
	if len(problems) == 0 {
		t.passed++
		return
	}
	t.failed++
	for _, problem := range problems {
		fmt.Printf("FAIL  go client (grpc-go %s), case '%s': %s\n", grpc.Version, name, problem)
	}
}

func (t *tally) finish() int {
	fmt.Printf("go client (grpc-go %s, %s): %d passed, %d failed\n", grpc.Version, runtime.Version(), t.passed, t.failed)
	if t.failed > 0 {
		return 1
	}
	return 0
}

// buildRequest makes the case's DiscountRequest; unknown fields survive a parse in both
// Protobuf APIs (XXX_unrecognized in v1, the message's unknown fields in v2) and are sent on.
func buildRequest(c *testCase) (*pb.DiscountRequest, error) {
	request := &pb.DiscountRequest{}
	if err := parseJSON(string(c.Request), request); err != nil {
		return nil, fmt.Errorf("request: %v", err)
	}
	if c.DescriptionBytes > 0 {
		if request.Product == nil {
			return nil, fmt.Errorf("description_bytes needs a product")
		}
		request.Product.Description = strings.Repeat("d", c.DescriptionBytes)
	}
	if c.UnknownFieldsHex != "" {
		extra, err := hex.DecodeString(c.UnknownFieldsHex)
		if err != nil {
			return nil, fmt.Errorf("unknown_fields_hex: %v", err)
		}
		raw, err := marshal(request)
		if err != nil {
			return nil, err
		}
		request = &pb.DiscountRequest{}
		if err := unmarshal(append(raw, extra...), request); err != nil {
			return nil, err
		}
	}
	return request, nil
}

// differences lists every field of the answer that is not what the case expects.
func differences(c *testCase, sent *pb.Product, response *pb.DiscountResponse) []string {
	got := response.GetProduct()
	if got == nil {
		return []string{"product is missing"}
	}
	want := c.Expect.DiscountValue
	var problems []string
	field := func(name string, value, expected interface{}) {
		if value != expected {
			problems = append(problems, fmt.Sprintf("%s is %s, expected %s", name, short(value), short(expected)))
		}
	}
	field("product.id", got.Id, sent.Id)
	field("product.slug", got.Slug, sent.Slug)
	field("product.description", got.Description, sent.Description)
	field("product.price_in_cents", got.PriceInCents, sent.PriceInCents)
	field("product.discount_value.pct", got.GetDiscountValue().GetPct(), float32(want.Pct))
	field("product.discount_value.value_in_cents", got.GetDiscountValue().GetValueInCents(), want.ValueInCents)
	return problems
}

func short(value interface{}) string {
	text := fmt.Sprintf("%#v", value)
	if len(text) > 60 {
		return fmt.Sprintf("%s… (%d characters)", text[:40], len(text))
	}
	return text
}

func codeOf(err error) string {
	code := status.Code(err)
	if name, ok := codeNames[code]; ok {
		return name
	}
	return code.String()
}

func runClient(args []string) int {
	flags := flag.NewFlagSet("client", flag.ExitOnError)
	target := flags.String("target", "", "host:port of the discount service")
	trusted := flags.String("cert", "", "PEM certificates to trust (keys/cert.pem)")
	casesPath := flags.String("cases", "", "scripts/interop-cases.json")
	clientCert := flags.String("client-cert", "", "PEM client certificate chain to present")
	clientKey := flags.String("client-key", "", "its PEM private key")
	expectRefused := flags.Bool("expect-refused", false, "present no certificate and expect the handshake to be refused")
	flags.Parse(args)

	var t tally
	fail := func(err error) int {
		t.check("setup", []string{err.Error()})
		return t.finish()
	}
	raw, err := os.ReadFile(*casesPath)
	if err != nil {
		return fail(err)
	}
	var file struct {
		Cases []testCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		return fail(fmt.Errorf("%s: %v", *casesPath, err))
	}
	pool, err := certPool(*trusted)
	if err != nil {
		return fail(err)
	}
	identity, err := keyPair(*clientCert, *clientKey)
	if err != nil {
		return fail(err)
	}
	creds := credentials.NewTLS(&tls.Config{RootCAs: pool, Certificates: identity})
	conn, err := connect(*target, creds)
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	stub := pb.NewDiscountClient(conn)
	call := func(request *pb.DiscountRequest) (*pb.DiscountResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return stub.ApplyDiscount(ctx, request)
	}

	if *expectRefused {
		request, err := buildRequest(&file.Cases[0])
		if err != nil {
			return fail(err)
		}
		_, err = call(request)
		switch {
		case err == nil:
			t.check("no client certificate", []string{"the call succeeded, expected UNAVAILABLE"})
		case status.Code(err) != codes.Unavailable:
			t.check("no client certificate", []string{fmt.Sprintf("status is %s (%v), expected UNAVAILABLE", codeOf(err), err)})
		default:
			t.check("no client certificate", nil)
		}
		return t.finish()
	}

	for i := range file.Cases {
		c := &file.Cases[i]
		request, err := buildRequest(c)
		if err != nil {
			t.check(c.Name, []string{err.Error()})
			continue
		}
		response, err := call(request)
		switch {
		case err != nil && codeOf(err) != c.Expect.Code:
			wanted := c.Expect.Code
			if wanted == "" {
				wanted = "an answer"
			}
			t.check(c.Name, []string{fmt.Sprintf("status is %s (%s), expected %s", codeOf(err), status.Convert(err).Message(), wanted)})
		case err != nil:
			t.check(c.Name, nil)
		case c.Expect.Code != "":
			t.check(c.Name, []string{"the call succeeded, expected status " + c.Expect.Code})
		default:
			t.check(c.Name, differences(c, request.Product, response))
		}
	}

	health := healthpb.NewHealthClient(conn)
	for _, service := range []string{"", "ecommerce.Discount"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		answer, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		cancel()
		name := fmt.Sprintf("health %q", service)
		switch {
		case err != nil:
			t.check(name, []string{fmt.Sprintf("status is %s, expected SERVING", codeOf(err))})
		case answer.Status != healthpb.HealthCheckResponse_SERVING:
			t.check(name, []string{fmt.Sprintf("status is %s, expected SERVING", answer.Status)})
		default:
			t.check(name, nil)
		}
	}

	t.check("reflection", listsDiscount(conn))
	return t.finish()
}

// listsDiscount asks server reflection (v1alpha, which every implementation serves) for
// the list of services; ecommerce.Discount must be in it.
func listsDiscount(conn *grpc.ClientConn) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return []string{fmt.Sprintf("status is %s", codeOf(err))}
	}
	request := &reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: ""},
	}
	if err := stream.Send(request); err != nil {
		return []string{err.Error()}
	}
	answer, err := stream.Recv()
	if err != nil {
		return []string{fmt.Sprintf("status is %s", codeOf(err))}
	}
	stream.CloseSend()
	var names []string
	for _, service := range answer.GetListServicesResponse().GetService() {
		if service.Name == "ecommerce.Discount" {
			return nil
		}
		names = append(names, service.Name)
	}
	return []string{fmt.Sprintf("list_services is %v, expected ecommerce.Discount in it", names)}
}
