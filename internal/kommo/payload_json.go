package kommo

import (
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends the JSON of p to b, byte for byte what json.Marshal(p)
// gives (asserted by tests, fuzzed over parsed bodies). The webhook server
// encodes one payload per request; doing it without reflection saves most
// of encoding/json's cost on that hot path. Decode with json.Unmarshal.
func (p *WebhookPayload) AppendJSON(b []byte) []byte {
	b = append(b, `{"AccountID":`...)
	b = strconv.AppendInt(b, p.AccountID, 10)
	b = append(b, `,"Subdomain":`...)
	b = appendJSONString(b, p.Subdomain)
	b = append(b, `,"Events":`...)
	if p.Events == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range p.Events {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"Action":`...)
			b = appendJSONString(b, string(p.Events[i].Action))
			b = append(b, `,"Contact":`...)
			b = p.Events[i].Contact.appendJSON(b)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func (c *Contact) appendJSON(b []byte) []byte {
	b = append(b, `{"ID":`...)
	b = strconv.AppendInt(b, c.ID, 10)
	b = append(b, `,"Type":`...)
	b = appendJSONString(b, string(c.Type))
	b = append(b, `,"Name":`...)
	b = appendJSONString(b, c.Name)
	b = append(b, `,"FirstName":`...)
	b = appendJSONString(b, c.FirstName)
	b = append(b, `,"LastName":`...)
	b = appendJSONString(b, c.LastName)
	b = append(b, `,"Emails":`...)
	b = appendJSONStrings(b, c.Emails)
	b = append(b, `,"Phones":`...)
	b = appendJSONStrings(b, c.Phones)
	b = append(b, `,"Tags":`...)
	b = appendJSONStrings(b, c.Tags)
	b = append(b, `,"CustomFields":`...)
	b = appendJSONFields(b, c.CustomFields)
	b = append(b, `,"ResponsibleUserID":`...)
	b = strconv.AppendInt(b, c.ResponsibleUserID, 10)
	b = append(b, `,"CreatedAt":`...)
	b = strconv.AppendInt(b, c.CreatedAt, 10)
	b = append(b, `,"UpdatedAt":`...)
	b = strconv.AppendInt(b, c.UpdatedAt, 10)
	b = append(b, `,"AccountID":`...)
	b = strconv.AppendInt(b, c.AccountID, 10)
	return append(b, '}')
}

func appendJSONFields(b []byte, fields []CustomField) []byte {
	if fields == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i := range fields {
		f := &fields[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"ID":`...)
		b = strconv.AppendInt(b, f.ID, 10)
		b = append(b, `,"Name":`...)
		b = appendJSONString(b, f.Name)
		b = append(b, `,"Code":`...)
		b = appendJSONString(b, f.Code)
		b = append(b, `,"Values":`...)
		b = appendJSONValues(b, f.Values)
		b = append(b, '}')
	}
	return append(b, ']')
}

func appendJSONValues(b []byte, values []FieldValue) []byte {
	if values == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i := range values {
		v := &values[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"Value":`...)
		b = appendJSONString(b, v.Value)
		b = append(b, `,"EnumID":`...)
		b = strconv.AppendInt(b, v.EnumID, 10)
		b = append(b, `,"EnumCode":`...)
		b = appendJSONString(b, v.EnumCode)
		b = append(b, '}')
	}
	return append(b, ']')
}

func appendJSONStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendJSONString quotes s as encoding/json does (with its default HTML
// escaping): <, > and & as \u003c…, control characters as \b \f \n \r \t
// or \u00XX, invalid UTF-8 as \ufffd, and U+2028/U+2029 escaped for
// JavaScript; everything else, non-ASCII included, as is.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			switch r {
			case utf8.RuneError:
				b = append(b, `\ufffd`...)
			default:
				b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
