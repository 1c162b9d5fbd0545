package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/duplex/duplex/realtime"
)

func TestInvalidConfigExitsWithTwo(t *testing.T) {
	var stderr strings.Builder
	err := run(context.Background(), nil, func(k string) string {
		if k == "PORT" {
			return "0"
		}
		return ""
	}, &strings.Builder{}, &stderr)
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "PORT") {
		t.Fatalf("err = %v (exit %d), want exit 2 naming PORT", err, exitCode(err))
	}
}

func TestHealthcheckFailsWithoutServer(t *testing.T) {
	err := run(context.Background(), []string{"healthcheck", "-url", "http://127.0.0.1:1/healthz"},
		func(string) string { return "" }, &strings.Builder{}, &strings.Builder{})
	if exitCode(err) != 1 {
		t.Fatalf("healthcheck against nothing: %v (exit %d), want exit 1", err, exitCode(err))
	}
}

func TestHealthcheckProbesTheConfiguredHost(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skip("no 127.0.0.2 on this machine:", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	env := map[string]string{"HOST": "127.0.0.2", "PORT": port}
	err = run(context.Background(), []string{"healthcheck"}, func(k string) string { return env[k] }, &strings.Builder{}, &strings.Builder{})
	if err != nil {
		t.Fatalf("healthcheck of a server on HOST: %v", err)
	}
}

func TestTokenSubcommandMintsAVerifiableToken(t *testing.T) {
	secret := strings.Repeat("k", 32)
	env := func(k string) string {
		if k == "TOKEN_SECRET" {
			return secret
		}
		return ""
	}
	var out strings.Builder
	if err := run(context.Background(), []string{"token", "--user", "42", "--name", "李旺"}, env, &out, &strings.Builder{}); err != nil {
		t.Fatal(err)
	}
	id, err := realtime.VerifyToken([]byte(secret), strings.TrimSpace(out.String()))
	if err != nil || id.User != "42" || id.Name != "李旺" {
		t.Fatalf("minted token verifies as %+v, %v", id, err)
	}
	err = run(context.Background(), []string{"token", "--user", "42"}, func(string) string { return "" }, &out, &strings.Builder{})
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "TOKEN_SECRET") {
		t.Fatalf("without a secret: %v", err)
	}
}
