package main

import (
	"context"
	"strings"
	"testing"
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
