package realtime

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestTokens(t *testing.T) {
	secret := []byte(strings.Repeat("k", 32))
	tok, err := MintToken(secret, "42", "李旺", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, err := VerifyToken(secret, tok)
	if err != nil || id.User != "42" || id.Name != "李旺" || id.Guest() {
		t.Fatalf("verify: %+v %v", id, err)
	}
	if _, err := MintToken(secret[:31], "42", "", time.Hour); err != ErrShortSecret {
		t.Errorf("short secret: %v", err)
	}
	if _, err := TokenVerifierHS256(secret[:5]); err != ErrShortSecret {
		t.Errorf("short verifier secret: %v", err)
	}
	for _, bad := range []string{"", "a b", "x/y"} {
		if _, err := MintToken(secret, bad, "", time.Hour); err == nil {
			t.Errorf("user %q minted", bad)
		}
	}
	expired, _ := MintToken(secret, "42", "", -time.Minute)
	if _, err := VerifyToken(secret, expired); err == nil {
		t.Error("expired token accepted")
	}
	if _, err := VerifyToken([]byte(strings.Repeat("o", 32)), tok); err == nil {
		t.Error("token with another key accepted")
	}
	// Tampered payload.
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"42"`, `"43"`, 1)))
	if _, err := VerifyToken(secret, strings.Join(parts, ".")); err == nil {
		t.Error("tampered token accepted")
	}
	sign := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	exp := time.Now().Add(time.Hour).Unix()
	cases := map[string]string{
		"alg none": sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "42", "exp": exp}),
		"HS512":    sign(jwt.SigningMethodHS512, secret, jwt.MapClaims{"sub": "42", "exp": exp}),
		"no exp":   sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "42"}),
		"no sub":   sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": exp}),
		"bad sub":  sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "4 2", "exp": exp}),
		"garbage":  "not.a.token",
	}
	for name, tok := range cases {
		if _, err := VerifyToken(secret, tok); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	// A bad display name is dropped, not fatal.
	tok = sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "42", "exp": exp, "name": "a\u0000b"})
	if id, err := VerifyToken(secret, tok); err != nil || id.Name != "" {
		t.Errorf("bad name: %+v %v", id, err)
	}
}
