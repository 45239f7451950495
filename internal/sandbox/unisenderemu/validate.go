package unisenderemu

import (
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// validEmail accepts a bare addr-spec whose domain has a dot, the way a
// mailing service would: "Ann <a@b.c>", "a@localhost" and "a b@c.d" fail.
func validEmail(s string) bool {
	if s == "" || len(s) > 254 || strings.ContainsAny(s, " <>\"") {
		return false
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	domain := s[at+1:]
	return at > 0 && strings.Contains(domain, ".") && !strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".")
}

func (s *Server) isRoleAddress(email string) bool {
	local, _, _ := strings.Cut(strings.ToLower(email), "@")
	return s.roles[local]
}

// phonePattern is the international format of the reference: +79261232323.
var phonePattern = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

func validPhone(s string) bool { return phonePattern.MatchString(s) }

// validFieldValue checks a value against a user field's type; an empty value
// clears the field and is always valid.
func validFieldValue(typ, v string) bool {
	if v == "" {
		return true
	}
	switch typ {
	case "number":
		_, err := strconv.ParseFloat(v, 64)
		return err == nil
	case "bool":
		switch strings.ToLower(v) {
		case "0", "1", "true", "false", "yes", "no":
			return true
		}
		return false
	case "date":
		for _, layout := range []string{"2006-01-02", "02.01.2006"} {
			if _, err := time.Parse(layout, v); err == nil {
				return true
			}
		}
		return false
	}
	return true
}
