package realtime

import (
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MinTokenSecretBytes is the shortest HS256 secret accepted.
const MinTokenSecretBytes = 32

// ErrShortSecret is returned when a token secret is under MinTokenSecretBytes.
var ErrShortSecret = errors.New("realtime: token secret must be at least 32 bytes (set TOKEN_SECRET)")

// TokenLeeway is how far past its exp a token is still accepted, for
// clocks that disagree a little; a connection signed in with a token is
// closed this long after the token's exp.
const TokenLeeway = 5 * time.Second

// tokenClaims is the JWT payload duplex mints: sub is the user id, name an
// optional display name, exp is required.
type tokenClaims struct {
	Name string `json:"name,omitempty"`
	jwt.RegisteredClaims
}

// MintToken signs an HS256 token for user (the sub claim), valid for ttl.
// name, when not empty, becomes the display name. It is safe for
// concurrent use.
func MintToken(secret []byte, user, name string, ttl time.Duration) (string, error) {
	if len(secret) < MinTokenSecretBytes {
		return "", ErrShortSecret
	}
	if _, err := ParseChannel("user:" + user); err != nil || user == "" {
		return "", errors.New("realtime: user id must be non-empty and use only A-Z a-z 0-9 _ . @ : -")
	}
	if name != "" {
		var err error
		if name, err = CleanName(name); err != nil {
			return "", err
		}
	}
	now := time.Now()
	claims := tokenClaims{Name: name, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   user,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}

// VerifyToken checks an HS256 token (signature, exp required and not
// passed, sub present) and returns the identity it carries. Tokens using
// any other algorithm, including "none", are refused. It is safe for
// concurrent use.
func VerifyToken(secret []byte, token string) (Identity, error) {
	var claims tokenClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(TokenLeeway),
	)
	if err != nil {
		return Identity{}, err
	}
	if claims.Subject == "" {
		return Identity{}, errors.New("token has no sub")
	}
	if _, err := ParseChannel("user:" + claims.Subject); err != nil {
		return Identity{}, errors.New("token sub has characters outside A-Z a-z 0-9 _ . @ : -")
	}
	id := Identity{User: claims.Subject, Name: claims.Name, Expires: claims.ExpiresAt.Time}
	if id.Name != "" {
		if id.Name, err = CleanName(id.Name); err != nil {
			id.Name = ""
		}
	}
	return id, nil
}

// TokenVerifierHS256 returns a TokenVerifier for secret (see VerifyToken).
func TokenVerifierHS256(secret []byte) (TokenVerifier, error) {
	if len(secret) < MinTokenSecretBytes {
		return nil, ErrShortSecret
	}
	key := append([]byte(nil), secret...)
	return func(token string) (Identity, error) { return VerifyToken(key, token) }, nil
}
