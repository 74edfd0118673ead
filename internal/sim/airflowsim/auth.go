package airflowsim

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

func (s *Server) authenticated(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	switch s.auth.Mode {
	case "none":
		return true
	case "basic":
		u, p, ok := r.BasicAuth()
		return ok && equal(u, s.auth.Username) && equal(p, s.auth.Password)
	case "bearer":
		tok, ok := strings.CutPrefix(h, "Bearer ")
		return ok && slices.Contains(s.auth.Tokens, tok)
	case "jwt":
		tok, ok := strings.CutPrefix(h, "Bearer ")
		return ok && s.validJWT(tok)
	}
	return false
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func (s *Server) unauthorized(w http.ResponseWriter) {
	if s.v.api == "v2" {
		s.writeJSON(w, http.StatusUnauthorized, map[string]string{"detail": "Not authenticated"})
		return
	}
	if s.auth.Mode == "basic" {
		w.Header().Set("WWW-Authenticate", "Basic")
	}
	s.failDetail(w, http.StatusUnauthorized, nil)
}

func (s *Server) forbid(w http.ResponseWriter) {
	if s.v.api == "v2" {
		s.writeJSON(w, http.StatusForbidden, map[string]string{"detail": "Forbidden"})
		return
	}
	s.failDetail(w, http.StatusForbidden, nil)
}

// issueToken is Airflow 3's POST /auth/token: credentials in, {"access_token": JWT} out (201).
func (s *Server) issueToken(w http.ResponseWriter, r *http.Request, body []byte) {
	if s.v.api != "v2" {
		s.notFoundRoute(w, r.URL.Path)
		return
	}
	if r.Method != http.MethodPost {
		s.writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"detail": "Method Not Allowed"})
		return
	}
	var in struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Username == "" {
		s.writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []map[string]any{{"type": "missing", "loc": []string{"body", "username"}, "msg": "Field required"}}})
		return
	}
	if s.auth.Mode != "jwt" || !equal(in.Username, s.auth.Username) || !equal(in.Password, s.auth.Password) {
		s.writeJSON(w, http.StatusUnauthorized, map[string]string{"detail": "Invalid credentials"})
		return
	}
	now := s.clk.Now()
	tok := s.signJWT(map[string]any{
		"sub": in.Username, "iss": "airflowsim", "aud": "apache-airflow",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(s.auth.JWTTTL).Unix(),
	})
	s.mu.Lock()
	s.issued++
	s.mu.Unlock()
	s.writeJSON(w, http.StatusCreated, map[string]string{"access_token": tok})
}

var b64 = base64.RawURLEncoding

func (s *Server) signJWT(claims map[string]any) string {
	head, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	payload, _ := json.Marshal(claims)
	unsigned := b64.EncodeToString(head) + "." + b64.EncodeToString(payload)
	return unsigned + "." + b64.EncodeToString(s.mac(unsigned))
}

func (s *Server) mac(msg string) []byte {
	m := hmac.New(sha256.New, s.jwtKey)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// validJWT checks the signature and that the token has not expired on the server's clock.
func (s *Server) validJWT(tok string) bool {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return false
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, s.mac(parts[0]+"."+parts[1])) {
		return false
	}
	raw, err := b64.DecodeString(parts[1])
	if err != nil {
		return false
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(raw, &claims) != nil {
		return false
	}
	return s.clk.Now().Before(time.Unix(claims.Exp, 0))
}
