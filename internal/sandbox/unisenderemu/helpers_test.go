package unisenderemu_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/sandboxtest"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
)

const testKey = "k-test-0123456789abcdef"

// env is an emulator behind a real HTTP server with one account.
type env struct {
	emu *unisenderemu.Server
	srv *httptest.Server
}

func newEnv(t *testing.T, opts unisenderemu.Options) *env {
	t.Helper()
	emu, srv := sandboxtest.Unisender(t, opts)
	emu.AddAPIKey(testKey)
	return &env{emu: emu, srv: srv}
}

// reply is a decoded API answer.
type reply struct {
	HTTPStatus int
	Result     json.RawMessage `json:"result"`
	Error      *string         `json:"error"`
	Code       string          `json:"code"`
}

// call POSTs a method the way the reference describes: form body with the
// key in it, format=json in the query.
func (e *env) call(t *testing.T, key, method string, args url.Values) reply {
	t.Helper()
	body := url.Values{}
	for k, v := range args {
		body[k] = v
	}
	body.Set("api_key", key)
	resp, err := http.Post(e.srv.URL+"/en/api/"+method+"?format=json", "application/x-www-form-urlencoded", strings.NewReader(body.Encode()))
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	r := reply{HTTPStatus: resp.StatusCode}
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatalf("%s: decoding answer: %v", method, err)
		}
	}
	return r
}

// ok calls a method that must succeed and decodes its result into out.
func (e *env) ok(t *testing.T, method string, args url.Values, out any) {
	t.Helper()
	r := e.call(t, testKey, method, args)
	if r.HTTPStatus != http.StatusOK || r.Error != nil {
		t.Fatalf("%s: want success, got HTTP %d code %q error %v", method, r.HTTPStatus, r.Code, deref(r.Error))
	}
	if out != nil {
		if err := json.Unmarshal(r.Result, out); err != nil {
			t.Fatalf("%s: decoding result %s: %v", method, r.Result, err)
		}
	}
}

// fails calls a method that must answer an API error with this code inside
// HTTP 200.
func (e *env) fails(t *testing.T, key, method string, args url.Values, code string) reply {
	t.Helper()
	r := e.call(t, key, method, args)
	if r.HTTPStatus != http.StatusOK || r.Error == nil || r.Code != code {
		t.Fatalf("%s: want error code %q inside HTTP 200, got HTTP %d code %q error %v result %s",
			method, code, r.HTTPStatus, r.Code, deref(r.Error), r.Result)
	}
	return r
}

func deref(s *string) string {
	if s == nil {
		return "<none>"
	}
	return *s
}

func (e *env) createList(t *testing.T, title string) int64 {
	t.Helper()
	var out struct{ ID int64 }
	e.ok(t, "createList", url.Values{"title": {title}}, &out)
	return out.ID
}

type importResult struct {
	Total, Inserted, Updated, Deleted, Invalid int
	NewEmails                                  int `json:"new_emails"`
	Log                                        []struct {
		Index         int
		Code, Message string
	}
}

// importRows encodes field_names[j] and data[i][j] and runs importContacts.
func importArgs(fields []string, rows [][]string, extra ...string) url.Values {
	v := url.Values{}
	for j, f := range fields {
		v.Set(fmt.Sprintf("field_names[%d]", j), f)
	}
	for i, row := range rows {
		for j, cell := range row {
			v.Set(fmt.Sprintf("data[%d][%d]", i, j), cell)
		}
	}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v
}

func (e *env) importRows(t *testing.T, fields []string, rows [][]string, extra ...string) importResult {
	t.Helper()
	var res importResult
	e.ok(t, "importContacts", importArgs(fields, rows, extra...), &res)
	return res
}

func (e *env) contact(t *testing.T, email string) unisenderemu.Contact {
	t.Helper()
	c, ok := e.emu.Contact(testKey, email)
	if !ok {
		t.Fatalf("contact %s not found", email)
	}
	return c
}
