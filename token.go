package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/duplex/duplex/realtime"
)

// token mints a client token with TOKEN_SECRET from the environment:
// duplex token --user 42 [--name 李旺] [--ttl 24h].
func token(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("duplex token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	user := fs.String("user", "", "user id, the token's sub (required)")
	name := fs.String("name", "", "display name (optional)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token stays valid")
	if err := fs.Parse(args); err != nil {
		return err
	}
	secret := getenv("TOKEN_SECRET")
	if secret == "" {
		return configError{fmt.Errorf("TOKEN_SECRET: must be set to mint tokens")}
	}
	if *user == "" {
		return configError{fmt.Errorf("--user is required")}
	}
	tok, err := realtime.MintToken([]byte(secret), *user, *name, *ttl)
	if err != nil {
		return fmt.Errorf("mint token: %w", err)
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
