package devenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
)

// SandboxJSON makes one request to a sandbox emulator's API or admin API:
// body (if not nil) is sent as JSON, with the sandbox's Unisender key as the
// admin API wants it, and a 2xx answer is decoded into out (if not nil).
// Anything else is an error naming the request and the answer.
func SandboxJSON(method, url string, body, out any) error {
	var buf bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&buf).Encode(body); err != nil {
			return err
		}
	}
	req, err := http.NewRequest(method, url, &buf)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(unisenderemu.AdminKeyHeader, SandboxUnisenderKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s %s: HTTP %d %s", method, url, resp.StatusCode, b)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	return nil
}
